"""The README leads a newcomer: it is short, its contents and links resolve, it names the distribution and
the tested Pythons, its Meltano block declares every setting, and its Meltano commands run as written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
import tools
import yaml
from helpers import EXAMPLE, HUB, STREAMS, about_settings, seed, settings_of

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
DISTRIBUTION = re.search(r'name="([^"]+)"', (ROOT / "setup.py").read_text()).group(1)


def block(heading: str, language: str, path: Path = README) -> str:
    """The first code block in `language` after `heading`."""
    text = path.read_text()
    return re.search(rf"```{language}\n(.*?)```", text[text.index(heading):], re.S).group(1)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_is_short_with_a_table_of_contents_of_its_sections():
    text = README.read_text()
    assert len(text.splitlines()) <= 305
    sections = re.findall(r"^## (.+)$", text, re.M)
    contents = text[text.index("**Contents:**"):text.index("\n\n", text.index("**Contents:**"))]
    assert re.findall(r"\]\(#([^)]+)\)", contents) == [anchor(s) for s in sections if s not in ("License",)]
    # What a user does comes before how it works, and Reliability keeps its table.
    order = [anchor(s) for s in sections]
    assert order.index("quick-start-no-wootric-account-needed") < order.index("use-with-meltano") < order.index(
        "targets-and-what-lands") < order.index("troubleshooting") < order.index("how-it-works")
    assert "| fault | what the tap does |" in text[text.index("## Reliability"):]


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(page):
    text = page.read_text()
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if urlparse(target).scheme:
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif fragment and linked.suffix == ".md":
            anchors = {anchor(h) for h in re.findall(r"^#+ (.+)$", linked.read_text(), re.M)}
            if fragment not in anchors:
                broken.append(target)
    assert not broken, broken


def test_one_distribution_name_everywhere():
    assert DISTRIBUTION == "singer-tap-wootric"
    readme = README.read_text()
    assert f"pip install {DISTRIBUTION}" in readme
    hub = yaml.safe_load(HUB.read_text())
    assert hub["pip_url"] == DISTRIBUTION and hub["namespace"] == "tap_wootric"
    # The Hub names a variant after the repository's owner.
    assert hub["variant"] == urlparse(hub["repo"]).path.strip("/").split("/")[0]
    snippet = yaml.safe_load(block("## Use with Meltano", "yaml"))["plugins"]["extractors"][0]
    assert snippet["pip_url"] == DISTRIBUTION and snippet["namespace"] == hub["namespace"]
    assert f"pip_url: {DISTRIBUTION}" in EXAMPLE.read_text()  # the example installs from the clone, and says so
    assert f"`pip_url` is `{DISTRIBUTION}`" in (ROOT / "docs" / "releasing.md").read_text()


def test_readme_names_the_pythons_make_test_runs():
    from test_release import pythons_make_test_runs

    versions = pythons_make_test_runs()
    text = " ".join(README.read_text().split())
    assert f"Python {versions[0]} to {versions[-1]}." in text
    others = [v for v in versions if v != "3.11"]
    assert f"under {', '.join(others[:-1])} and {others[-1]}" in text


def test_readme_meltano_block_declares_every_setting_of_about():
    snippet = yaml.safe_load(block("## Use with Meltano", "yaml"))["plugins"]["extractors"][0]
    assert settings_of(snippet) == about_settings()


def test_readme_landing_table_names_only_tested_targets():
    text = README.read_text()
    table = text[text.index("## Targets and what lands"):text.index("## Settings")]
    named = re.findall(r"^\| ([a-z-]+) \d", table, re.M)
    tested = {"target-jsonl", "meltanolabs-target-postgres", "pipelinewise-target-postgres", "target-duckdb",
              "meltanolabs-target-csv"}
    assert set(named) == tested
    requirements = " ".join(requirement for requirement, _ in tools.TOOLS.values())
    for row in re.findall(r"^\| ([a-z-]+ \d[\d.]*) ", table, re.M):
        name, version = row.split()
        assert f"{'target-postgres' if name == 'meltanolabs-target-postgres' else name}=={version}" in requirements, row


@pytest.fixture
def meltano_env():
    env = {**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false", "TAP_WOOTRIC_TIME_SCALE": "0.01"}
    env.pop("VIRTUAL_ENV", None)
    return env


@pytest.mark.slow
def test_meltano_knows_every_setting_from_the_readme_block_and_the_hub_definition(tmp_path, meltano_env):
    """A project built from the README block, or added --from-ref the Hub definition, takes every setting of
    --about without "Custom, possibly unsupported" (Meltano's `Unknown setting` warning)."""
    meltano = str(tools.ensure("meltano"))
    values = {name: ("5" if kind == "integer" else "eu" if kind == "options" else "x")
              for name, (kind, _) in about_settings().items()}
    for source in ("readme", "hub"):
        project = tmp_path / source
        project.mkdir()
        document = {"default_environment": "dev", "send_anonymous_usage_stats": False, "project_id": source,
                    "environments": [{"name": "dev"}], "plugins": {}}
        if source == "readme":
            document["plugins"] = yaml.safe_load(block("## Use with Meltano", "yaml"))["plugins"]
        (project / "meltano.yml").write_text(yaml.safe_dump(document))
        if source == "hub":
            subprocess.run([meltano, "add", "--plugin-type", "extractor", "tap-wootric", "--from-ref", str(HUB),
                            "--no-install"], cwd=project, env=meltano_env, capture_output=True, text=True,
                           timeout=120, check=True)
        definition = yaml.safe_load((project / "meltano.yml").read_text())
        extractor = definition["plugins"]["extractors"][0]
        assert extractor["pip_url"] == DISTRIBUTION
        extractor["config"] = values
        (project / "meltano.yml").write_text(yaml.safe_dump(definition))
        proc = subprocess.run([meltano, "config", "list", "tap-wootric", "--all"], cwd=project, env=meltano_env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "Custom, possibly unsupported" not in proc.stdout, (source, proc.stdout)
        listed = set(re.findall(r"^(\w+) .*\[env: TAP_WOOTRIC_\w+\]", proc.stdout, re.M))
        assert listed == set(values), (source, listed ^ set(values))


@pytest.mark.slow
def test_readme_meltano_commands_run_as_written_into_jsonl_and_postgres(fake, tap, tmp_path, postgres, meltano_env):
    """The README's example-project block, with its placeholders filled in: the environment points the tap at
    the fake API and target-postgres at the test cluster's port, as the README says to for another server."""
    seed(fake, (15, 40, 10))
    project = tmp_path / "examples" / "meltano"
    project.mkdir(parents=True)
    text = EXAMPLE.read_text().replace("pip_url: -e ../..", f"pip_url: -e {ROOT}")
    # The loaders come from the tools' virtualenvs instead of being installed again.
    for requirement, tool in (("target-jsonl==0.1.4", "target-jsonl"),
                              ("meltanolabs-target-postgres==0.8.1", "target-postgres")):
        text = re.sub(rf"pip_url: {re.escape(requirement)}\n(\s+)executable: \S+",
                      rf"executable: {tools.ensure(tool)}", text)
    (project / "meltano.yml").write_text(text)
    postgres.psql("CREATE DATABASE wootric")  # the README: "create the database first"
    script = block("is a complete project", "bash")
    assert "TARGET_POSTGRES_PASSWORD=" in script and "meltano run tap-wootric target-postgres" in script
    for placeholder, value in (("your-client-id", fake.client_id), ("your-client-secret", fake.client_secret),
                               ("your-postgres-password", "unused")):
        assert placeholder in script
        script = script.replace(placeholder, value)
    env = {**meltano_env, "PATH": os.pathsep.join([str(tools.ensure("meltano").parent), os.environ["PATH"]]),
           "TAP_WOOTRIC_API_URL": fake.api_url, "TAP_WOOTRIC_OAUTH_URL": fake.oauth_url,
           "TAP_WOOTRIC_START_DATE": "2015-01-01T00:00:00Z", "TARGET_POSTGRES_PORT": str(postgres.port)}
    try:
        proc = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)
        tap.outputs += [proc.stdout, proc.stderr]
        assert proc.returncode == 0, proc.stderr[-4000:]
        for stream in STREAMS:
            lines = (project / "output" / f"{stream}.jsonl").read_text().splitlines()
            assert {json.loads(line)["id"] for line in lines} == {r["id"] for r in fake.records(stream)}, stream
            count = postgres.psql(f"SELECT count(DISTINCT id) FROM wootric.{stream}", "wootric")
            assert count == [[str(len(fake.records(stream)))]], stream
    finally:
        shutil.rmtree(project / ".meltano", ignore_errors=True)
