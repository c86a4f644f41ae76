"""Meltano runs the example project (examples/meltano/meltano.yml) against the fake API, and the
plugin definitions stay in step with `tap-wootric --about`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import tools
import yaml
from conftest import STREAMS, TAP, seed

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "meltano" / "meltano.yml"
HUB = ROOT / "meltano-hub" / "tap-wootric.yml"


def about():
    proc = subprocess.run([TAP, "--about", "--format", "json"], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def settings_of(definition):
    return {s["name"]: (s.get("kind", "string"), bool(s.get("sensitive", False))) for s in definition["settings"]}


def about_settings():
    info = about()
    kinds = {"integer": "integer"}
    result = {}
    for name, schema in info["settings"]["properties"].items():
        if schema.get("secret"):
            kind = "password"
        elif schema.get("format") == "date-time":
            kind = "date_iso8601"
        elif "enum" in schema:
            kind = "options"
        else:
            kind = kinds.get(schema["type"], "string")
        result[name] = (kind, bool(schema.get("secret")))
    return result


@pytest.mark.parametrize("path", [HUB, EXAMPLE], ids=["hub", "example"])
def test_plugin_definitions_agree_with_about(path):
    document = yaml.safe_load(path.read_text())
    definition = document if path == HUB else next(
        p for p in document["plugins"]["extractors"] if p["name"] == "tap-wootric")
    info = about()
    assert settings_of(definition) == about_settings()
    assert definition["capabilities"] == info["capabilities"]
    groups = [sorted(group) for group in definition["settings_group_validation"]]
    assert groups == [sorted(option["required"]) for option in info["settings"]["anyOf"]]
    assert definition["namespace"] == "tap_wootric" and definition["executable"] == "tap-wootric"


def test_about_and_version(tap):
    info = about()
    assert info["name"] == "tap-wootric" and info["version"]
    assert {"catalog", "discover", "state", "about"} <= set(info["capabilities"])
    secrets = {name for name, schema in info["settings"]["properties"].items() if schema.get("secret")}
    assert secrets == {"client_secret", "password"}
    markdown = subprocess.run([TAP, "--about", "--format", "markdown"], capture_output=True, text=True, check=True)
    assert "| `client_secret` | password | yes |" in markdown.stdout
    version = subprocess.run([TAP, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"tap-wootric {info['version']}"


def test_settings_come_from_the_environment(fake, tap):
    seed(fake, (5, 5, 5))
    config = fake.config()
    secret = config.pop("client_secret")
    os.environ["TAP_WOOTRIC_CLIENT_SECRET"] = secret
    try:
        run = tap.run(config)
    finally:
        del os.environ["TAP_WOOTRIC_CLIENT_SECRET"]
    assert run.returncode == 0, run.stderr
    assert len(run.records()) == 15


@pytest.fixture
def project(tmp_path, fake):
    """A copy of the example project that installs tap-wootric from this checkout, pointed at the fake."""
    text = EXAMPLE.read_text().replace("pip_url: -e ../..", f"pip_url: -e {ROOT}")
    (tmp_path / "meltano.yml").write_text(text)
    env = {**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
           "TAP_WOOTRIC_CLIENT_ID": fake.client_id, "TAP_WOOTRIC_CLIENT_SECRET": fake.client_secret,
           "TAP_WOOTRIC_API_URL": fake.api_url, "TAP_WOOTRIC_OAUTH_URL": fake.oauth_url,
           "TAP_WOOTRIC_START_DATE": "2015-01-01T00:00:00Z", "TAP_WOOTRIC_TIME_SCALE": "0.01"}
    env.pop("VIRTUAL_ENV", None)
    meltano = str(tools.ensure("meltano"))

    def run(*args, timeout=600):
        proc = subprocess.run([meltano, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=timeout)
        assert proc.returncode == 0, f"meltano {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        return proc

    yield tmp_path, run
    shutil.rmtree(tmp_path / ".meltano", ignore_errors=True)


def jsonl_ids(directory, stream):
    path = directory / "output" / f"{stream}.jsonl"
    return [json.loads(line)["id"] for line in path.read_text().splitlines()] if path.exists() else []


def test_meltano_runs_the_tap_twice_with_state(fake, tap, project):
    directory, meltano = project
    seed(fake, (40, 120, 30))
    meltano("run", "tap-wootric", "target-jsonl")
    for stream in STREAMS:
        assert sorted(jsonl_ids(directory, stream)) == sorted(r["id"] for r in fake.records(stream)), stream

    edited_user = fake.records("end_users")[3]["id"]
    fake.update("end_users", edited_user, external_id="edited")
    new_response = fake.create("responses")
    time.sleep(1)
    counts = {stream: len(jsonl_ids(directory, stream)) for stream in STREAMS}
    second = meltano("run", "tap-wootric", "target-jsonl")
    # target-jsonl appends: the second run added what changed, because Meltano passed the state, and the
    # tenth of each stream that the reconciliation pass reads each run (the oldest rows first).
    added = {stream: jsonl_ids(directory, stream)[counts[stream]:] for stream in STREAMS}
    assert edited_user in added["end_users"] and new_response in added["responses"], second.stderr[-2000:]
    for stream, count in zip(STREAMS, (40, 120, 30)):
        assert len(added[stream]) <= -(-count // 10) + 1, (stream, added[stream])
    state = json.loads(meltano("state", "get", "dev:tap-wootric-to-target-jsonl").stdout)
    assert set(state["singer_state"]["bookmarks"]) == {*STREAMS, "segments"}
    assert state["singer_state"]["currently_syncing"] is None


def test_meltano_config_test_and_select_list(fake, tap, project):
    _, meltano = project
    seed(fake, (5, 5, 5))
    assert "valid" in meltano("config", "test", "tap-wootric").stdout.lower()
    listing = meltano("select", "tap-wootric", "--list", "--all").stdout
    for stream in STREAMS:
        assert f"{stream}.id" in listing and f"{stream}.updated_at" in listing
    assert "responses.score" in listing and "end_users.last_surveyed" in listing
