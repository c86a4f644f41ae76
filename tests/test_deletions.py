"""Deletions reach the warehouse: the reconciliation pass, its table versions and ACTIVATE_VERSION."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from datetime import timedelta

import pytest
import tools
from helpers import NOW, STREAMS, YEARS_AGO, last_state, pipe, seed, select

from tap_wootric.incremental.reconcile import ReconcilePass

RUNS = 3


@pytest.mark.slow
@pytest.mark.parametrize("hard_delete", [True, False])
def test_rows_deleted_at_the_source_leave_postgres_within_reconcile_runs(fake, tap, tmp_path, postgres, hard_delete):
    seed(fake, (150, 400, 120))
    database = f"wootric_deletions_{str(hard_delete).lower()}"
    postgres.psql(f"CREATE DATABASE {database}")
    target_config = tmp_path / "target.json"
    target_config.write_text(json.dumps({
        "host": "127.0.0.1", "port": postgres.port, "user": "postgres", "password": "unused", "database": database,
        "default_target_schema": "wootric", "hard_delete": hard_delete}))
    target = [str(tools.ensure("target-postgres")), "--config", str(target_config)]
    config = fake.config(reconcile_runs=RUNS)
    q = lambda sql: postgres.psql(sql, database)  # noqa: E731

    state = last_state(pipe(tap, config, target))
    by_age = {stream: sorted(fake.records(stream), key=lambda r: r["created_at"]) for stream in STREAMS}
    deleted = {stream: [rows[0]["id"], rows[len(rows) // 2]["id"], rows[-1]["id"]] for stream, rows in by_age.items()}
    for stream, ids in deleted.items():
        for record_id in ids:
            fake.delete(stream, record_id)
    edited = by_age["responses"][10]["id"]
    for run in range(RUNS):
        if run == 1:  # rows edited and created while the pass runs are kept at their latest version
            fake.update("responses", edited, score=0)
            created = fake.create("responses")
        state = last_state(pipe(tap, config, target, state=state))

    for stream in STREAMS:
        live = {r["id"] for r in fake.records(stream)}
        if hard_delete:
            landed = {int(row[0]) for row in q(f"SELECT id FROM wootric.{stream}")}
        else:
            landed = {int(row[0]) for row in q(f"SELECT id FROM wootric.{stream} WHERE _sdc_deleted_at IS NULL")}
            marked = {int(row[0]) for row in q(f"SELECT id FROM wootric.{stream} WHERE _sdc_deleted_at IS NOT NULL")}
            assert marked == set(deleted[stream]), stream
        assert landed == live, stream
    assert q(f"SELECT score FROM wootric.responses WHERE id = {edited}") == [["0"]]
    assert q(f"SELECT count(*) FROM wootric.responses WHERE id = {created}") == [["1"]]


@pytest.mark.slow
def test_each_pass_sends_one_activate_version_with_a_higher_version(tap, make_fake):
    fake = make_fake(seed=31)
    fake.generate("end_users", 300, YEARS_AGO, NOW - timedelta(days=1))
    catalog = select(tap.discover(fake.config()), {"end_users": None})
    runs = [tap.run(fake.config(reconcile_runs=RUNS), catalog=catalog)]
    for _ in range(2 * RUNS):
        runs.append(tap.run(fake.config(reconcile_runs=RUNS), catalog=catalog, state=runs[-1].final_state))
    sent = [run.activations("end_users") for run in runs]
    # The first sync is a complete read; then a pass every RUNS runs.
    assert [len(v) for v in sent] == [1] + [0] * (RUNS - 1) + [1] + [0] * (RUNS - 1) + [1]
    versions = [v[0] for v in sent if v]
    assert versions == sorted(versions) and len(set(versions)) == 3
    # Every record of a pass carries that pass's version.
    for run, version in zip(runs[1:RUNS + 1], [versions[1]] * RUNS):
        assert {m["version"] for m in run.record_messages("end_users")} <= {version}
    # A routine run re-emits about a tenth of the stream.
    assert all(len(run.records("end_users")) <= 100 + 1 for run in runs[1:])


@pytest.mark.slow
def test_a_pass_that_cannot_reach_every_row_sends_no_activate_version(tap, make_fake):
    fake = make_fake(seed=32)
    fake.generate("declines", 40, YEARS_AGO, NOW - timedelta(days=2))
    fake.add_burst("declines", NOW - timedelta(days=300), 3100)  # more than both ends of the API reach
    catalog = select(tap.discover(fake.config()), {"declines": None})
    first = tap.run(fake.config(reconcile_runs=1), catalog=catalog)
    assert first.returncode == 0, first.stderr
    assert first.activations("declines") == []
    assert "could not prove that it read every row (more rows share the second" in first.stderr
    second = tap.run(fake.config(reconcile_runs=1), catalog=catalog, state=first.final_state)
    assert second.activations("declines") == []
    assert "no ACTIVATE_VERSION is sent" in second.stderr


@pytest.mark.slow
def test_a_stream_deselected_mid_pass_starts_its_pass_over(tap, make_fake):
    fake = make_fake(seed=33)
    seed(fake, (200, 200, 50))
    both = select(tap.discover(fake.config()), {"end_users": None, "responses": None})
    only_responses = select(tap.discover(fake.config()), {"responses": None})
    first = tap.run(fake.config(reconcile_runs=RUNS), catalog=both)
    second = tap.run(fake.config(reconcile_runs=RUNS), catalog=both, state=first.final_state)
    pass_version = second.final_state["bookmarks"]["end_users"]["reconcile"]["version"]
    third = tap.run(fake.config(reconcile_runs=RUNS), catalog=only_responses, state=second.final_state)
    assert "end_users: not selected in this run, so its reconciliation pass" in third.stderr
    runs = [third]
    for _ in range(RUNS):
        runs.append(tap.run(fake.config(reconcile_runs=RUNS), catalog=both, state=runs[-1].final_state))
    sent = [v for run in runs for v in run.activations("end_users")]
    assert pass_version not in sent and len(sent) == 1


def test_a_killed_pass_resumes_with_its_version():
    bookmark = {"reconcile": ReconcilePass(version=77, cursor=1_600_000_000, runs=2, read=400, estimate=1000)
                .to_state()}
    resumed = ReconcilePass.from_state(bookmark, start=1_500_000_000)
    assert (resumed.version, resumed.cursor, resumed.runs, resumed.read) == (77, 1_600_000_000, 2, 400)


def test_slices_spread_a_pass_over_reconcile_runs_and_the_last_run_reads_the_rest():
    running = ReconcilePass(version=1, cursor=0, estimate=1000)
    budgets = []
    for _ in range(10):
        budget = running.row_budget(10)
        budgets.append(budget)
        running.read += budget if budget is not None else 1000 - running.read
        running.runs += 1
    assert budgets[:9] == [100] * 9 and budgets[9] is None
    # Without an estimate (state from before passes existed), slices share the time left evenly.
    timed = ReconcilePass(version=1, cursor=1000)
    assert timed.row_budget(4) is None and timed.slice_end(4, 2000) == 1250
    timed.runs = 3
    assert timed.slice_end(4, 2000) == 2000


def test_a_new_pass_gets_a_higher_version_than_the_last_one():
    done = ReconcilePass.completed_state(version=10**15, rows=500)
    fresh = ReconcilePass.from_state({"reconcile": done}, start=0)
    assert fresh.version > 10**15 and fresh.estimate == 500 and fresh.runs == 0 and fresh.shortfall is None


@pytest.mark.slow
def test_a_kill_mid_pass_then_a_resume_keeps_the_version_and_converges(tap, make_fake):
    fake = make_fake(seed=34)
    fake.generate("end_users", 600, YEARS_AGO, NOW - timedelta(days=1))
    catalog = select(tap.discover(fake.config()), {"end_users": None})
    config = fake.config(reconcile_runs=RUNS)
    first = tap.run(config, catalog=catalog)
    gone = fake.records("end_users")[100]["id"]
    fake.delete("end_users", gone)
    holder = {}

    def kill(server):
        with contextlib.suppress(ProcessLookupError):
            os.kill(holder["proc"].pid, signal.SIGKILL)

    # The run's one keyset page, two pages of its slice, then the kill.
    fake.on_request(fake.api_request_count + 4, kill)
    holder["proc"] = tap.start(config, catalog=catalog, state=first.final_state)
    killed = tap.finish(holder["proc"])
    assert killed.returncode == -signal.SIGKILL
    last = max(i for i, m in enumerate(killed.messages) if m["type"] == "STATE")
    state = killed.messages[last]["value"]
    version = state["bookmarks"]["end_users"]["reconcile"]["version"]
    assert state["bookmarks"]["end_users"]["reconcile"]["read"] > 0, "the kill was meant to land mid-pass"
    stamped = {m["record"]["id"] for m in killed.messages[:last] if m["type"] == "RECORD"}
    sent = []
    for _ in range(RUNS):
        run = tap.run(config, catalog=catalog, state=state)
        assert run.returncode == 0, run.stderr
        assert {m["version"] for m in run.record_messages("end_users")} <= {version}
        stamped |= set(run.ids("end_users"))
        sent += run.activations("end_users")
        state = run.final_state
        if sent:
            break
    assert sent == [version]
    # Every live row carries the version that was activated; the deleted one does not.
    assert fake.ids("end_users") <= stamped and gone not in stamped


@pytest.mark.slow
def test_a_walk_that_cannot_reach_every_edit_sends_no_activate_version(tap, make_fake):
    """1,400 rows created in one second and edited in one second, in a new order on every request:
    no created range can narrow them, so the newest-first walk cannot prove it read them all."""
    fake = make_fake(seed=35, whole_seconds=True, shuffle_ties=True)
    fake.generate("responses", 100, YEARS_AGO, NOW - timedelta(days=1))
    crowd = fake.add_burst("responses", NOW - timedelta(days=90), 1400)
    catalog = select(tap.discover(fake.config()), {"responses": None})
    config = fake.config(reconcile_runs=1)
    first = tap.run(config, catalog=catalog)
    moment = NOW - timedelta(minutes=5)
    for record_id in crowd:
        fake.update("responses", record_id, score=5, at=moment)
    fake.update("responses", fake.records("responses")[0]["id"], score=1, at=moment)  # proves the sort
    state = first.final_state
    state["bookmarks"]["responses"]["updated_at"] = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fake.clear_log()
    second = tap.run(config, catalog=catalog, state=state)
    assert second.returncode == 0, second.stderr
    # The newest-first walk ran: more pages sorted on updated_at, newest first, than the probe's one.
    newest_first = [r for r in fake.list_requests("responses")
                    if (r["params"]["sort_key"], r["params"]["sort_order"], r["params"]["per_page"])
                    == ("updated_at", "desc", "50")]
    assert len(newest_first) > 1
    assert "could not prove that it read every row (" in second.stderr
    assert "created in one second" in second.stderr
    assert second.activations("responses") == []
