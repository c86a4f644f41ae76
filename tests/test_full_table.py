"""Segments and the CXI streams through the real CLI: full reads, ACTIVATE_VERSION, reaching every CXI
response, and accounts without CXI."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from helpers import seed, select

CXI_STREAMS = ("cxi_responses", "cxi_tags", "cxi_projects", "cxi_imports")
WORKERS = 4  # the default


def stream_messages(run, stream):
    return [m for m in run.messages if m.get("stream") == stream and m["type"] in ("RECORD", "ACTIVATE_VERSION")]


def test_segments_are_read_whole_with_activate_version_around_the_first_read(fake, tap):
    fake.generate_segments(7)
    first = tap.run(fake.config())
    assert first.returncode == 0, first.stderr
    messages = stream_messages(first, "segments")
    version = messages[0]["version"]
    # First read: the table version is activated before the rows (the table exists at once) and after them.
    assert [m["type"] for m in messages] == ["ACTIVATE_VERSION"] + ["RECORD"] * 7 + ["ACTIVATE_VERSION"]
    assert {m["version"] for m in messages} == {version}
    assert sorted(r["name"] for r in first.records("segments")) == sorted(s["name"] for s in fake.segments)
    assert all(r["created_at"].endswith("Z") for r in first.records("segments"))
    assert first.schemas()["segments"]["key_properties"] == ["name"]

    del fake.segments[0]
    second = tap.run(fake.config(), state=first.final_state)
    assert second.returncode == 0, second.stderr
    messages = stream_messages(second, "segments")
    # Later reads: rows first, then the new version is activated, so targets drop the deleted segment.
    assert [m["type"] for m in messages] == ["RECORD"] * 6 + ["ACTIVATE_VERSION"]
    assert messages[-1]["version"] > version and {m["version"] for m in messages} == {messages[-1]["version"]}
    assert "version" not in second.final_state["bookmarks"]["segments"]


def cxi_catalog(tap, fake, extra=()):
    return select(tap.discover(fake.config()), {name: None for name in (*CXI_STREAMS, *extra)})


def test_cxi_streams_are_emitted_in_full(fake, tap):
    fake.generate_cxi(responses=300, imports=3, projects=2, tags=4)
    run = tap.run(fake.config(), catalog=cxi_catalog(tap, fake))
    assert run.returncode == 0, run.stderr
    assert sorted(run.ids("cxi_responses")) == sorted(fake.cxi_responses)
    assert sorted(run.ids("cxi_projects")) == sorted(p["id"] for p in fake.cxi_projects)
    assert sorted(run.ids("cxi_imports")) == sorted(i["id"] for i in fake.cxi_imports)
    tags = {t["id"]: t for t in run.records("cxi_tags")}
    assert len(tags) == 4 * 3
    for top in fake.cxi_tags:
        assert tags[top["id"]]["parent_id"] is None
        for child in top["children"]:
            assert tags[child["id"]]["parent_id"] == top["id"]
    response = run.records("cxi_responses")[0]
    truth = fake.cxi_responses[response["id"]]
    assert response["feedback_date"].endswith("Z") and response["project_ids"] == truth["project_ids"]
    assert response["custom_properties"] == truth["custom_properties"]
    assert isinstance(response["score"], float) and response["score"] == truth["score"]
    for stream in CXI_STREAMS:
        types = [m["type"] for m in stream_messages(run, stream)]
        assert types[0] == types[-1] == "ACTIVATE_VERSION", stream


@pytest.mark.slow
def test_4000_cxi_responses_are_all_reached_through_both_orders_and_imports(fake, tap):
    fake.generate_cxi(responses=4000, imports=8, from_wootric=0.0)
    run = tap.run(fake.config(), catalog=cxi_catalog(tap, fake))
    assert run.returncode == 0, run.stderr
    ids = run.ids("cxi_responses")
    assert len(ids) == len(set(ids)) == 4000
    assert "could not be reached" not in run.stderr
    import_reads = [r for r in fake.requests if r["path"].startswith("/cxi/v1/imports/")]
    assert 0 < len(import_reads) <= 8


@pytest.mark.slow
def test_unreachable_cxi_responses_are_counted_in_a_warning(fake, tap):
    fake.generate_cxi(responses=4000, imports=8, from_wootric=0.3)
    run = tap.run(fake.config(), catalog=cxi_catalog(tap, fake))
    assert run.returncode == 0, run.stderr
    ids = set(run.ids("cxi_responses"))
    # What no route reaches: neither end of the listing, and in no import.
    ordered = sorted(fake.cxi_responses.values(), key=lambda r: (r["feedback_date"], r["id"]))
    unreachable = [r["id"] for r in ordered[1500:-1500] if r["import_id"] is None]
    assert unreachable and ids == set(fake.cxi_responses) - set(unreachable)
    assert (f"cxi_responses: {len(unreachable)} of the 4000 responses the API counts could not be reached"
            in run.stderr)


@pytest.mark.parametrize("status", [424, 403, 401])
def test_account_without_cxi_skips_the_cxi_streams_with_one_warning(fake, tap, status):
    seed(fake, (20, 30, 10))
    fake.cxi_status = status
    catalog = cxi_catalog(tap, fake, extra=("end_users", "responses", "declines"))
    run = tap.run(fake.config(), catalog=catalog)
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if "CXI streams skipped" in line]
    assert len(warnings) == 1 and f"HTTP {status}" in warnings[0]
    assert len(run.records("responses")) == 30 and len(run.records("end_users")) == 20
    assert not any(run.records(stream) for stream in CXI_STREAMS)
    # Once refused, no CXI stream starts; the ones the workers had started at once are refused once each
    # (a 401: one new token, one retry), where one worker sends at most 2.
    assert len([r for r in fake.requests if r["path"].startswith("/cxi/")]) <= 2 * WORKERS


def test_interrupted_full_read_keeps_its_version_for_the_rerun(fake, tap):
    fake.generate_segments(4)
    catalog = select(tap.discover(fake.config()), {"segments": None})
    fake.fail(1, 400)  # an error that is not a refusal (a refused optional stream is skipped)
    failed = tap.run(fake.config(), catalog=catalog)
    assert failed.returncode == 1 and "GET /segments" in failed.stderr
    version = failed.final_state["bookmarks"]["segments"]["version"]
    rerun = tap.run(fake.config(), catalog=catalog, state=failed.final_state)
    assert rerun.returncode == 0, rerun.stderr
    messages = stream_messages(rerun, "segments")
    assert [m["type"] for m in messages] == ["ACTIVATE_VERSION"] + ["RECORD"] * 4 + ["ACTIVATE_VERSION"]
    assert {m["version"] for m in messages} == {version}


def test_cxi_epoch_times_become_utc_date_times(fake, tap):
    fake.generate_cxi(responses=5, imports=1, projects=1, tags=1)
    run = tap.run(fake.config(), catalog=cxi_catalog(tap, fake))
    assert run.returncode == 0, run.stderr
    project = run.records("cxi_projects")[0]
    expected = datetime.fromtimestamp(fake.cxi_projects[0]["created_at"], timezone.utc)
    assert project["created_at"] == expected.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    for record in run.records("cxi_imports") + run.records("cxi_responses"):
        assert (record.get("created_at") or record.get("feedback_date")).endswith(".000000Z")


@pytest.mark.slow
@pytest.mark.parametrize("count", [120, 2000])
def test_cxi_responses_without_total_count(fake, tap, count):
    fake.generate_cxi(responses=count, imports=4, from_wootric=0.0)
    fake.cxi_omit_total = True
    catalog = select(tap.discover(fake.config()), {"cxi_responses": None})
    run = tap.run(fake.config(), catalog=catalog)
    assert run.returncode == 0, run.stderr
    types = [m["type"] for m in stream_messages(run, "cxi_responses")]
    if count < 1500:
        # One listing ended with a short page: the read is whole and the version is activated.
        assert sorted(run.ids("cxi_responses")) == sorted(fake.cxi_responses)
        assert types[-1] == "ACTIVATE_VERSION"
    else:
        # Without a count the tap cannot know what it missed: it says so and keeps the target's rows.
        assert set(run.ids("cxi_responses")) == set(fake.cxi_responses)  # reached through imports
        assert "gave no total_count" in run.stderr
        assert types[-1] == "RECORD" and "no ACTIVATE_VERSION is sent" in run.stderr
