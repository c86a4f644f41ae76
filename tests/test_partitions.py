"""Created-range partitions through the real CLI against the fake over HTTP: a first sync and a
reconciliation slice read in parts by several workers, killed and resumed, lose nothing, cost about
the sequential requests, and a resumed run reads only the unfinished ranges."""

from __future__ import annotations

import math
import re
from datetime import timedelta

import pytest
from helpers import NOW, parse_messages, select

from tap_wootric.incremental.partitions import ranges_within
from tap_wootric.timeutil import parse_bookmark

# Enough rows that splits pay (they may add 1 % of the pages: 2 splits here).
ROWS = 12_000


@pytest.fixture
def parts_fake(make_fake):
    fake = make_fake()
    fake.generate("responses", ROWS, NOW - timedelta(days=730), NOW - timedelta(hours=2))
    # A little latency, as a real API has: the parts really overlap.
    fake.latency = 0.005
    return fake


def responses_only(tap, config):
    return select(tap.discover(config), {"responses": None})


def sync_responses(tap, fake, **settings):
    """A first sync of responses alone with these settings: its config, catalog and run (which succeeded)."""
    config = fake.config(**settings)
    catalog = responses_only(tap, config)
    run = tap.run(config, catalog=catalog)
    assert run.returncode == 0, run.stderr
    return config, catalog, run


def scan_parts(state):
    return (state.get("bookmarks", {}).get("responses") or {}).get("scan_parts")


def test_a_first_sync_in_parts_reads_every_row_for_about_the_sequential_requests(tap, parts_fake):
    fake = parts_fake
    _, catalog, sequential = sync_responses(tap, fake, workers=1, reconcile_runs=0)
    sequential_requests = len(fake.list_requests("responses"))
    assert not any(scan_parts(state) for state in sequential.states())

    fake.clear_log()
    parallel = tap.run(fake.config(workers=4, reconcile_runs=0), catalog=catalog)
    assert parallel.returncode == 0, parallel.stderr
    assert set(parallel.ids("responses")) == fake.ids("responses")
    # The read was split: some STATE named several unfinished ranges; the last names none.
    assert max(len(scan_parts(state) or []) for state in parallel.states()) >= 2
    assert scan_parts(parallel.final_state) is None
    assert set(parallel.final_state["bookmarks"]["responses"]) == set(sequential.final_state["bookmarks"]["responses"])
    requests = len(fake.list_requests("responses"))
    assert requests <= math.ceil(1.03 * math.ceil(ROWS / 50)) + 2, (requests, sequential_requests)


def test_a_first_sync_bound_by_the_taps_cpu_is_not_split(tap, make_fake):
    # An API that answers at once and the three core streams read at once, as on the benchmarks' `large`: the
    # tap computes while it waits for the API, so more parts would only take turns on the CPU (the same read
    # splits under latency: the test above).
    fake = make_fake()
    for stream, rows in (("end_users", ROWS // 2), ("responses", ROWS), ("declines", ROWS // 2)):
        fake.generate(stream, rows, NOW - timedelta(days=730), NOW - timedelta(hours=2))
    fake.warm()  # every page rendered in advance: the fake answers as fast as it can
    config = fake.config(workers=4, reconcile_runs=0)
    catalog = select(tap.discover(config), {"end_users": None, "responses": None, "declines": None})
    run = tap.run(config, "--log-level", "debug", catalog=catalog)
    assert run.returncode == 0, run.stderr
    assert set(run.ids("responses")) == fake.ids("responses")
    evidence = run.log("DEBUG", containing="responses: parts' idle round trips / CPU")
    assert not any(len(scan_parts(state) or []) > 1 for state in run.states()), evidence
    assert "read the created range in" not in run.stderr
    # The evidence the tap weighed: its round trips left it idle for less time than it computed.
    [(waited, worked)] = re.findall(r"CPU: ([0-9.]+) / ([0-9.]+) s$", evidence[0])
    assert float(waited) < float(worked), evidence


def run_killed_after_parts(tap, config, catalog, states_with_parts):
    """Start a sync and SIGKILL it after the given number of STATE lines naming several unfinished ranges."""
    proc = tap.start(config, catalog=catalog)
    lines, seen = [], 0
    for line in proc.stdout:
        lines.append(line)
        if seen >= states_with_parts or not line.endswith("\n"):
            continue
        message = parse_messages(line)[0]
        if message["type"] == "STATE" and len(scan_parts(message["value"]) or []) >= 2:
            seen += 1
            if seen == states_with_parts:
                proc.kill()
    stderr = proc.stderr.read()
    proc.wait()
    tap.outputs += ["".join(lines), stderr]
    assert seen >= states_with_parts, "the sync never named several unfinished ranges"
    return parse_messages("".join(lines))


@pytest.mark.parametrize("point", [2, 20, 50])
@pytest.mark.parametrize("resume_workers", [4, 1])
def test_a_killed_partitioned_sync_resumes_the_unfinished_ranges_only(tap, parts_fake, point, resume_workers):
    fake = parts_fake
    config = fake.config(workers=4, reconcile_runs=0)
    catalog = responses_only(tap, config)
    messages = run_killed_after_parts(tap, config, catalog, point)
    written = {m["record"]["id"] for m in messages if m["type"] == "RECORD"}
    state = [m["value"] for m in messages if m["type"] == "STATE"][-1]
    stored = scan_parts(state)
    # Every row outside the unfinished ranges was written before that STATE.
    upper = int(NOW.timestamp()) + 10**6
    ranges = ranges_within(stored, 0, upper)
    created = {row["id"]: int(row["created_at"].timestamp()) for row in fake.records("responses")}
    outside = {row_id for row_id, second in created.items() if not any(a <= second < b for a, b in ranges)}
    assert outside <= written
    assert parse_bookmark(state["bookmarks"]["responses"]["scan_position"]) == ranges[0][0]

    fake.clear_log()
    resumed = tap.run(fake.config(workers=resume_workers, reconcile_runs=0), catalog=catalog, state=state)
    assert resumed.returncode == 0, resumed.stderr
    assert written | set(resumed.ids("responses")) == fake.ids("responses")
    # Only the unfinished ranges were read again: about their pages, not the whole history's.
    unread = sum(1 for second in created.values() if any(a <= second < b for a, b in ranges))
    requests = len(fake.list_requests("responses"))
    assert requests <= math.ceil(1.03 * unread / 50) + 2 * len(ranges) + 4, (requests, unread, len(ranges))
    assert scan_parts(resumed.final_state) is None


def test_a_reconciliation_slice_in_parts_completes_the_pass_and_drops_deleted_rows(tap, parts_fake):
    fake = parts_fake
    config, catalog, first = sync_responses(tap, fake, workers=4, reconcile_runs=2)
    gone = sorted(fake.ids("responses"))[::97]
    for row_id in gone:
        fake.delete("responses", row_id)
    seen, activations, states = set(), [], []
    state = first.final_state
    for _ in range(3):
        run = tap.run(config, catalog=catalog, state=state)
        assert run.returncode == 0, run.stderr
        pass_version = state["bookmarks"]["responses"].get("reconcile", {}).get("version")
        seen |= {m["record"]["id"] for m in run.record_messages("responses")
                 if pass_version is None or m.get("version") == pass_version}
        activations += run.activations("responses")
        states += run.states()
        state = run.final_state
        if activations:
            break
    # The slices were read in parts, every row that exists carried the pass's version, and the pass ended.
    assert any((s["bookmarks"]["responses"].get("reconcile") or {}).get("parts") for s in states)
    assert activations, "the pass never completed"
    assert fake.ids("responses") <= seen
    assert not (set(gone) & fake.ids("responses"))
