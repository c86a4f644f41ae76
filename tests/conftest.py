"""Shared fixtures: fakes of the Wootric API on 127.0.0.1, a runner for the real tap CLI, one PostgreSQL.

The helpers they use live in helpers.py; the names tests import from here (``from conftest import seed, select``)
still work."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake import FakeWootric  # noqa: E402
from helpers import (  # noqa: E402, F401  (re-exported for `from conftest import ...`)
    NOW,
    STREAMS,
    TAP,
    TEST_TIME_SCALE,
    YEARS_AGO,
    TapRun,
    TapRunner,
    leaked_secrets,
    parse_messages,
    secrets_of,
    seed,
    select,
)
from postgres import Postgres  # noqa: E402


@pytest.fixture
def make_fake():
    """``make_fake(**options)``: a started FakeWootric (seed 11 unless given, no data); all are stopped at
    teardown. ``make_fake.made`` lists them."""
    started: List[FakeWootric] = []

    def make(**options: Any) -> FakeWootric:
        server = FakeWootric(**{"seed": 11, **options}).start()
        started.append(server)
        return server

    make.made = started
    yield make
    for server in reversed(started):
        server.stop()


@pytest.fixture
def fake(make_fake):
    """A started fake with seed 11 and no data."""
    return make_fake()


@pytest.fixture
def tap(tmp_path, request):
    """The tap CLI; after the test, everything it printed is searched for the secrets of every fake the test
    made (the ``fake`` fixture's included)."""
    assert TAP, "the tap-wootric command is not installed in this environment"
    runner = TapRunner(tmp_path)
    # Taken now, so that make_fake is torn down after this fixture whatever the order of the test's arguments.
    made = request.getfixturevalue("make_fake").made if "make_fake" in request.fixturenames else []
    yield runner
    for server in made:
        leaked = leaked_secrets(runner.outputs, secrets_of(server))
        assert not leaked, f"{len(leaked)} secret(s) appeared in the tap's output"


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL cluster for the whole session; each test makes databases of its own."""
    server = Postgres.start()
    yield server
    server.stop()
