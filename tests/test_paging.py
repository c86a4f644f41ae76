"""The keyset scanner against an in-memory model of the API's paging rules."""

import logging
import math
import random

import pytest
from model_api import ModelApi, burst, spread

from tap_wootric.incremental.paging import MAX_PAGE, MAX_PER_PAGE, KeysetScanner, plan_overlapping_page

LOGGER = logging.getLogger("test-paging")


class ScanResult:
    def __init__(self, api, scanner, shortfalls):
        self.requests = len(api.calls)
        self.dense_seconds = scanner.dense_seconds
        self.unreached_seconds = len(shortfalls)


def scan(api, start=0, upper=None, caplog=None):
    shortfalls = []
    scanner = KeysetScanner(api.fetch, lambda row: int(row["t"]), stream="s", logger=LOGGER,
                            note_shortfall=shortfalls.append)
    emitted, checkpoints = [], []
    for batch in scanner.scan(start, upper):
        emitted.extend(row["id"] for row in batch.records)
        checkpoints.append((len(emitted), batch.checkpoint))
    return emitted, checkpoints, ScanResult(api, scanner, shortfalls)


def test_planned_pages_overlap_what_was_read_and_advance_past_it():
    for offset in range(0, 1500):
        page, per_page = plan_overlapping_page(offset)
        start, end = (page - 1) * per_page, page * per_page
        assert 1 <= page <= MAX_PAGE and 1 <= per_page <= MAX_PER_PAGE
        assert end > offset
        if offset:
            assert start <= offset - 1


def test_sparse_rows_cost_close_to_one_request_per_50():
    api = ModelApi(spread(2000, 0, 1e8))
    emitted, _, stats = scan(api)
    assert sorted(emitted) == list(range(2000))
    assert len(emitted) == 2000  # no duplicates either
    assert stats.requests <= math.ceil(2000 / 50) * 1.05 + 2


def test_more_than_1500_rows_in_a_narrow_window_are_all_reached():
    api = ModelApi(spread(4000, 1000, 1600))  # ~7 rows a second for ten minutes
    emitted, _, _ = scan(api)
    assert sorted(emitted) == list(range(4000))
    assert max(q.page for q in api.calls) < MAX_PAGE


def test_200_rows_in_one_second():
    rows = {**spread(100, 0, 5000), **burst(200, 2500, 1000)}
    emitted, _, stats = scan(ModelApi(rows))
    assert sorted(emitted) == sorted(rows)
    assert stats.dense_seconds == 1


def test_1600_rows_in_one_second_are_all_reached_and_warned_about(caplog):
    rows = {**spread(100, 0, 5000), **burst(1600, 2500, 1000)}
    with caplog.at_level(logging.WARNING, logger="test-paging"):
        emitted, checkpoints, _ = scan(ModelApi(rows))
    assert sorted(emitted) == sorted(rows)
    assert any("1600 records share one second" in message for message in caplog.messages)
    # The checkpoint never passes the dense second before all of it is out.
    assert (len(emitted), None) == checkpoints[-1]


def test_more_than_3000_in_one_second_moves_on_with_a_warning(caplog):
    rows = {**burst(3200, 2500, 1000), **spread(100, 2501, 5000, first_id=0)}
    with caplog.at_level(logging.WARNING, logger="test-paging"):
        emitted, _, stats = scan(ModelApi(rows))
    assert len(emitted) == len(set(emitted)) == 3000 + 100
    assert set(range(100)) <= set(emitted)  # rows after the dense second still come out
    assert stats.unreached_seconds == 1
    assert any("at least 3000 records share one second" in message for message in caplog.messages)


def test_checkpoints_only_cover_rows_already_yielded():
    rows = {**spread(500, 0, 1000), **burst(120, 400, 1000)}
    api = ModelApi(rows)
    scanner = KeysetScanner(api.fetch, lambda row: int(row["t"]), stream="s", logger=LOGGER)
    yielded = set()
    for batch in scanner.scan(0, None):
        yielded.update(row["id"] for row in batch.records)
        if batch.checkpoint is not None:
            below = {i for i, t in rows.items() if int(t) < batch.checkpoint}
            assert below <= yielded


def test_upper_bound_and_start_are_honoured():
    rows = spread(300, 0, 1000)
    emitted, _, _ = scan(ModelApi(rows), start=200, upper=700)
    assert set(emitted) == {i for i, t in rows.items() if 200 <= int(t) < 700}


@pytest.mark.parametrize("seed", range(40))
def test_no_row_lost_when_rows_move_and_appear_during_the_scan(seed):
    """Rows updated during the scan jump to "now"; new rows arrive; dense seconds get churned."""
    rnd = random.Random(seed)
    rows = {**spread(400, 0, 5000, seed=seed), **burst(400, 1000, 10_000, seed=seed),
            **burst(1700, 2000, 20_000, seed=seed + 1)}
    initial = set(rows)
    moved = set()
    clock = [10_000.0]
    next_id = [50_000]

    def churn(api):
        if rnd.random() < 0.5:
            for _ in range(rnd.randint(1, 3)):
                victim = rnd.choice(list(api.rows))
                clock[0] += 0.01
                api.rows[victim] = clock[0]
                moved.add(victim)
            api.rows[next_id[0]] = clock[0]
            next_id[0] += 1

    emitted, _, _ = scan(ModelApi(rows, before_request=churn))
    # A moved row now carries an updated_at after the scan started, so the next sync reads it.
    assert not (initial - moved) - set(emitted)
