"""Crashes of the sequential read (workers: 1): the tap is killed or hits a fatal error, then a rerun from
its last STATE loses nothing.

What a target keeps of a killed run is what came before the last STATE it saw, so only those
records count for the first run; the rerun must supply everything else.
"""

from __future__ import annotations

import contextlib
import os
import signal
from datetime import datetime, timedelta, timezone

import pytest
from fake import FakeWootric
from helpers import NOW, STREAMS, TapRunner, fill, parse_messages

pytestmark = pytest.mark.slow  # Dozens of killed and resumed syncs.

# Fixed instants, so that every scenario's fake holds the very same data.
DATA_END = datetime(2026, 6, 1, tzinfo=timezone.utc)
DATA_START = DATA_END - timedelta(days=3 * 365)
BURST_SECOND = DATA_END - timedelta(days=200)


def sequential(fake: FakeWootric) -> dict:
    """The config of every run here: workers: 1, one request after another. The kill points are request
    numbers of one stream or STATE lines of one stream, and the plan of request numbers per stream holds
    only when the streams are read in order (test_crash_resume_parallel.py kills the default, 4 workers)."""
    return fake.config(workers=1)


def build_fake(fake: FakeWootric) -> FakeWootric:
    """The same data in every scenario, with a dense second: the pager's hardest path."""
    return fill(fake, (260, 380, 160), DATA_START, DATA_END, burst=(BURST_SECOND, 130))


@pytest.fixture
def crash_fake(make_fake):
    return build_fake(make_fake(seed=29))


def kept_by_target(messages):
    """Records up to the last STATE, and that STATE (None when there was none)."""
    last = max((i for i, m in enumerate(messages) if m["type"] == "STATE"), default=None)
    if last is None:
        return [], None
    return [m for m in messages[:last] if m["type"] == "RECORD"], messages[last]["value"]


def ids_by_stream(records_messages):
    found = {stream: set() for stream in STREAMS}
    for message in records_messages:
        if message["stream"] in found:
            found[message["stream"]].add(message["record"]["id"])
    return found


@pytest.fixture(scope="module")
def request_plan(tmp_path_factory):
    """Which API request numbers belong to each stream in an undisturbed sync."""
    with FakeWootric(seed=29) as fake:
        run = TapRunner(tmp_path_factory.mktemp("plan")).run(sequential(build_fake(fake)))
    assert run.returncode == 0, run.stderr
    numbers = {stream: [] for stream in STREAMS}
    api = [r for r in fake.requests if r["path"].startswith("/v1/")]
    for number, entry in enumerate(api, start=1):
        numbers.setdefault(entry["path"].rsplit("/", 1)[1], []).append(number)
    return numbers


def kill_points():
    points = []
    for stream in STREAMS:
        # Mid-page: the tap is waiting for the n-th request of the stream when it dies.
        for which in ("first", "second", "middle", "last"):
            points.append((stream, "request", which))
        # Right after a STATE inside the stream, and right after the stream's last STATE
        # (between streams).
        points.append((stream, "state", "inside"))
        points.append((stream, "state", "end"))
    return points


def pick(numbers, which):
    return {"first": numbers[0], "second": numbers[min(1, len(numbers) - 1)],
            "middle": numbers[len(numbers) // 2], "last": numbers[-1]}[which]


def sigkill(proc):
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)


def run_killed_after_state(tap, fake, stream, where):
    """Start a sync and SIGKILL it as soon as it has printed the chosen STATE line."""
    proc = tap.start(sequential(fake))
    lines = []
    seen_stream_states = 0
    killed = False
    for line in proc.stdout:
        lines.append(line)
        message = parse_messages(line)[0] if line.endswith("\n") else None
        if killed or message is None or message["type"] != "STATE":
            continue
        value = message["value"]
        in_stream = value.get("currently_syncing") == stream and stream in value.get("bookmarks", {})
        finished_stream = (where == "end" and stream in value.get("bookmarks", {})
                           and value.get("currently_syncing") != stream
                           and "scan_position" not in value["bookmarks"][stream])
        if in_stream:
            seen_stream_states += 1
        if (where == "inside" and in_stream and seen_stream_states == 2) or finished_stream:
            sigkill(proc)
            killed = True
    stderr = proc.stderr.read()
    proc.wait()
    tap.outputs += ["".join(lines), stderr]
    assert killed, f"the sync never printed the STATE to kill at ({stream}, {where})"
    return proc.returncode, parse_messages("".join(lines))


def run_killed_at_request(tap, fake, number):
    holder = {}
    fake.on_request(number, lambda server: sigkill(holder["proc"]))
    holder["proc"] = tap.start(sequential(fake))
    first = tap.finish(holder["proc"])
    return first.returncode, first.messages


@pytest.mark.parametrize("stream, kind, where", kill_points())
def test_sigkill_then_resume_loses_nothing(tap, crash_fake, request_plan, stream, kind, where):
    fake = crash_fake
    if kind == "request":
        returncode, messages = run_killed_at_request(tap, fake, pick(request_plan[stream], where))
    else:
        returncode, messages = run_killed_after_state(tap, fake, stream, where)
    assert returncode == -signal.SIGKILL
    kept, state = kept_by_target(messages)
    resumed = tap.run(sequential(fake), state=state)
    assert resumed.returncode == 0, resumed.stderr
    emitted = ids_by_stream(kept)
    for name, found in ids_by_stream(m for m in resumed.messages if m["type"] == "RECORD").items():
        emitted[name] |= found
    for name in STREAMS:
        truth = {r["id"] for r in fake.records(name)}
        assert truth - emitted[name] == set(), f"{len(truth - emitted[name])} {name} records lost"
    if kept:
        # The rerun resumed from the state instead of starting over.
        total = sum(len(fake.records(name)) for name in STREAMS)
        assert len(resumed.records()) < total


@pytest.mark.parametrize("stream", STREAMS)
def test_fatal_api_error_then_resume_loses_nothing(tap, crash_fake, request_plan, stream):
    fake = crash_fake
    number = pick(request_plan[stream], "middle")
    fake.fail(number, 404)
    first = tap.run(sequential(fake))
    assert first.returncode == 1
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith(f"CRITICAL GET /{stream} page=") and "HTTP 404" in last
    assert "Traceback" not in first.stderr
    kept, state = kept_by_target(first.messages)
    resumed = tap.run(sequential(fake), state=state)
    assert resumed.returncode == 0, resumed.stderr
    emitted = ids_by_stream(kept + resumed.record_messages("end_users") + resumed.record_messages("responses")
                            + resumed.record_messages("declines"))
    for name in STREAMS:
        assert {r["id"] for r in fake.records(name)} <= emitted[name], name


def test_kill_during_an_incremental_run_keeps_every_edit(tap, crash_fake):
    fake = crash_fake
    fake.ignore_updated_sort = {"responses"}  # the lookback world: nothing but created order on /responses
    recent = fake.generate("responses", 60, NOW - timedelta(days=25), NOW - timedelta(hours=1))
    first = tap.run(sequential(fake))
    assert first.returncode == 0, first.stderr
    edited = {"end_users": [r["id"] for r in fake.records("end_users")[::9]],
              "responses": recent[::12]}
    for record_id in edited["end_users"]:
        fake.update("end_users", record_id, external_id=f"edited-{record_id}")
    for record_id in edited["responses"]:
        fake.update("responses", record_id, score=0)
    new_decline = fake.create("declines")

    count_before = fake.api_request_count
    holder = {}
    # Die in the middle of the responses rescan: end_users and its pass slice, the two probes, a page,
    # then this.
    fake.on_request(count_before + 6, lambda server: sigkill(holder["proc"]))
    holder["proc"] = tap.start(sequential(fake), state=first.final_state)
    second = tap.finish(holder["proc"])
    assert second.returncode == -signal.SIGKILL
    kept, state = kept_by_target(second.messages)
    assert "scan_position" in state["bookmarks"]["responses"], "the kill was meant to land mid-rescan"
    third = tap.run(sequential(fake), state=state)
    assert third.returncode == 0, third.stderr

    latest = {}
    for message in kept + [m for m in third.messages if m["type"] == "RECORD"]:
        latest[(message["stream"], message["record"]["id"])] = message["record"]
    for record_id in edited["end_users"]:
        assert latest[("end_users", record_id)]["external_id"] == f"edited-{record_id}"
    for record_id in edited["responses"]:
        assert latest[("responses", record_id)]["score"] == 0
    assert ("declines", new_decline) in latest
