"""Every edit reaches the warehouse: the read strategy each API world gets, through the real CLI."""

from __future__ import annotations

import contextlib
import os
import signal
from datetime import timedelta

import pytest
from helpers import NOW, YEARS_AGO, lookback_days, read_strategies, select

pytestmark = pytest.mark.slow  # Thousands of rows, several syncs per scenario.

DAY = timedelta(days=1)


def responses_only(tap, fake):
    return select(tap.discover(fake.config()), {"responses": None})


def latest_records(*runs):
    latest = {}
    for run in runs:
        for record in run.records("responses"):
            latest[record["id"]] = record
    return latest


def first_sync(tap, fake, count):
    """`count` responses over three years, synced once: (catalog, the first run)."""
    fake.generate("responses", count, YEARS_AGO, NOW - DAY)
    catalog = responses_only(tap, fake)
    first = tap.run(fake.config(), catalog=catalog)
    assert first.returncode == 0, first.stderr
    return catalog, first


def old_ids(fake, days, count, step=1):
    cutoff = NOW - timedelta(days=days)
    return [r["id"] for r in fake.records("responses") if r["created_at"] < cutoff][:count * step:step]


@pytest.fixture
def world_b(make_fake):
    """The fake's default world for /responses: sort_key=updated_at honoured, updated[...] ignored."""
    return make_fake(seed=21)


def test_strategy_b_catches_15_edits_to_old_responses_within_five_requests(world_b, tap):
    fake = world_b
    catalog, first = first_sync(tap, fake, 400)
    edited = old_ids(fake, 200, 15)
    assert len(edited) == 15
    for record_id in edited:
        fake.update("responses", record_id, score=0)
    fake.clear_log()
    second = tap.run(fake.config(reconcile_runs=0), catalog=catalog, state=first.final_state)
    assert second.returncode == 0, second.stderr
    assert "responses: read strategy: newest-first edit walk (the API ignores updated[...] but sorts on " \
           "updated_at on /responses)" in second.stderr
    latest = latest_records(second)
    assert set(edited) <= set(latest) and all(latest[i]["score"] == 0 for i in edited)
    assert len(fake.list_requests("responses")) <= 5


def test_strategy_b_bulk_edit_of_2000_rows_stays_within_55_requests(world_b, tap):
    fake = world_b
    catalog, first = first_sync(tap, fake, 3000)
    candidates = old_ids(fake, 60, 10_000)
    edited = candidates[:: max(1, len(candidates) // 2000)][:2000]
    assert len(edited) == 2000
    for record_id in edited:
        fake.update("responses", record_id, text="bulk re-tag")
    fake.clear_log()
    second = tap.run(fake.config(reconcile_runs=0), catalog=catalog, state=first.final_state)
    assert second.returncode == 0, second.stderr
    latest = latest_records(second)
    assert set(edited) <= set(latest) and all(latest[i]["text"] == "bulk re-tag" for i in edited)
    requests = fake.list_requests("responses")
    assert len(requests) <= 55, len(requests)
    assert all(int(r["params"]["page"]) <= 30 for r in requests)


def test_strategy_b_rows_deleted_mid_walk_cost_no_other_row(world_b, tap):
    fake = world_b
    catalog, first = first_sync(tap, fake, 1200)
    edited = old_ids(fake, 30, 400)
    for record_id in edited:
        fake.update("responses", record_id, score=1)
    doomed = iter(edited[::7])

    def delete_some(server):
        for _ in range(3):
            server.delete("responses", next(doomed))

    base = fake.api_request_count
    for n in (3, 4, 5, 6):  # while the walk pages (after the two probes)
        fake.on_request(base + n, delete_some)
    second = tap.run(fake.config(reconcile_runs=0), catalog=catalog, state=first.final_state)
    assert second.returncode == 0, second.stderr
    alive = fake.ids("responses")
    missing = [i for i in edited if i in alive and i not in latest_records(second)]
    assert missing == []


def test_strategy_b_edits_made_during_the_first_sync_reach_the_next_run(world_b, tap):
    fake = world_b
    fake.generate("responses", 900, YEARS_AGO, NOW - DAY)
    catalog = responses_only(tap, fake)
    oldest = old_ids(fake, 100, 20)
    # Edit old rows (long passed by the created scan) while run 1 is paging.
    base = fake.api_request_count
    for n, record_id in zip(range(8, 18), oldest[::2]):
        fake.on_request(base + n, lambda server, record_id=record_id: server.update("responses", record_id,
                                                                                  score=10))
    first = tap.run(fake.config(), catalog=catalog)
    assert first.returncode == 0, first.stderr
    second = tap.run(fake.config(reconcile_runs=0), catalog=catalog, state=first.final_state)
    latest = latest_records(first, second)
    assert all(latest[i]["score"] == 10 for i in oldest[::2])


def test_strategy_c_catches_an_edit_of_any_age_within_reconcile_runs(tap, make_fake):
    fake = make_fake(seed=22)
    fake.ignore_updated_sort = {"responses"}
    fake.generate("responses", 600, YEARS_AGO, NOW - DAY)
    catalog = responses_only(tap, fake)
    runs = 3
    state = tap.run(fake.config(reconcile_runs=runs), catalog=catalog).final_state
    by_age = sorted(fake.records("responses"), key=lambda r: r["created_at"])
    edited = [by_age[0]["id"], by_age[300]["id"], by_age[-200]["id"]]
    for record_id in edited:
        fake.update("responses", record_id, score=4)
    seen = {}
    for _ in range(runs):
        fake.clear_log()
        run = tap.run(fake.config(reconcile_runs=runs), catalog=catalog, state=state)
        assert run.returncode == 0, run.stderr
        assert read_strategies(fake.list_requests("responses")) == ["lookback rescan"]
        state = run.final_state
        seen.update(latest_records(run))
    assert all(seen[i]["score"] == 4 for i in edited)
    # The pass completed in the last run: its table version is activated.
    assert len(run.activations("responses")) == 1


def test_strategy_c_log_says_where_the_pass_stands(tap, make_fake):
    fake = make_fake(seed=23)
    fake.ignore_updated_sort = {"responses"}
    fake.generate("responses", 500, YEARS_AGO, NOW - DAY)
    catalog = responses_only(tap, fake)
    first = tap.run(fake.config(reconcile_runs=5), catalog=catalog)
    second = tap.run(fake.config(reconcile_runs=5), catalog=catalog, state=first.final_state)
    assert "rows read in 1 run(s) of about 500; it completes within 4 more run(s), by when every edit older " \
           "than the lookback has been caught" in second.stderr


def test_a_decline_edit_would_still_be_caught_by_the_next_run(tap, make_fake):
    fake = make_fake(seed=24)
    fake.generate("declines", 300, YEARS_AGO, NOW - DAY)
    catalog = select(tap.discover(fake.config()), {"declines": None})
    first = tap.run(fake.config(), catalog=catalog)
    fake.clear_log()
    idle = tap.run(fake.config(reconcile_runs=0), catalog=catalog, state=first.final_state)
    # Never edited: the probe cannot prove the sort, so declines take the lookback rescan, and a lookback of the
    # configured 30 days, since no reconciliation pass would catch an edit (reconcile_runs is 0).
    reads = fake.list_requests("declines")
    assert read_strategies(reads) == ["lookback rescan"] and lookback_days(reads) == 30
    oldest = min(fake.records("declines"), key=lambda r: r["created_at"])["id"]
    fake.update("declines", oldest, origin_url="https://edited.example.com/")
    fake.clear_log()
    second = tap.run(fake.config(reconcile_runs=0), catalog=catalog, state=idle.final_state)
    # The edit itself proves the sort (an old row at the top), so the walk finds it at once.
    assert read_strategies(fake.list_requests("declines")) == ["newest-first edit walk"]
    assert {r["id"]: r for r in second.records("declines")}[oldest]["origin_url"] == "https://edited.example.com/"


@pytest.mark.parametrize("world, kill_at", [("b", 3), ("b", 5), ("c", 3), ("c", 6), ("a", 4)])
def test_a_kill_in_each_strategy_then_a_resume_loses_no_edit(tap, make_fake, world, kill_at):
    fake = make_fake(seed=25, honour_updated_filter={"responses"} if world == "a" else None)
    if world == "c":
        fake.ignore_updated_sort = {"responses"}
    fake.generate("responses", 700, YEARS_AGO, NOW - DAY)
    recent = fake.generate("responses", 200, NOW - 20 * DAY, NOW - DAY)
    catalog = responses_only(tap, fake)
    first = tap.run(fake.config(reconcile_runs=4), catalog=catalog)
    edited = (recent if world == "c" else old_ids(fake, 60, 150))[::2]
    for record_id in edited:
        fake.update("responses", record_id, score=7)
    holder = {}

    def kill(server):
        with contextlib.suppress(ProcessLookupError):
            os.kill(holder["proc"].pid, signal.SIGKILL)

    fake.on_request(fake.api_request_count + kill_at, kill)
    holder["proc"] = tap.start(fake.config(reconcile_runs=4), catalog=catalog, state=first.final_state)
    killed = tap.finish(holder["proc"])
    assert killed.returncode == -signal.SIGKILL
    states = [m for m in killed.messages if m["type"] == "STATE"]
    last = max(i for i, m in enumerate(killed.messages) if m["type"] == "STATE")
    kept = [m["record"] for m in killed.messages[:last] if m["type"] == "RECORD"]
    resumed = tap.run(fake.config(reconcile_runs=4), catalog=catalog, state=states[-1]["value"])
    assert resumed.returncode == 0, resumed.stderr
    latest = {r["id"]: r for r in kept}
    latest.update(latest_records(resumed))
    assert all(latest[i]["score"] == 7 for i in edited)
