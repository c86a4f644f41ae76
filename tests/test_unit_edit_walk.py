"""EditWalk against an in-memory /responses listing sorted on updated_at that ignores updated[...] and
honours created[...]: every row updated since the bookmark is reached, at about one request per 50."""

import dataclasses
import functools
import itertools
import logging
import math
import random
import types

import pytest
from model_api import Listing, second, table

from tap_wootric.incremental.edit_walk import EditQuery, EditWalk
from tap_wootric.incremental.paging import (
    MAX_PAGE,
    MAX_PER_PAGE,
    MAX_REACH,
    THIN_PAGE_ROWS,
    THIN_PAGES_FROM,
    OffsetWalk,
    QueryNotHonoured,
    WalkEnd,
)

LOGGER = logging.getLogger("test-edit-walk")
SINCE = 1_700_000_000  # the bookmark
NOW = SINCE + 86_400  # the run's signpost


def walk(listing, since=SINCE, first_page=None):
    shortfalls = []
    calls_before = len(listing.calls)
    edit_walk = EditWalk(listing.fetch, second("updated_at"), second("created_at"), stream="responses",
                         logger=LOGGER, note_shortfall=shortfalls.append)
    pages = list(edit_walk.walk(since, first_page, NOW))
    # What the walk reports, and the requests it made, as the model API counted them.
    edit_walk.stats = types.SimpleNamespace(shortfalls=shortfalls, requests=len(listing.calls) - calls_before,
                                            parts=edit_walk.parts)
    return [row for page in pages for row in page], edit_walk


def edits(count, edited, seed=1):
    """`count` rows created over ~4 months before the bookmark; `edited` of them updated since it."""
    return table(count, SINCE - 10**7, SINCE - 1000, edited=edited, edited_from=SINCE, edited_to=NOW, seed=seed)


def budget(edited):
    return 1.25 * math.ceil(edited / MAX_PER_PAGE) + 5


def assert_newest_first(rows):
    seconds = [int(row["updated_at"]) for row in rows]
    assert seconds == sorted(seconds, reverse=True)


@pytest.mark.parametrize("edited", [0, 1, 49, 50, 51, 120, 1499, 1500, 1501, 3500])
def test_every_edit_is_reached_at_about_one_request_per_50(edited):
    listing = Listing(edits(max(2000, edited + 1000), edited))
    rows, edit_walk = walk(listing)
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == edited
    assert set(ids) == listing.updated_since(SINCE)
    assert edit_walk.stats.shortfalls == []
    assert edit_walk.stats.requests == len(listing.calls) <= budget(edited)
    assert max(call["page"] for call in listing.calls) <= MAX_PAGE
    if edited < THIN_PAGES_FROM:
        assert edit_walk.stats.parts == 1
        assert_newest_first(rows)
    else:
        assert edit_walk.stats.parts > 1  # narrowed by created ranges


def test_the_held_first_page_saves_a_request():
    listing = Listing(edits(2000, 120))
    first_page = listing.get_rows({"page": 1, "per_page": MAX_PER_PAGE, "sort_key": "updated_at",
                                   "sort_order": "desc"})
    listing.calls.clear()
    rows, edit_walk = walk(listing, first_page=first_page)
    assert {row["id"] for row in rows} == listing.updated_since(SINCE)
    assert edit_walk.stats.requests == len(listing.calls) == math.ceil(121 / MAX_PER_PAGE) - 1
    assert all(call["page"] > 1 or call["per_page"] != MAX_PER_PAGE for call in listing.calls)


def test_edits_of_the_oldest_and_newest_rows_and_a_bookmark_second_are_reached():
    rows = edits(2000, 0)
    oldest, newest = min(rows, key=lambda i: rows[i][0]), max(rows, key=lambda i: rows[i][0])
    rows[oldest] = (rows[oldest][0], SINCE + 0.99)  # in the bookmark's second: reached
    rows[newest] = (rows[newest][0], NOW - 0.5)
    just_before = next(i for i in rows if i not in (oldest, newest))
    rows[just_before] = (rows[just_before][0], SINCE - 0.01)  # a second before: not
    found, _ = walk(Listing(rows))
    assert {row["id"] for row in found} == {oldest, newest}


def tied(count, edited, updated_second, seed=3):
    rnd = random.Random(seed)
    rows = edits(count, 0, seed=seed)
    for row_id in rnd.sample(sorted(rows), edited):
        rows[row_id] = (rows[row_id][0], updated_second + rnd.random())
    return rows


def test_2000_edits_tied_in_one_updated_second_are_all_reached():
    listing = Listing(tied(4000, 2000, SINCE + 600))
    rows, edit_walk = walk(listing)
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) and set(ids) == listing.updated_since(SINCE)
    assert edit_walk.stats.shortfalls == [] and edit_walk.stats.requests <= budget(2000)


@pytest.mark.parametrize("edited", [300, 700])
def test_tied_edits_in_a_new_order_on_every_request_are_all_reached(edited):
    listing = Listing(tied(edited + 200, edited, SINCE + 600), shuffle_ties=True, seed=edited)
    rows, edit_walk = walk(listing)
    assert {row["id"] for row in rows} == listing.updated_since(SINCE)
    assert edit_walk.stats.shortfalls == []


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("edited", [400, 2500])
def test_rows_deleted_edited_or_added_mid_walk(seed, edited):
    """Before each request: rows deleted, rows edited (now updated after the run's signpost, so the next
    run reads them), rows created. Every other row updated since the bookmark is reached."""
    rnd = random.Random(seed)
    rows = edits(edited + 500, edited, seed=seed)
    wanted = {i for i, (_, updated) in rows.items() if int(updated) >= SINCE}
    touched = set()
    clock = [NOW + 1.0]
    next_id = [10**6]

    def churn(listing):
        for _ in range(rnd.randint(0, 3)):
            victim = rnd.choice(list(listing.rows))
            touched.add(victim)
            if rnd.random() < 0.5:
                del listing.rows[victim]
            else:
                clock[0] += 0.3
                listing.rows[victim] = (listing.rows[victim][0], clock[0])
        if rnd.random() < 0.3:
            listing.rows[next_id[0]] = (clock[0], clock[0])
            next_id[0] += 1

    listing = Listing(rows, before_request=churn)
    found, edit_walk = walk(listing)
    ids = {row["id"] for row in found}
    assert wanted - touched <= ids
    assert all(int(row["updated_at"]) >= SINCE for row in found)
    # Rows edited or created mid-walk land above where the walk is, so its count runs ahead of what it
    # read: a read of the top and a count taken again settle it, instead of parts walked again. This churn
    # (one to two changes before every request) is far busier than any account.
    assert edit_walk.stats.requests <= 1.25 * budget(edited)


def test_one_row_arriving_mid_walk_costs_no_extra_requests():
    """A row created after the walk passed the top of the listing makes the walk's count exceed the rows it
    read; a read of the top finds it, and a count taken after that proves the walk, instead of walking parts
    again."""
    calls = [0]

    def arrival(listing):
        calls[0] += 1
        if calls[0] == 3:  # a new response, created and updated after the run's signpost
            listing.rows[10**6] = (NOW + 5.5, NOW + 5.5)

    _, undisturbed = walk(Listing(edits(1400, 400)))
    listing = Listing(edits(1400, 400), before_request=arrival)
    rows, edit_walk = walk(listing)
    assert {row["id"] for row in rows} == listing.updated_since(SINCE)  # the new row too
    assert edit_walk.stats.requests == undisturbed.stats.requests + 2 <= budget(400)
    assert edit_walk.stats.parts == 1


def test_more_than_1500_edited_rows_created_in_one_second_are_a_shortfall(caplog):
    rows = edits(3000, 200)
    rnd = random.Random(5)
    crowd = {10**6 + i: (SINCE - 50_000 + rnd.random(), SINCE + 100 + rnd.uniform(0, 1000)) for i in range(1600)}
    rows.update(crowd)
    listing = Listing(rows)
    with caplog.at_level(logging.WARNING, logger=LOGGER.name):
        found, edit_walk = walk(listing)
    ids = {row["id"] for row in found}
    assert listing.updated_since(SINCE) - set(crowd) <= ids  # everything outside the crowd
    assert len(ids & set(crowd)) >= MAX_REACH
    assert len(edit_walk.stats.shortfalls) == 1
    assert "rows created in one second were updated since the bookmark" in edit_walk.stats.shortfalls[0]
    assert any("the rest could not be read" in message for message in caplog.messages)


def test_1400_edited_rows_created_in_one_second_are_all_reached():
    rows = edits(3000, 200)
    rows.update({10**6 + i: (SINCE - 50_000 + i / 2000, SINCE + 100 + i) for i in range(1400)})
    listing = Listing(rows)
    found, edit_walk = walk(listing)
    assert {row["id"] for row in found} == listing.updated_since(SINCE)
    assert edit_walk.stats.shortfalls == []


def test_1400_edited_rows_of_one_second_in_a_new_order_on_every_request_are_a_counted_shortfall():
    rows = edits(1000, 0)
    rnd = random.Random(3)
    crowd = {10**6 + i: (SINCE - 50_000 + rnd.random(), SINCE + 100 + rnd.random()) for i in range(1400)}
    rows.update(crowd)
    found, edit_walk = walk(Listing(rows, shuffle_ties=True, seed=1))
    reached = len({row["id"] for row in found})
    assert reached < 1400
    assert edit_walk.stats.shortfalls == [f"{reached} of the 1400 rows updated since the bookmark and created in "
                                          "one second were reached"]


def test_each_row_is_yielded_once_even_when_tied_rows_come_in_a_new_order():
    listing = Listing(tied(900, 700, SINCE + 600), shuffle_ties=True, seed=700)
    rows, _ = walk(listing)
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids))


def test_an_ignored_created_filter_is_not_honoured():
    listing = Listing(edits(3000, 1600), created_filter=False)
    with pytest.raises(QueryNotHonoured, match="outside the requested created"):
        walk(listing)


@pytest.mark.parametrize("bound", ["created_gte", "created_lt"])
def test_one_ignored_bound_of_the_created_filter_is_not_honoured(bound):
    listing = Listing(edits(3000, 1600))
    edit_walk = EditWalk(lambda query: listing.fetch(dataclasses.replace(query, **{bound: None})),
                         second("updated_at"), second("created_at"), stream="responses", logger=LOGGER)
    with pytest.raises(QueryNotHonoured, match="outside the requested created"):
        list(edit_walk.walk(SINCE))


def test_an_ignored_sort_is_not_honoured():
    listing = Listing(edits(2000, 300), updated_sort=False)
    with pytest.raises(QueryNotHonoured, match="newest-updated first"):
        walk(listing)


def test_a_held_first_page_out_of_order_is_not_honoured():
    listing = Listing(edits(2000, 300), updated_sort=False)
    first_page = listing.get_rows({"page": 1, "per_page": MAX_PER_PAGE, "sort_key": "updated_at"})
    listing.calls.clear()
    with pytest.raises(QueryNotHonoured):
        walk(listing, first_page=first_page)
    assert listing.calls == []


# -- what edits of every age cost ----------------------------------------------------------------------------

YEAR = 365 * 86_400
# (rows, years): the listing's whole history, created up to the bookmark.
HISTORIES = {"3k rows over a year": (3000, 1), "100k rows over 4 years": (100_000, 4)}
EDITS = [50, 400, 1500, 1501, 2000, 5000]


@functools.cache
def history(rows, years):
    return table(rows, SINCE - years * YEAR, SINCE - 1000, seed=7)


def edited(rows, ids, in_creation_order=False, seed=1):
    """`rows` with `ids` updated at random times since the bookmark: in no particular order, or in the order the
    rows were created (a bulk re-tag in id order), which leaves the rows read last all at one end."""
    rnd = random.Random(seed)
    times = sorted(rnd.uniform(SINCE, NOW) for _ in ids)
    if not in_creation_order:
        rnd.shuffle(times)
    rows = dict(rows)
    for row_id, updated in zip(sorted(ids, key=lambda i: rows[i][0]), times):
        rows[row_id] = (rows[row_id][0], updated)
    return rows


def spread(history_name, count, **options):
    rows = history(*HISTORIES[history_name])
    return edited(rows, random.Random(3).sample(sorted(rows), count), **options)


def by_age(count, newest):
    rows = history(*HISTORIES["100k rows over 4 years"])
    ordered = sorted(rows, key=lambda i: rows[i][0])
    return edited(rows, ordered[-count:] if newest else ordered[:count])


def dense(count):
    """`count` edited rows created in a few seconds (at most 1,000 a second: one query reaches 1,500), and
    the history's rows around them."""
    rows = dict(history(*HISTORIES["100k rows over 4 years"]))
    rnd = random.Random(4)
    seconds = [SINCE - rnd.randint(1000, 4 * YEAR) for _ in range(max(3, math.ceil(count / 1000)))]
    crowd = {10**7 + i: (seconds[i % len(seconds)] + rnd.random(), 0.0) for i in range(count)}
    rows.update(crowd)
    return edited(rows, list(crowd))


DISTRIBUTIONS = {
    **{f"spread over {name}": functools.partial(spread, name) for name in HISTORIES},
    "spread, edited in creation order": functools.partial(spread, "100k rows over 4 years", in_creation_order=True),
    "the oldest rows": functools.partial(by_age, newest=False),
    "the newest rows": functools.partial(by_age, newest=True),
    "a few dense created seconds": dense,
}


def walk_costing(listing):
    """Every row the walk yields (each once, asserted) and its cost as the fake counts it: the walk's requests
    and the probe's one-row request (its page of 50 is the walk's first, which the walk fetches here)."""
    rows, edit_walk = walk(listing)
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids))
    assert all(int(row["updated_at"]) >= SINCE for row in rows)
    assert edit_walk.stats.shortfalls == []
    assert max(call["page"] for call in listing.calls) <= MAX_PAGE
    return set(ids), edit_walk.stats.requests + 1


@pytest.mark.parametrize(("distribution", "count"), [
    (distribution, count) for distribution in DISTRIBUTIONS for count in EDITS
    if count <= HISTORIES.get(distribution.replace("spread over ", ""), (100_000, 0))[0]])
def test_edits_of_every_age_are_all_reached_within_the_cost_bound(distribution, count):
    listing = Listing(DISTRIBUTIONS[distribution](count))
    wanted = listing.updated_since(SINCE)
    assert len(wanted) == count
    found, cost = walk_costing(listing)
    assert found == wanted
    assert cost <= budget(count)


@pytest.mark.parametrize("count", EDITS)
def test_rows_arriving_and_edits_edited_again_mid_walk_are_all_reached_within_the_cost_bound(count):
    """Before the second request a new row, an edit of an old row and an edit of a row already updated since
    the bookmark; then one of them before one request in ten, at random (a busy account, for a walk at a
    request or two a second). Each lands above the signpost, at the top of the listing, above where the walk
    is. Every row updated since the bookmark is still emitted, the ones edited again too."""
    rnd = random.Random(count * 10)
    rows = spread("100k rows over 4 years", count)
    wanted = {row_id for row_id, (_, updated) in rows.items() if updated >= SINCE}
    candidates = {"edited": sorted(wanted), "old": sorted(set(rows) - wanted)}
    arrived = []

    def arrive(listing, kind):
        updated = NOW + 1.0 + len(arrived)
        row_id = 10**8 + len(arrived) if kind == "new" else rnd.choice(candidates[kind])
        listing.rows[row_id] = (updated if kind == "new" else listing.rows[row_id][0], updated)
        arrived.append(kind)

    def before_request(listing):
        if len(listing.calls) == 1:
            for kind in ("new", "old", "edited"):
                arrive(listing, kind)
        elif len(listing.calls) > 1 and rnd.random() < 0.1:
            arrive(listing, ("new", "old", "edited")[len(arrived) % 3])

    found, cost = walk_costing(Listing(rows, before_request=before_request))
    assert wanted <= found
    assert cost <= budget(count)


def test_a_walk_that_can_be_narrowed_ends_before_the_thin_pages_near_the_ceiling():
    """The page grid leaves pages of 20 to 30 new rows just under the 1,500-row reach; a part that can be split
    ends before them, and its parts read those rows at about 40 a request."""
    listing = Listing(edits(3000, 2000))

    def walk_to_ceiling(narrowable):
        before = len(listing.calls)
        offset_walk = OffsetWalk(lambda page, per_page: listing.fetch(EditQuery(page, per_page)),
                                 lambda row: row["id"], set(), 0, logger=LOGGER, label="rows", narrowable=narrowable)
        read = sum(len(rows) for rows in offset_walk.rows())
        assert offset_walk.end == WalkEnd.CEILING and offset_walk.count is None
        return read, len(listing.calls) - before

    full, narrowed = walk_to_ceiling(False), walk_to_ceiling(True)
    assert full[0] == MAX_REACH and THIN_PAGES_FROM <= narrowed[0] < MAX_REACH
    saved_requests, left_rows = full[1] - narrowed[1], full[0] - narrowed[0]
    assert saved_requests >= 2 and left_rows < saved_requests * THIN_PAGE_ROWS


def test_10000_rows_edited_in_creation_order_are_split_where_the_unread_rows_are():
    """Edits made in creation order leave every row not read yet older than the rows read last: a part split
    at the median of its rows read would leave one side done and the other at its ceiling again after ~700
    rows, level after level (257 requests); split where the rows read last lie, it stays within the bound."""
    listing = Listing(spread("100k rows over 4 years", 10_000, in_creation_order=True), max_requests=300)
    found, cost = walk_costing(listing)
    assert found == listing.updated_since(SINCE)
    assert cost <= budget(10_000)


@pytest.mark.parametrize("seed", range(4))
def test_rows_arriving_after_a_walk_stopped_do_not_hide_tied_rows_it_missed(seed):
    """300 edits in one updated second, in a new order on every request: a walk may miss some, and counts
    them. Rows that arrive in its range after its count was taken are read with the top and would make up
    the difference: only a count taken after they were read proves the walk."""
    rows = tied(500, 300, SINCE + 600, seed=seed)
    wanted = {row_id for row_id, (_, updated) in rows.items() if updated >= SINCE}
    listing = Listing(rows, shuffle_ties=True, seed=seed)
    arrivals = iter(sorted(set(rows) - wanted))
    stopped = []

    def fetch(query):
        page = listing.fetch(query)
        if not stopped and any(int(row["updated_at"]) < SINCE for row in page):
            stopped.append(len(listing.calls))  # the walk's count is taken: now 60 old rows are edited
            for row_id in itertools.islice(arrivals, 60):
                listing.rows[row_id] = (listing.rows[row_id][0], NOW + 1.0)
        return page

    found = {row["id"] for page in EditWalk(fetch, second("updated_at"), second("created_at"), stream="responses",
                                            logger=LOGGER).walk(SINCE, None, NOW) for row in page}
    assert stopped and wanted <= found
