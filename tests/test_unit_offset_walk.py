"""OffsetWalk over an in-memory listing: overlapping pages, backing up when rows move, `count`, `end`,
the stop test, and giving up after max_backups."""

import logging
import math
import random

import pytest

from tap_wootric.incremental.paging import MAX_PAGE, MAX_PER_PAGE, MAX_REACH, MAX_WALK_BACKUPS, OffsetWalk, WalkEnd

LOGGER = logging.getLogger("test-offset-walk")


class Rows:
    """One listing, in the order of `ids`; `before_request` may change it between requests."""

    def __init__(self, ids, before_request=None):
        self.ids = list(ids)
        self.calls = []
        self.before_request = before_request

    def fetch_page(self, page, per_page):
        assert 1 <= page <= MAX_PAGE and 1 <= per_page <= MAX_PER_PAGE
        assert len(self.calls) < 1000, "a walk that never ends"
        if self.before_request:
            self.before_request(self)
        self.calls.append((page, per_page))
        return [{"id": i} for i in self.ids[(page - 1) * per_page: page * per_page]]


def walk_of(rows, known=None, offset=0, stop=None, **kwargs):
    return OffsetWalk(rows.fetch_page, lambda row: row["id"], set() if known is None else known, offset, stop,
                      logger=LOGGER, label="rows", **kwargs)


def read(walk):
    return [row["id"] for page in walk.rows() for row in page]


@pytest.mark.parametrize("count", [0, 1, 49, 50, 120, 1000, 1499])
def test_a_listing_that_holds_still_is_read_once_to_its_short_page(count):
    rows = Rows(range(count))
    walk = walk_of(rows)
    assert read(walk) == list(range(count))
    assert (walk.end, walk.count, walk.backups) == (WalkEnd.EXHAUSTED, count, 0)
    assert walk.known == set(range(count))
    # Overlapping pages advance by a little less than 50 rows a request, and less near the ceiling.
    assert len(rows.calls) <= 1.25 * math.ceil(count / MAX_PER_PAGE) + 3


def test_the_ceiling_ends_a_walk_with_no_count():
    rows = Rows(range(2000))
    walk = walk_of(rows)
    assert read(walk) == list(range(MAX_REACH))
    assert (walk.end, walk.count, walk.offset) == (WalkEnd.CEILING, None, MAX_REACH)


@pytest.mark.parametrize("first_old", [0, 1, 50, 137, 1499])
def test_the_stop_test_counts_the_rows_before_it(first_old):
    rows = Rows(range(2000))
    walk = walk_of(rows, stop=lambda row: row["id"] >= first_old)
    assert read(walk) == list(range(first_old))
    assert (walk.end, walk.count) == (WalkEnd.STOPPED, first_old)


def test_a_walk_resumes_after_the_rows_it_knows():
    rows = Rows(range(300))
    walk = walk_of(rows, known=set(range(120)), offset=120)
    assert read(walk) == list(range(120, 300))
    page, per_page = rows.calls[0]
    assert (page - 1) * per_page <= 119 < page * per_page  # the first page overlaps the known head
    assert walk.count == 300 and walk.backups == 0


def test_a_wrong_resume_point_backs_up_to_the_top():
    rows = Rows(range(300))
    walk = walk_of(rows, known={1000 + i for i in range(120)}, offset=120)
    assert read(walk) == list(range(300))
    assert walk.backups >= 1 and walk.end == WalkEnd.EXHAUSTED


@pytest.mark.parametrize("seed", range(10))
def test_rows_leaving_the_listing_make_the_walk_back_up_and_miss_nothing(seed):
    rnd = random.Random(seed)
    deleted = set()
    listing = list(range(1200))

    def delete_read_rows(rows):
        # Deleting a row the walk already read pulls every later row forward, past the page boundary.
        candidates = [i for i in rows.ids if i in walk.known]
        for victim in rnd.sample(candidates, min(len(candidates), rnd.randint(0, 3))):
            rows.ids.remove(victim)
            deleted.add(victim)

    rows = Rows(listing, before_request=delete_read_rows)
    walk = walk_of(rows)
    ids = read(walk)
    assert len(ids) == len(set(ids)) == 1200  # each row once, every row that stayed reached
    assert walk.backups > 0 and walk.end == WalkEnd.EXHAUSTED
    assert walk.count == 1200 - len(deleted)


@pytest.mark.parametrize("seed", range(10))
def test_rows_moving_to_the_front_are_read_where_they_were_and_never_twice(seed):
    rnd = random.Random(seed)
    moved = set()

    def edit(rows):
        for _ in range(rnd.randint(0, 2)):
            victim = rnd.choice(rows.ids)
            rows.ids.remove(victim)
            rows.ids.insert(0, victim)
            moved.add(victim)

    rows = Rows(range(1000), before_request=edit)
    walk = walk_of(rows)
    ids = read(walk)
    assert len(ids) == len(set(ids))
    # A row that moved to the front before the walk reached it is behind the walk now (its new time
    # puts it in the next run); every other row is reached.
    assert set(range(1000)) - moved <= set(ids)
    assert walk.backups == 0  # rows pushed back are simply read again


def renew(rows):
    """Every row replaced between requests: no page past the first can start with a row already read."""
    rows.ids = [(len(rows.calls) + 1) * 10**6 + i for i in range(500)]


def test_a_listing_that_keeps_moving_gives_up_after_max_backups(caplog):
    rows = Rows(range(500), before_request=renew)
    walk = walk_of(rows, max_backups=3)
    with caplog.at_level(logging.INFO, logger=LOGGER.name):
        ids = read(walk)
    assert len(ids) == len(set(ids))
    assert (walk.end, walk.backups, walk.count) == (WalkEnd.GAVE_UP, 4, None)
    assert sum("backing up" in message for message in caplog.messages) == 3
    assert any("keep moving between requests" in message for message in caplog.messages)


def test_the_default_backup_limit():
    rows = Rows(range(500), before_request=renew)
    walk = walk_of(rows)
    read(walk)
    assert (walk.end, walk.backups) == (WalkEnd.GAVE_UP, MAX_WALK_BACKUPS + 1)


def test_an_empty_page_past_the_start_is_a_move_not_an_end():
    # Rows read earlier were deleted: the listing is now shorter than the offset.
    state = {"calls": 0}

    def shrink(rows):
        state["calls"] += 1
        if state["calls"] == 3:
            del rows.ids[:120]

    rows = Rows(range(150), before_request=shrink)
    walk = walk_of(rows)
    ids = read(walk)
    assert len(ids) == len(set(ids)) and set(range(120, 150)) <= set(ids)
    assert walk.backups >= 1 and walk.end == WalkEnd.EXHAUSTED and walk.count == 30


def test_a_failed_overlap_backs_up_a_whole_page():
    def delete_first_rows(rows):
        if len(rows.calls) == 2:
            del rows.ids[:10]  # more than the overlap: the next page starts with an unread row

    rows = Rows(range(300), before_request=delete_first_rows)
    walk = walk_of(rows)
    assert read(walk) == list(range(300))
    starts = [(page - 1) * per_page for page, per_page in rows.calls]
    assert walk.backups == 1
    assert starts[3] <= starts[2] - MAX_PER_PAGE  # then re-read from there, overlapping again
