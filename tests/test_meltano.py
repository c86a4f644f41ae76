"""Meltano runs the example project (examples/meltano/meltano.yml) against the fake API, and the
plugin definitions stay in step with `tap-wootric --about`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tools
import yaml
from helpers import EXAMPLE, HUB, ROOT, STREAMS, TAP, about, about_settings, readme_block, seed, settings_of


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
    # Defaults agree with the tap's; user_agent has none, so the tap's own (which follows its version) applies.
    defaults = {name: schema.get("default") for name, schema in info["settings"]["properties"].items()}
    del defaults["user_agent"]
    assert {s["name"]: s.get("value") for s in definition["settings"] if s["name"] != "user_agent"} == defaults
    assert "value" not in next(s for s in definition["settings"] if s["name"] == "user_agent")
    assert "tap-wootric/1" not in path.read_text()


# What the Meltano Hub's JSON schemas (meltano/hub: schemas/plugin_definitions/extractors.schema.json and
# the common/ schemas it refers to) allow and require of an extractor definition.
HUB_TOP_KEYS = {
    "name", "pip_url", "variant", "namespace", "label", "description", "executable", "settings", "docs", "repo",
    "logo_url", "hidden", "python", "settings_group_validation", "commands", "capabilities", "metadata", "schema",
    "select", "maintenance_status", "quality", "domain_url", "keywords", "requires", "definition", "next_steps",
    "settings_preamble", "usage", "prereq", "supported_python_versions", "log_parser",
}
HUB_SETTING_KEYS = {
    "name", "aliases", "label", "value", "placeholder", "kind", "description", "tooltip", "documentation", "env",
    "value_processor", "value_post_processor", "oauth", "options", "docs", "hidden", "sensitive",
}
HUB_KINDS = {"oauth", "hidden", "password", "date_iso8601", "file", "email", "integer", "options", "object", "array",
             "boolean", "string", "decimal"}
HUB_CAPABILITIES = {"properties", "catalog", "discover", "state", "about", "stream-maps", "schema-flattening",
                    "activate-version", "batch", "test", "log-based", "structured-logging"}


def sorted_keys_everywhere(value):
    """The Hub's yamllint has key-ordering enabled: every mapping's keys in alphabetical order."""
    if isinstance(value, dict):
        return list(value) == sorted(value) and all(map(sorted_keys_everywhere, value.values()))
    if isinstance(value, list):
        return all(map(sorted_keys_everywhere, value))
    return True


def test_hub_definition_meets_the_hubs_schema_and_style():
    text = HUB.read_text()
    hub = yaml.safe_load(text)
    assert set(hub) <= HUB_TOP_KEYS, set(hub) - HUB_TOP_KEYS
    for required in ("name", "namespace", "variant", "quality", "logo_url", "docs", "repo", "pip_url", "label",
                     "description", "domain_url", "maintenance_status", "keywords"):
        assert hub.get(required), required
    assert hub["quality"] in {"gold", "silver", "bronze", "unknown"}
    assert hub["maintenance_status"] in {"active", "beta", "development", "inactive", "unknown"}
    assert set(hub["capabilities"]) <= HUB_CAPABILITIES and "activate-version" in hub["capabilities"]
    for setting in hub["settings"]:
        assert set(setting) <= HUB_SETTING_KEYS, setting["name"]
        assert setting["kind"] in HUB_KINDS and setting["kind"] != "password", setting["name"]  # deprecated kind
        assert all(set(option) <= {"label", "value"} for option in setting.get("options", []))
    assert hub["supported_python_versions"] == about()["supported_python_versions"]
    assert sorted_keys_everywhere(hub)
    assert not re.search(r"\{\s*\S", text), "the Hub's yamllint forbids non-empty flow mappings"


@pytest.mark.slow
def test_hub_definition_passes_yamllint_with_the_hubs_rules():
    yamllint = pytest.importorskip("yamllint.cli")
    proc = subprocess.run([sys.executable, "-m", "yamllint", "-f", "parsable", "-c", str(HUB.parent / ".yamllint.yaml"),
                           str(HUB)], capture_output=True, text=True)
    assert yamllint and proc.returncode == 0, proc.stdout


def test_about_and_version(tap):
    info = about()
    assert info["name"] == "tap-wootric" and info["version"]
    assert {"catalog", "discover", "state", "about", "activate-version"} <= set(info["capabilities"])
    secrets = {name for name, schema in info["settings"]["properties"].items() if schema.get("secret")}
    assert secrets == {"client_secret", "password"}
    markdown = subprocess.run([TAP, "--about", "--format", "markdown"], capture_output=True, text=True, check=True)
    assert "| `client_secret` | string | yes |" in markdown.stdout
    version = subprocess.run([TAP, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"tap-wootric {info['version']}"


def test_settings_come_from_the_environment(fake, tap, monkeypatch):
    seed(fake, (5, 5, 5))
    config = fake.config()
    monkeypatch.setenv("TAP_WOOTRIC_CLIENT_SECRET", config.pop("client_secret"))
    run = tap.run(config)
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
           "TAP_WOOTRIC_START_DATE": "2015-01-01T00:00:00Z", "TAP_WOOTRIC_TIME_SCALE": "0.01",
           # The tests change rows and run again at once (see fake.config()).
           "TAP_WOOTRIC_COMMIT_MARGIN_SECONDS": "0"}
    env.pop("VIRTUAL_ENV", None)
    meltano = str(tools.ensure("meltano"))

    def run(*args, timeout=600, extra_env=None):
        proc = subprocess.run([meltano, *args], cwd=tmp_path, env={**env, **(extra_env or {})}, capture_output=True,
                              text=True, timeout=timeout)
        (tmp_path / "meltano-stderr.log").write_text(proc.stderr)  # the whole log, for a failure's cause
        assert proc.returncode == 0, f"meltano {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        return proc

    yield tmp_path, run
    shutil.rmtree(tmp_path / ".meltano", ignore_errors=True)


def jsonl_ids(directory, stream):
    path = directory / "output" / f"{stream}.jsonl"
    return [json.loads(line)["id"] for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
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


@pytest.mark.slow
def test_meltano_config_test_and_select_list(fake, tap, project):
    _, meltano = project
    seed(fake, (5, 5, 5))
    assert "valid" in meltano("config", "test", "tap-wootric").stdout.lower()
    listing = meltano("select", "tap-wootric", "--list", "--all").stdout
    for stream in STREAMS:
        assert f"{stream}.id" in listing and f"{stream}.updated_at" in listing
    assert "responses.score" in listing and "end_users.last_surveyed" in listing


EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"


@pytest.mark.slow
def test_personal_data_recipe_hashes_email_and_drops_ip_address(fake, tap, project, postgres):
    """The README's recipe: tap-wootric | meltano-map-transformer (hide-personal-data) | target-postgres."""
    directory, meltano = project
    seed(fake, (30, 80, 20))
    assert any(r["email"] and "@" in r["email"] for r in fake.records("end_users"))
    assert any((r.get("end_user") or {}).get("email") for r in fake.records("responses"))
    postgres.psql("CREATE DATABASE meltano_recipe")
    # Run the mapper and the target from the tools' virtualenvs instead of installing them again.
    text = (directory / "meltano.yml").read_text()
    for requirement, tool in (("meltano-map-transform==0.12.3", "meltano-map-transform"),
                              ("meltanolabs-target-postgres==0.8.1", "target-postgres")):
        executable = tools.ensure(tool)
        text = re.sub(rf"pip_url: {re.escape(requirement)}\n(\s+)executable: \S+",
                      rf"executable: {executable}", text)
    (directory / "meltano.yml").write_text(text)
    meltano("run", "tap-wootric", "hide-personal-data", "target-postgres",
            extra_env={"TARGET_POSTGRES_PORT": str(postgres.port), "TARGET_POSTGRES_PASSWORD": "unused",
                       "TARGET_POSTGRES_DATABASE": "meltano_recipe"})
    q = lambda sql: postgres.psql(sql, "meltano_recipe")  # noqa: E731
    for stream in STREAMS:
        assert q(f"SELECT count(*) FROM wootric.{stream}") == [[str(len(fake.records(stream)))]], stream
    columns = {tuple(row) for row in q("SELECT table_name, column_name FROM information_schema.columns "
                                         "WHERE table_schema = 'wootric'")}
    assert ("responses", "ip_address") not in columns and ("declines", "ip_address") not in columns
    assert ("responses", "text") in columns and ("end_users", "email") in columns
    # The e-mail addresses are there, as their SHA-256 hashes.
    hashed = {row[0] for row in q("SELECT email FROM wootric.end_users WHERE email IS NOT NULL")}
    truth = {hashlib.sha256(r["email"].encode()).hexdigest() for r in fake.records("end_users") if r["email"]}
    assert hashed == truth
    nested = {row[0] for row in q("SELECT end_user->>'email' FROM wootric.responses WHERE end_user->>'email' <> ''")}
    assert nested and all(re.fullmatch(r"[0-9a-f]{64}", value) for value in nested)
    # No plain e-mail address anywhere in PostgreSQL: every row of every table, read as text.
    for stream in STREAMS:
        assert q(f"SELECT count(*) FROM wootric.{stream} AS t WHERE t::text ~ '{EMAIL}'") == [["0"]], stream


def test_readme_recipe_is_the_example_projects_mapper():
    recipe = yaml.safe_load(readme_block("### Personal data", "yaml", "docs/recipes.md"))
    example = yaml.safe_load(EXAMPLE.read_text())["plugins"]
    assert recipe["mappers"] == example["mappers"]


@pytest.mark.slow
def test_readme_running_commands_work_on_a_first_and_a_next_run(fake, tap, tmp_path):
    seed(fake, (20, 30, 10))
    (tmp_path / "config.json").write_text(json.dumps(fake.config()))
    script = "set -euo pipefail\n" + readme_block("## Running", "bash")
    path = os.pathsep.join([str(Path(TAP).parent), str(tools.ensure("target-jsonl").parent), os.environ["PATH"]])
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": path, "TAP_WOOTRIC_TIME_SCALE": "0.01"})
    tap.outputs += [proc.stdout, proc.stderr]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "state file not found" not in proc.stderr
    state = json.loads((tmp_path / "state.json").read_text())
    assert set(STREAMS) <= set(state["bookmarks"])
    # The next run resumed: it read end users from the first run's bookmark, not from start_date.
    starts = [r["params"].get("updated[gte]") for r in fake.requests if r["path"] == "/v1/end_users"]
    assert len(set(starts)) > 1, starts
