"""The newest-first edit walk (strategy B) through the real CLI against the fake's world B: what edits spread
over a whole year of responses cost, counted at the fake, probes included."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from helpers import NOW, read_strategies, select

pytestmark = pytest.mark.slow  # 3,000 responses, two syncs.

YEAR = timedelta(days=365)


def test_2000_edits_spread_over_a_year_of_3000_responses_cost_at_most_55_requests(make_fake, tap):
    fake = make_fake(seed=21)  # world B: sort_key=updated_at honoured, updated[...] ignored on /responses
    fake.generate("responses", 3000, NOW - YEAR, NOW - timedelta(days=1))
    catalog = select(tap.discover(fake.config()), {"responses": None})
    first = tap.run(fake.config(), catalog=catalog)
    assert first.returncode == 0, first.stderr
    # Any 2,000 of them, edited in no particular order: neither the rows nor their order follow creation.
    edited = random.Random(21).sample(sorted(fake.ids("responses")), 2000)
    for record_id in edited:
        fake.update("responses", record_id, text="spread edit")
    fake.clear_log()
    second = tap.run(fake.config(reconcile_runs=0), catalog=catalog, state=first.final_state)
    assert second.returncode == 0, second.stderr
    requests = fake.list_requests("responses")
    assert read_strategies(requests) == ["newest-first edit walk"]
    emitted = {record["id"]: record for record in second.records("responses")}
    assert set(edited) <= set(emitted) and all(emitted[i]["text"] == "spread edit" for i in edited)
    assert len(requests) <= 1.25 * math.ceil(2000 / 50) + 5, len(requests)
    assert all(int(request["params"]["page"]) <= 30 for request in requests)
