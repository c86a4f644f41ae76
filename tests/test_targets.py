"""The tap piped into real Singer tools: target-jsonl, singer-check-tap and meltanolabs-target-postgres
on a real PostgreSQL. Each tool runs from its own virtualenv (tests/tools.py)."""

from __future__ import annotations

import json
import time
from datetime import timedelta, timezone
from pathlib import Path

import pytest
import tools
from helpers import NOW, STREAMS, last_state, nps_by_month, pipe, seed

pytestmark = pytest.mark.slow  # Real targets in their own virtualenvs, on PostgreSQL.

SCHEMAS = Path(__file__).resolve().parent.parent / "tap_wootric" / "schemas"


def utc_text(moment):
    return moment.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S")


def test_target_jsonl_holds_exactly_the_fake_records(fake, tap, tmp_path):
    seed(fake, (80, 200, 60))
    config_path = tmp_path / "target.json"
    config_path.write_text(json.dumps({"destination_path": str(tmp_path / "out"), "do_timestamp_file": False}))
    (tmp_path / "out").mkdir()
    pipe(tap, fake.config(), [str(tools.ensure("target-jsonl")), "-c", str(config_path)])
    for stream in STREAMS:
        lines = (tmp_path / "out" / f"{stream}.jsonl").read_text(encoding="utf-8").splitlines()
        landed = {row["id"]: row for row in map(json.loads, lines)}
        truth = {row["id"]: row for row in fake.records(stream)}
        assert len(lines) == len(truth) and set(landed) == set(truth), stream
        for record_id, row in truth.items():
            got = landed[record_id]
            assert got["updated_at"][:19] == utc_text(row["updated_at"])
            if stream == "responses":
                assert got["tags"] == row["tags"] and got["text"] == row["text"]
                assert got["end_user"]["properties"] == row["end_user"]["properties"]
            if stream == "end_users":
                assert got["properties"] == row["properties"] and got["settings"] == row["settings"]


def test_singer_check_tap_validates_every_message(fake, tap, tmp_path):
    seed(fake, (50, 120, 40))
    target = pipe(tap, fake.config(), [str(tools.ensure("singer-tools"))], cwd=tmp_path)
    assert "valid" in target.stdout.lower()
    assert "records" in target.stdout.lower() or "record" in target.stdout.lower()


# -- PostgreSQL ---------------------------------------------------------------------------------------------


def target_postgres_config(tmp_path, server, database):
    server.psql(f"CREATE DATABASE {database}")
    path = tmp_path / f"{database}.json"
    # The target insists on a password even where the server trusts every local connection.
    path.write_text(json.dumps({"host": "127.0.0.1", "port": server.port, "user": "postgres", "password": "unused",
                                "database": database, "default_target_schema": "wootric"}))
    return path


def test_target_postgres_lands_typed_tables_upserts_and_answers_nps(fake, tap, tmp_path, postgres):
    seed(fake, (120, 400, 90))
    recent = fake.generate("responses", 10, NOW - timedelta(days=20), NOW - timedelta(days=1))
    config_path = target_postgres_config(tmp_path, postgres, "wootric_e2e")
    target_argv = [str(tools.ensure("target-postgres")), "--config", str(config_path)]
    first = pipe(tap, fake.config(), target_argv)
    q = lambda sql: postgres.psql(sql, "wootric_e2e")  # noqa: E731

    for stream in STREAMS:
        assert q(f"SELECT count(*), count(DISTINCT id) FROM wootric.{stream}") == [[str(len(fake.records(stream)))] * 2]
    types = dict(map(tuple, q("SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                              "WHERE table_schema = 'wootric'")))
    assert types["responses.end_user"] == "jsonb" and types["end_users.properties"] == "jsonb"
    assert types["responses.tags"] == "ARRAY"
    for column in ("end_users.last_surveyed", "end_users.last_seen_at", "end_users.external_created_at",
                   "responses.created_at", "responses.updated_at", "declines.created_at"):
        assert types[column].startswith("timestamp"), column
    # No field of the catalog went missing on the way (some targets drop anyOf fields silently).
    for stream in STREAMS:
        landed = {column.split(".", 1)[1] for column in types if column.startswith(stream + ".")}
        wanted = set(json.loads((SCHEMAS / f"{stream}.json").read_text())["properties"])
        assert wanted <= landed, (stream, wanted - landed)

    # A second sync after edits upserts: no duplicate ids, edited values land.
    edited = recent[:5]
    for record_id in edited:
        fake.update("responses", record_id, score=0)
    new_user = fake.create("end_users")
    state = last_state(first)
    time.sleep(1)  # the edits lie in an earlier second than the second sync's start
    pipe(tap, fake.config(), target_argv, state=state)
    for stream in STREAMS:
        assert q(f"SELECT count(*), count(DISTINCT id) FROM wootric.{stream}") == [[str(len(fake.records(stream)))] * 2]
    ids = ",".join(map(str, edited))
    assert q(f"SELECT DISTINCT score FROM wootric.responses WHERE id IN ({ids})") == [["0"]]
    assert q(f"SELECT count(*) FROM wootric.end_users WHERE id = {new_user}") == [["1"]]

    # NPS by month in SQL agrees with the source data.
    sql_nps = {month: float(nps) for month, nps in q(
        "SELECT to_char(created_at, 'YYYY-MM'), "
        "round(100.0 * (count(*) FILTER (WHERE score >= 9) - count(*) FILTER (WHERE score <= 6)) / count(*), 2) "
        "FROM wootric.responses WHERE score IS NOT NULL AND NOT excluded_from_calculations GROUP BY 1")}
    assert sql_nps == nps_by_month(fake.records("responses"), digits=2)  # as the query above rounds
