"""What the tests share besides fixtures (those are in conftest.py): running the tap CLI and reading its
Singer messages, log lines and METRIC lines; filling fakes; piping into targets; the README's blocks."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple
from zoneinfo import ZoneInfo

import jsonschema
from fake import FakeWootric

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

STREAMS = ("end_users", "responses", "declines")
ALL_STREAMS = ("end_users", "responses", "declines", "segments", "cxi_responses", "cxi_tags", "cxi_projects",
               "cxi_imports", "nps_summary", "email_stats", "email_stats_sources", "survey_templates")
# The day streams cost a request a day, so they get a run of their own from the first day of last month.
DAY_STREAMS = ("nps_summary", "email_stats", "email_stats_sources", "survey_templates")
EXAMPLE = ROOT / "examples" / "meltano" / "meltano.yml"
HUB = ROOT / "meltano-hub" / "tap-wootric.yml"
# The tap's own retry waits (backoff, the 60 s default 429 wait) shrink 100-fold in tests.
TEST_TIME_SCALE = "0.01"
TAP = shutil.which("tap-wootric", path=str(Path(sys.executable).parent)) or shutil.which("tap-wootric")
NOW = datetime.now(timezone.utc)
YEARS_AGO = NOW - timedelta(days=3 * 365)


@dataclass
class TapRun:
    returncode: int
    stdout: str
    stderr: str
    messages: List[Dict[str, Any]] = field(default_factory=list)

    def records(self, stream: Optional[str] = None) -> List[Dict[str, Any]]:
        return [m["record"] for m in self.messages
                if m["type"] == "RECORD" and (stream is None or m["stream"] == stream)]

    def record_messages(self, stream: str) -> List[Dict[str, Any]]:
        return [m for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream]

    def schemas(self) -> Dict[str, Dict[str, Any]]:
        return {m["stream"]: m for m in self.messages if m["type"] == "SCHEMA"}

    def states(self) -> List[Dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> Dict[str, Any]:
        return self.states()[-1]

    def ids(self, stream: str) -> List[int]:
        return [r["id"] for r in self.records(stream)]

    def log(self, level: str = "WARNING", containing: str = "") -> List[str]:
        """The tap's log lines of one level, optionally only those containing a text."""
        return log_lines(self.stderr, level, containing)

    def activations(self, stream: str) -> List[int]:
        """The versions of the stream's ACTIVATE_VERSION messages."""
        return [m["version"] for m in self.messages if m["type"] == "ACTIVATE_VERSION" and m["stream"] == stream]


def parse_messages(stdout: str) -> List[Dict[str, Any]]:
    """Singer messages of a tap's stdout; a killed tap may leave a cut-off last line, which is dropped."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    messages = []
    for number, line in enumerate(lines, start=1):
        try:
            messages.append(json.loads(line))
        except ValueError:
            if number != len(lines) or stdout.endswith("\n"):
                raise
    return messages


def seed(fake: FakeWootric, counts=(120, 300, 80)) -> None:
    """End users, responses and declines over three years, up to two hours ago."""
    fill(fake, counts, YEARS_AGO, NOW - timedelta(hours=2))


class TapRunner:
    """Runs the installed tap-wootric command and keeps everything it printed, for the secrets check."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.count = 0
        self.outputs: List[str] = []

    def argv(self, config: Dict[str, Any], *args: str, state: Optional[Dict[str, Any]] = None,
             catalog: Optional[Dict[str, Any]] = None) -> List[str]:
        self.count += 1
        argv = [TAP, "--config", str(self.write(f"config{self.count}.json", config)), *args]
        if state is not None:
            argv += ["--state", str(self.write(f"state{self.count}.json", state))]
        if catalog is not None:
            argv += ["--catalog", str(self.write(f"catalog{self.count}.json", catalog))]
        return argv

    @staticmethod
    def env(**extra: str) -> Dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1", "TAP_WOOTRIC_TIME_SCALE": TEST_TIME_SCALE, **extra}

    def start(self, config: Dict[str, Any], *args: str, state: Optional[Dict[str, Any]] = None,
              catalog: Optional[Dict[str, Any]] = None) -> subprocess.Popen:
        """Start the tap without waiting; pair with finish()."""
        return subprocess.Popen(self.argv(config, *args, state=state, catalog=catalog), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env())

    def finish(self, proc: subprocess.Popen, timeout: float = 120) -> TapRun:
        stdout, stderr = proc.communicate(timeout=timeout)
        self.outputs += [stdout, stderr]
        return TapRun(proc.returncode, stdout, stderr, parse_messages(stdout))

    def write(self, name: str, value: Any) -> Path:
        path = self.tmp_path / name
        path.write_text(json.dumps(value), encoding="utf-8")
        return path

    def run(self, config: Dict[str, Any], *args: str, state: Optional[Dict[str, Any]] = None,
            catalog: Optional[Dict[str, Any]] = None, timeout: float = 120,
            env: Optional[Dict[str, str]] = None) -> TapRun:
        """Run the tap to the end; `env` adds or overrides environment variables."""
        argv = self.argv(config, *args, state=state, catalog=catalog)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env(**(env or {})))
        self.outputs += [proc.stdout, proc.stderr]
        run = TapRun(proc.returncode, proc.stdout, proc.stderr)
        if not args or "--discover" not in args:
            run.messages = parse_messages(proc.stdout)
        return run

    def discover(self, config: Dict[str, Any]) -> Dict[str, Any]:
        result = self.run(config, "--discover")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def secrets_of(fake: FakeWootric) -> List[str]:
    """Everything that must never be printed: the credentials and every token the fake handed out."""
    return [value for value in (fake.client_secret, fake.password, *fake.tokens_issued,
                                *fake.refresh_tokens_issued) if value]


def leaked_secrets(outputs: List[str], secrets: List[str]) -> List[str]:
    return [secret for secret in secrets if any(secret in text for text in outputs)]


def select(catalog: Dict[str, Any], streams: Dict[str, Optional[List[str]]]) -> Dict[str, Any]:
    """Select the given streams; a list deselects every other non-automatic field of that stream."""
    for entry in catalog["streams"]:
        chosen = entry["tap_stream_id"] in streams
        fields = streams.get(entry["tap_stream_id"])
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = chosen
            elif fields is not None and len(item["breadcrumb"]) == 2:
                item["metadata"]["selected"] = item["breadcrumb"][1] in fields
    return catalog


# -- the tap's stderr ------------------------------------------------------------------------------------------

LOG_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
METRIC = re.compile(r"^[A-Z]+ METRIC: (\{.*\})$")


def log_lines(stderr: str, level: str = "WARNING", containing: str = "") -> List[str]:
    """The log lines of one level (``"WARNING"``, ``"CRITICAL"``...), optionally only those containing a text."""
    return [line for line in stderr.splitlines() if line.startswith(level + " ") and containing in line]


def metrics(stderr: str, name: Optional[str] = None) -> List[Dict[str, Any]]:
    """singer-python's METRIC lines, parsed (``{"type", "metric", "value", "tags"}``), optionally of one metric."""
    found = [json.loads(match.group(1)) for match in map(METRIC.match, stderr.splitlines()) if match]
    return [point for point in found if name is None or point["metric"] == name]


def record_counts(stderr: str) -> Dict[str, int]:
    """Records counted per stream by the ``record_count`` METRIC lines."""
    totals: Dict[str, int] = defaultdict(int)
    for point in metrics(stderr, "record_count"):
        totals[point["tags"]["endpoint"]] += point["value"]
    return dict(totals)


def read_strategies(requests: List[Dict[str, Any]]) -> List[str]:
    """The read strategies a run's list requests of one stream show, in order, named as the tap's log names them:
    the structured signal behind its "read strategy" INFO line (a fallback shows two). Pages of 50 only: the probes'
    one-row request does not count, and their newest-first page is also the walk's first page, so a walk is what
    is left when nothing else was read."""
    kinds: List[str] = []
    walked = False
    for params in (r["params"] for r in requests if r["params"].get("per_page") == "50"):
        order, filtered = (params.get("sort_key"), params.get("sort_order")), "updated[gte]" in params
        if order == ("updated_at", "desc"):
            walked = True
            continue
        kind = {(("updated_at", "asc"), True): "keyset on updated_at",
                (("created_at", "asc"), True): "updated-filtered keyset on the scan field",
                (("created_at", "asc"), False): "lookback rescan"}.get((order, filtered), f"unknown {params}")
        if not kinds or kinds[-1] != kind:
            kinds.append(kind)
    return kinds or (["newest-first edit walk"] if walked else [])


def lookback_days(requests: List[Dict[str, Any]]) -> int:
    """How many days back the first lookback-rescan page of these requests reaches (its created range)."""
    params = next(r["params"] for r in requests if r["params"].get("per_page") == "50"
                  and r["params"].get("sort_order") == "asc" and "updated[gte]" not in r["params"])
    return round((int(params["created[lt]"]) - int(params["created[gte]"])) / 86400)


# -- fakes -------------------------------------------------------------------------------------------------------


def fill(fake: FakeWootric, counts: Sequence[int], start: datetime, end: datetime, *,
         burst: Optional[Tuple[datetime, int]] = None) -> FakeWootric:
    """Generate end users, responses and declines (in that order) between start and end; ``burst``, a
    (second, count) of responses created in one second, comes right after the responses."""
    for stream, count in zip(STREAMS, counts):
        fake.generate(stream, count, start, end)
        if stream == "responses" and burst is not None:
            fake.add_burst("responses", burst[0], burst[1])
    return fake


def recent_days(fake: FakeWootric, days: int, counts: Sequence[int]) -> Tuple[date, str]:
    """Core rows over the account's last `days` days (from an hour after its first midnight to two hours
    ago): that first day, and its midnight as a start_date. The account's today, not UTC's: from 00:00 UTC
    to the account's midnight they are different days."""
    first = datetime.now(ZoneInfo(fake.account_tz)).date() - timedelta(days=days)
    start = fake.day_bounds(first)[0]
    fill(fake, counts, start + timedelta(hours=1), datetime.now(timezone.utc) - timedelta(hours=2))
    return first, start.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- targets -----------------------------------------------------------------------------------------------------


def pipe(tap: TapRunner, config: Dict[str, Any], target_argv: List[str], *, catalog: Optional[Dict[str, Any]] = None,
         state: Optional[Dict[str, Any]] = None, cwd: Optional[Path] = None,
         timeout: float = 300) -> subprocess.CompletedProcess:
    """tap | target through an OS pipe, as a scheduler runs them; both must succeed. Returns the target's run."""
    proc = tap.start(config, state=state, catalog=catalog)
    target = subprocess.run(target_argv, stdin=proc.stdout, capture_output=True, text=True, cwd=cwd, timeout=timeout)
    proc.stdout.close()
    tap_stderr = proc.stderr.read()
    proc.wait(timeout=timeout)
    tap.outputs += [tap_stderr, target.stdout, target.stderr]
    assert proc.returncode == 0, tap_stderr[-3000:]
    assert target.returncode == 0, target.stderr[-3000:]
    return target


def last_state(target: subprocess.CompletedProcess) -> Dict[str, Any]:
    """The state a target printed last (its stdout's last line)."""
    return json.loads(target.stdout.strip().splitlines()[-1])


def nps_by_month(rows: Iterable[Dict[str, Any]], digits: int) -> Dict[str, float]:
    """NPS per UTC month of created_at, from the fake's stored responses, rounded as the SQL it checks rounds."""
    scores = defaultdict(list)
    for row in rows:
        if row["score"] is not None and not row["excluded_from_calculations"]:
            scores[row["created_at"].astimezone(timezone.utc).strftime("%Y-%m")].append(row["score"])
    return {month: round(100 * (sum(s >= 9 for s in v) - sum(s <= 6 for s in v)) / len(v), digits)
            for month, v in scores.items()}


def checker() -> jsonschema.FormatChecker:
    """A format checker that checks date-time (strict-rfc3339 is installed)."""
    return jsonschema.FormatChecker()


# -- the README --------------------------------------------------------------------------------------------------


def readme_block(after: str, language: str, page: str = "README.md") -> str:
    """The first ```language block of the README (or another page of the repository, such as
    docs/recipes.md) after the first line holding ``after``."""
    text = (ROOT / page).read_text(encoding="utf-8")
    match = re.search(rf"```{language}\n(.*?)```", text[text.index(after):], re.S)
    assert match, f"no {language} block after {after!r} in {page}"
    return match.group(1)


def readme_table_row(first_cell: str) -> List[str]:
    """The cells of the README table row whose first cell is ``first_cell``."""
    row = next(line for line in README.read_text(encoding="utf-8").splitlines()
               if line.startswith(f"| {first_cell} "))
    return [cell.strip() for cell in row.strip("|").split("|")]


# -- what the tap says of itself, and what targets make of its schemas ------------------------------------------


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
        if schema.get("format") == "date-time":
            kind = "date_iso8601"
        elif "enum" in schema:
            kind = "options"
        else:
            kind = kinds.get(schema["type"], "string")
        result[name] = (kind, bool(schema.get("secret")))
    return result


def kind_of(schema: Dict[str, Any]) -> str:
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    (kind,) = [t for t in types if t != "null"]
    if kind == "string" and schema.get("format") in ("date-time", "date"):
        return schema["format"]
    if kind == "array":
        items = kind_of(schema["items"])
        return f"array of {items}s"
    return kind


def load_into_postgres(postgres: Any, tool: str, database_key: str, database: str, singer_output: str,
                       work: Path) -> None:
    """Create `database` and load a tap's output into its schema `wootric` with a PostgreSQL target
    (`database_key`: the name that target gives the database in its config)."""
    postgres.psql(f"CREATE DATABASE {database}")
    config_path = work / f"{database}.json"
    # Both targets insist on a password even where the server trusts every local connection.
    config_path.write_text(json.dumps({"host": "127.0.0.1", "port": postgres.port, "user": "postgres",
                                       "password": "unused", database_key: database,
                                       "default_target_schema": "wootric"}))
    import tools  # the targets' virtualenvs

    proc = subprocess.run([str(tools.ensure(tool)), "--config", str(config_path)], input=singer_output,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{tool}: {proc.stderr[-3000:]}"
