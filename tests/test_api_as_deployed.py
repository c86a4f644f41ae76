"""The API as deployed, not as documented: an account that lacks a feature, a clock that disagrees with
this machine's, a row that becomes visible after its updated_at, and a Retry-After given as a date. None of
them may fail a run that had nothing to fail, or lose a row."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from helpers import NOW, STREAMS, log_lines, select

from tap_wootric.timeutil import to_epoch_seconds

# What each refusable route takes with it when the account lacks it.
OPTIONAL = {
    "segments": ("segments",),
    "survey_templates": ("survey_templates",),
    "nps_summary": ("nps_summary",),
    "v2": ("email_stats", "email_stats_sources"),
    "cxi": ("cxi_responses", "cxi_tags", "cxi_projects", "cxi_imports"),
}
ALL_OPTIONAL = tuple(name for names in OPTIONAL.values() for name in names)
FULL_TABLE = ("segments", "survey_templates", "email_stats_sources", "cxi_responses", "cxi_tags", "cxi_projects",
              "cxi_imports")
START = NOW - timedelta(days=4)
WORKERS = 4  # the default


def populated(make_fake, **options):
    fake = make_fake(**options)
    for stream, count in zip(STREAMS, (30, 60, 20)):
        fake.generate(stream, count, START + timedelta(hours=1), NOW - timedelta(hours=2))
    fake.generate_segments(3)
    fake.generate_cxi(responses=20, imports=1, projects=1, tags=2)
    return fake


def every_stream(tap, fake, config):
    catalog = tap.discover(config)
    return select(catalog, {entry["tap_stream_id"]: None for entry in catalog["streams"]})


def prior_state():
    """A state from an earlier run: the skipped streams must keep exactly this."""
    bookmarks = {name: {"initial_full_table_complete": True} for name in FULL_TABLE}
    bookmarks.update({name: {"date": (NOW - timedelta(days=2)).date().isoformat()}
                      for name in ("nps_summary", "email_stats")})
    return {"bookmarks": bookmarks}


@pytest.mark.slow
@pytest.mark.parametrize("status", [401, 403, 404, 424])
@pytest.mark.parametrize("route", sorted(OPTIONAL))
def test_a_refused_optional_endpoint_is_skipped_and_the_run_succeeds(make_fake, tap, route, status):
    fake = populated(make_fake)
    fake.refuse(route, status)
    config = fake.config(start_date=START.isoformat())
    state = prior_state()
    run = tap.run(config, catalog=every_stream(tap, fake, config), state=state)

    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    for stream in STREAMS:
        assert {record["id"] for record in run.records(stream)} == fake.ids(stream)
    skipped = OPTIONAL[route]
    for stream in ALL_OPTIONAL:
        assert bool(run.records(stream)) == (stream not in skipped), stream
    # One WARNING for the stream, or for the group on a shared API, naming what refused and how.
    warnings = [line for line in log_lines(run.stderr, "WARNING") if " skipped: " in line]
    assert len(warnings) == 1, run.stderr
    assert f"HTTP {status}" in warnings[0] and all(name in warnings[0] for name in skipped)
    # The closing summary lists every skipped stream, and their state is left as it was.
    summary = log_lines(run.stderr, "WARNING", "Sync finished")
    assert len(summary) == 1 and all(f"{name} (" in summary[0] for name in skipped)
    for name in skipped:
        assert run.final_state["bookmarks"].get(name) == state["bookmarks"].get(name)
    # A refused shared API is not asked once per stream: only the requests the workers had sent before the
    # refusal came back are refused (the first of each of its streams started at once, and of a day
    # stream's days, at most WORKERS + 1 in all), each once, twice for a 401 (one new token, one retry).
    # With workers: 1, exactly once: test_a_refused_shared_api_is_asked_once_with_one_worker.
    prefix = {"v2": "/v2/", "cxi": "/cxi/"}.get(route)
    if prefix:
        asked = len([r for r in fake.requests if r["path"].startswith(prefix)]) / (2 if status == 401 else 1)
        assert 1 <= asked <= WORKERS + 1


@pytest.mark.parametrize("status", [401, 404])
@pytest.mark.parametrize("route", ["v2", "cxi"])
def test_a_refused_shared_api_is_asked_once_with_one_worker(make_fake, tap, route, status):
    """The sequential read asks a refusing API once (a 401 twice: one new token, one retry), then skips all
    its streams."""
    fake = populated(make_fake)
    fake.refuse(route, status)
    config = fake.config(start_date=START.isoformat(), workers=1)
    run = tap.run(config, catalog=every_stream(tap, fake, config), state=prior_state())
    assert run.returncode == 0, run.stderr
    assert not any(run.records(stream) for stream in OPTIONAL[route])
    prefix = {"v2": "/v2/", "cxi": "/cxi/"}[route]
    assert len([r for r in fake.requests if r["path"].startswith(prefix)]) == (2 if status == 401 else 1)


@pytest.mark.parametrize("status", [403, 404])
def test_a_refused_core_stream_still_fails_with_one_line(make_fake, tap, status):
    fake = populated(make_fake)
    fake.refuse("responses", status)
    config = fake.config(start_date=START.isoformat())
    run = tap.run(config, catalog=select(tap.discover(config), {stream: None for stream in STREAMS}))
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    critical = log_lines(run.stderr, "CRITICAL")
    assert len(critical) == 1 and "GET /responses" in critical[0] and f"HTTP {status}" in critical[0]


def changed_at_the_source(fake):
    """Edit two rows and create one in each core stream, stamped on the API's clock; returns their ids."""
    changed = {}
    for stream in STREAMS:
        ids = sorted(fake.ids(stream))
        for record_id in (ids[0], ids[len(ids) // 2]):
            fake.update(stream, record_id)
        changed[stream] = {ids[0], ids[len(ids) // 2], fake.create(stream)}
    return changed


def updated_second(fake, stream, record_id):
    """The whole second of a row's stored updated_at (a datetime in the fake)."""
    stored = next(row["updated_at"] for row in fake.records(stream) if row["id"] == record_id)
    return int(stored.timestamp()) if isinstance(stored, datetime) else to_epoch_seconds(stored)


@pytest.mark.slow
@pytest.mark.parametrize("offset", [-600, 600])
def test_no_row_is_lost_when_the_api_clock_disagrees_with_this_machine(make_fake, tap, offset):
    fake = populated(make_fake, clock_offset=offset)
    margin = 2
    config = fake.config(start_date=START.isoformat(), commit_margin_seconds=margin)
    catalog = select(tap.discover(config), {stream: None for stream in STREAMS})
    first = tap.run(config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    changed = changed_at_the_source(fake)
    time.sleep(margin + 1.5)  # the changes are older than the next run's margin
    second = tap.run(config, catalog=catalog, state=first.final_state)
    assert second.returncode == 0, second.stderr
    for stream in STREAMS:
        emitted = {(record["id"], to_epoch_seconds(record["updated_at"])) for record in second.records(stream)}
        for record_id in changed[stream]:
            assert (record_id, updated_second(fake, stream, record_id)) in emitted, (stream, record_id)
        assert {r["id"] for r in first.records(stream)} | {r["id"] for r in second.records(stream)} == \
            fake.ids(stream)
    # The offset is measured and said once, at WARNING past a minute.
    said = log_lines(first.stderr, "WARNING", "The API's clock is about")
    assert len(said) == 1 and ("behind" if offset < 0 else "ahead of") in said[0]
    assert abs(int(said[0].split("about ")[1].split(" s")[0]) - abs(offset)) <= 2


def late_commit_runs(make_fake, tap, margin):
    """An edit saved just before a run, whose transaction commits (becomes visible) only after the run
    has read: does a run after it, within the margin, bring it?"""
    visibility = 6.0
    fake = populated(make_fake, late_visibility=visibility)
    config = fake.config(start_date=START.isoformat(), commit_margin_seconds=margin)
    catalog = select(tap.discover(config), {"end_users": None})
    first = tap.run(config, catalog=catalog)
    edited = sorted(fake.ids("end_users"))[5]
    fake.update("end_users", edited)
    saved = time.time()
    time.sleep(1.1)  # the next run starts in a later second, while the edit is still invisible
    second = tap.run(config, catalog=catalog, state=first.final_state)
    assert time.time() < saved + visibility, "the run took too long to show a late commit"
    time.sleep(max(0.0, saved + max(visibility, margin) + 1.5 - time.time()))
    third = tap.run(config, catalog=catalog, state=second.final_state)
    wanted = (edited, updated_second(fake, "end_users", edited))
    return {(r["id"], to_epoch_seconds(r["updated_at"])) for run in (second, third)
            for r in run.records("end_users")}, wanted


@pytest.mark.slow
def test_a_row_committed_after_a_run_read_is_read_by_a_later_run(make_fake, tap):
    emitted, wanted = late_commit_runs(make_fake, tap, margin=7)
    assert wanted in emitted


@pytest.mark.slow
def test_without_the_margin_a_late_commit_is_lost(make_fake, tap):
    """What the margin is for: the fake's late visibility does hide the row from a bookmark at the run's
    start."""
    emitted, wanted = late_commit_runs(make_fake, tap, margin=0)
    assert wanted not in emitted


def test_retry_after_as_an_http_date_is_waited_out(make_fake, tap):
    fake = populated(make_fake)
    fake.rate_limit_with_date(1, seconds=2)
    config = fake.config(start_date=START.isoformat())
    catalog = select(tap.discover(config), {"end_users": None})
    started = time.monotonic()
    run = tap.run(config, catalog=catalog)
    assert run.returncode == 0, run.stderr
    # Honoured: one 429, then the wait the date asks for (not the default, 0.6 s at the tests' time scale).
    assert [r["status"] for r in fake.requests].count(429) == 1
    assert time.monotonic() - started >= 1.5
    assert {record["id"] for record in run.records("end_users")} == fake.ids("end_users")


def test_without_a_date_header_this_machines_clock_bounds_the_run(make_fake, tap):
    fake = populated(make_fake, send_date=False)
    config = fake.config(start_date=START.isoformat())
    catalog = select(tap.discover(config), {stream: None for stream in STREAMS})
    run = tap.run(config, catalog=catalog)
    assert run.returncode == 0, run.stderr
    assert not log_lines(run.stderr, "INFO", "The API's clock") and not log_lines(run.stderr, "WARNING", "clock")
    for stream in STREAMS:
        assert {record["id"] for record in run.records(stream)} == fake.ids(stream)
    # The signpost is this machine's now: the bookmark is within a few seconds of it.
    bookmark = to_epoch_seconds(run.final_state["bookmarks"]["end_users"]["updated_at"])
    assert abs(bookmark - time.time()) < 30
