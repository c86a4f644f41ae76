"""probe() against an in-memory /responses listing that honours or ignores the updated[...] filter and
the sort on updated_at: the verdict in each of the four worlds, for edited, never-edited and empty tables."""

import pytest
from model_api import Listing, second, table

from tap_wootric.incremental.paging import MAX_PER_PAGE
from tap_wootric.incremental.probe import PROBE_AHEAD_SECONDS, probe

SIGNPOST = 1_700_000_000
WORLDS = [(True, True), (False, True), (True, False), (False, False)]  # (updated filter, updated sort)


def run_probe(listing):
    return probe(listing.get_rows, second("updated_at"), second("created_at"), updated_param="updated",
                 updated_field="updated_at", created_field="created_at", signpost=SIGNPOST)


def edited_table():
    # 1,000 rows over ~4 months, 300 of them edited at random in the last 12 days; one more edited while
    # the sync runs (after the signpost), which the filter, when honoured, keeps out of the newest page.
    rows = table(1000, SIGNPOST - 10**7, SIGNPOST - 10**6, edited=300, edited_from=SIGNPOST - 10**6,
                 edited_to=SIGNPOST - 10)
    rows[5000] = (SIGNPOST - 5 * 10**6, SIGNPOST + 120.5)
    return rows


def newest_by_updated(rows, below=None):
    ordered = sorted(((u, i) for i, (_, u) in rows.items() if below is None or u < below), reverse=True)
    return [i for _, i in ordered[:MAX_PER_PAGE]]


@pytest.mark.parametrize("filter_honoured,sort_honoured", WORLDS)
def test_edited_table_verdict_in_each_world(filter_honoured, sort_honoured):
    rows = edited_table()
    listing = Listing(rows, updated_filter=filter_honoured, updated_sort=sort_honoured)
    verdict = run_probe(listing)
    assert verdict.filter_honoured is filter_honoured
    assert verdict.filter_reason == ("honours updated[...]" if filter_honoured else "ignores updated[...]")
    assert verdict.sort_honoured is sort_honoured
    assert len(listing.calls) == 2
    page_ids = [row["id"] for row in verdict.newest_page]
    if sort_honoured:
        assert verdict.sort_reason == "sorts on updated_at"
        expected = newest_by_updated(rows, below=SIGNPOST + 1 if filter_honoured else None)
        assert page_ids == expected
        assert verdict.newest_updated == int(rows[expected[0]][1])
        # Honoured, the filter keeps the edit made during the sync out; ignored, it is the newest row.
        assert (verdict.newest_updated <= SIGNPOST) is filter_honoured
    else:
        assert verdict.sort_reason == "does not sort on updated_at"
        assert verdict.newest_updated is None
        assert len(page_ids) == MAX_PER_PAGE  # the page the API sent, whatever its order


@pytest.mark.parametrize("filter_honoured,sort_honoured", WORLDS)
def test_never_edited_table_leaves_the_sort_unproven(filter_honoured, sort_honoured):
    rows = table(400, SIGNPOST - 10**7, SIGNPOST - 10)
    verdict = run_probe(Listing(rows, updated_filter=filter_honoured, updated_sort=sort_honoured))
    assert verdict.filter_honoured is filter_honoured
    assert verdict.sort_honoured is False
    assert verdict.sort_reason.startswith("gives no proof that it sorts on updated_at")
    assert verdict.newest_updated is None
    # Still page 1 of the listing, newest first: the newest-created rows.
    assert [row["id"] for row in verdict.newest_page] == newest_by_updated(rows)


@pytest.mark.parametrize("filter_honoured,sort_honoured", WORLDS)
def test_empty_table(filter_honoured, sort_honoured):
    listing = Listing({}, updated_filter=filter_honoured, updated_sort=sort_honoured)
    verdict = run_probe(listing)
    # Nothing can be missed in an empty table: its filter counts as honoured, its sort stays unproven.
    assert verdict.filter_honoured is True
    assert verdict.sort_honoured is False
    assert verdict.newest_page == [] and verdict.newest_updated is None
    assert len(listing.calls) == 2


def test_the_two_requests():
    listing = Listing(edited_table())
    run_probe(listing)
    future, newest = listing.calls
    assert future == {"page": 1, "per_page": 1, "sort_key": "created_at", "sort_order": "desc",
                      "updated[gte]": SIGNPOST + PROBE_AHEAD_SECONDS}
    assert newest == {"page": 1, "per_page": MAX_PER_PAGE, "sort_key": "updated_at", "sort_order": "desc",
                      "updated[lt]": SIGNPOST + 1}


def old_rows_edited_in_creation_order():
    """Rows 0..999 created a second apart, the oldest 60 edited in creation order: the newest-updated
    page is in creation order too, and only its top row being older than the newest-created row proves
    the sort."""
    rows = {i: (SIGNPOST - 10**6 + i + 0.5, SIGNPOST - 10**6 + i + 0.5) for i in range(1000)}
    for i in range(60):
        rows[i] = (rows[i][0], SIGNPOST - 1000 + i + 0.5)
    return rows


def test_sort_proved_by_a_top_row_older_than_the_newest_created_row_when_the_filter_is_ignored():
    verdict = run_probe(Listing(old_rows_edited_in_creation_order(), updated_filter=False))
    assert (verdict.filter_honoured, verdict.sort_honoured) == (False, True)
    assert [row["id"] for row in verdict.newest_page] == list(range(59, 9, -1))
    assert verdict.newest_updated == SIGNPOST - 1000 + 59


def test_same_page_under_an_honoured_filter_proves_nothing():
    # The first request then sends no row, so there is no newest-created row to compare the top row with.
    verdict = run_probe(Listing(old_rows_edited_in_creation_order(), updated_filter=True))
    assert (verdict.filter_honoured, verdict.sort_honoured) == (True, False)
    assert verdict.sort_reason.startswith("gives no proof")


def test_only_the_newest_created_row_edited_proves_nothing():
    rows = table(300, SIGNPOST - 10**6, SIGNPOST - 10**5)
    newest = max(rows, key=lambda i: rows[i][0])
    rows[newest] = (rows[newest][0], SIGNPOST - 5.5)
    verdict = run_probe(Listing(rows, updated_filter=False))
    assert verdict.sort_honoured is False and verdict.newest_updated is None
