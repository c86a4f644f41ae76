"""Every stream, day streams and CXI included, through the two file targets the README names besides
target-jsonl: target-duckdb (typed columns) and meltanolabs-target-csv (text). The README's rows for them
say what the tests see."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Dict
from zoneinfo import ZoneInfo

import pytest
import tools
from fake import FakeWootric
from helpers import ALL_STREAMS, NOW, TapRunner, kind_of, leaked_secrets, readme_table_row, secrets_of, select

# The column types target-duckdb 0.8.0 gives each kind of field (DuckDB's information_schema names).
DUCKDB_TYPES = {
    "object": "JSON", "boolean": "BOOLEAN", "integer": "BIGINT", "number": "DOUBLE", "string": "VARCHAR",
    "date-time": "TIMESTAMP", "date": "VARCHAR", "array of strings": "JSON", "array of objects": "JSON",
    "array of integers": "JSON",
}


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    """One run of the tap with every stream selected, from the first day of last month (account-local)."""
    tmp_path = tmp_path_factory.mktemp("landing-files")
    with FakeWootric(seed=23) as fake:
        first_day = (datetime.now(ZoneInfo("America/Los_Angeles")).date().replace(day=1) - timedelta(days=1)).replace(
            day=1)
        low = fake.day_bounds(first_day)[0]
        for stream, count in (("end_users", 20), ("responses", 60), ("declines", 10)):
            fake.generate(stream, count, low, NOW - timedelta(hours=2))
        fake.generate_segments(3)
        fake.generate_cxi(responses=10, imports=1, projects=1, tags=2)
        tap = TapRunner(tmp_path)
        config = fake.config(start_date=low.strftime("%Y-%m-%dT%H:%M:%SZ"))
        catalog = select(tap.discover(config), {name: None for name in ALL_STREAMS})
        run = tap.run(config, catalog=catalog)
        assert run.returncode == 0, run.stderr[-3000:]
        assert not leaked_secrets(tap.outputs, secrets_of(fake))
    keys = {stream: {tuple(record[key] for key in run.schemas()[stream]["key_properties"])
                     for record in run.records(stream)} for stream in ALL_STREAMS}
    assert all(keys.values()), {stream for stream, found in keys.items() if not found}
    schemas = {entry["tap_stream_id"]: entry["schema"] for entry in catalog["streams"]}
    return tmp_path, run, keys, schemas


def load(tool: str, config: Dict[str, Any], tmp_path: Path, stdin: str) -> None:
    path = tmp_path / f"{tool}.json"
    path.write_text(json.dumps(config))
    proc = subprocess.run([str(tools.ensure(tool)), "--config", str(path)], input=stdin, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{tool}: {proc.stderr[-3000:]}"


def test_target_duckdb_lands_every_stream_typed(output):
    tmp_path, run, keys, schemas = output
    database = tmp_path / "landing.duckdb"
    load("target-duckdb", {"path": str(database), "default_target_schema": "wootric"}, tmp_path, run.stdout)
    # DuckDB is read with the duckdb of the target's own virtualenv (the file format follows its version).
    script = "\n".join((
        "import duckdb, json, sys",
        "c = duckdb.connect(sys.argv[1], read_only=True)",
        "types = c.execute(\"SELECT table_name, column_name, data_type FROM information_schema.columns \"",
        "                  \"WHERE table_schema = 'wootric'\").fetchall()",
        "counts = {t: c.execute('SELECT count(*) FROM wootric.' + t).fetchone()[0] for t in sys.argv[2:]}",
        "print(json.dumps({'types': types, 'counts': counts}))"))
    proc = subprocess.run([str(tools.ensure("target-duckdb").parent / "python"), "-c", script, str(database),
                           *ALL_STREAMS], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout)
    types = {(table, column): data_type for table, column, data_type in found["types"]}
    wrong = {}
    for stream in ALL_STREAMS:
        assert found["counts"][stream] == len(keys[stream]), stream
        for name, schema in schemas[stream]["properties"].items():
            if types.get((stream, name)) != DUCKDB_TYPES[kind_of(schema)]:
                wrong[(stream, name)] = (kind_of(schema), types.get((stream, name)))
    assert not wrong, f"field: (kind, landed as) {wrong}"
    # The README's row says what the landing test sees (see test_landing.LANDING_COLUMNS for the fields).
    from test_landing import LANDING_COLUMNS
    cells = readme_table_row("target-duckdb 0.8.0")[1:]
    assert [cell.split(" (")[0] for cell in cells] == [f"`{types[field]}`" for field in LANDING_COLUMNS]


def test_meltanolabs_target_csv_writes_every_stream(output):
    tmp_path, run, keys, schemas = output
    directory = tmp_path / "csv"
    directory.mkdir()
    load("meltanolabs-target-csv", {"output_path": str(directory), "file_naming_scheme": "{stream_name}.csv"},
         tmp_path, run.stdout)
    for stream in ALL_STREAMS:
        with (directory / f"{stream}.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert {tuple(row[key] for key in run.schemas()[stream]["key_properties"]) for row in rows} == {
            tuple(str(value) for value in key) for key in keys[stream]}, stream
        assert set(rows[0]) == set(schemas[stream]["properties"]), stream
    with (directory / "responses.csv").open(newline="") as handle:
        row = next(csv.DictReader(handle))
    # What the README's row says: date-times rewritten with a space and +00:00, objects and arrays as Python reprs.
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00:00", row["created_at"]), row["created_at"]
    assert row["end_user"].startswith("{'") and row["tags"].startswith("[")
    cells = readme_table_row("meltanolabs-target-csv 0.5.0")
    assert "`2024-01-02 00:00:00+00:00`" in cells[4] and "Python repr" in cells[1]
