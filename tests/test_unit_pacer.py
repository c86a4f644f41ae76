"""parallel.Pacer, in memory: another stream is started only when the tap has been waiting more than working
since the last start, measured over long enough to mean something."""

from __future__ import annotations

from tap_wootric.parallel import BUSY_SHARE, PACE_SECONDS, Pacer


class Clocks:
    def __init__(self) -> None:
        self.wall = 100.0
        self.cpu = 5.0
        self.waiting = 0

    def spend(self, wall: float, cpu: float) -> None:
        self.wall += wall
        self.cpu += cpu


def test_a_tap_waiting_on_the_api_starts_another_stream():
    clocks = Clocks()
    pacer = Pacer(lambda: clocks.wall, lambda: clocks.cpu, lambda: clocks.waiting, lambda: False)
    clocks.spend(wall=1.0, cpu=0.05)  # 150 ms round trips, a few ms of work a page
    assert pacer.another_pays()


def test_a_tap_bound_by_its_own_cpu_does_not():
    clocks = Clocks()
    pacer = Pacer(lambda: clocks.wall, lambda: clocks.cpu, lambda: clocks.waiting, lambda: False)
    clocks.spend(wall=1.0, cpu=0.9)  # an API that answers at once
    assert not pacer.another_pays()
    clocks.spend(wall=1.0, cpu=BUSY_SHARE * 1.0 + 0.01)
    assert not pacer.another_pays()


def test_too_short_a_while_is_no_evidence_and_each_start_begins_a_new_one():
    clocks = Clocks()
    pacer = Pacer(lambda: clocks.wall, lambda: clocks.cpu, lambda: clocks.waiting, lambda: False)
    clocks.spend(wall=PACE_SECONDS / 2, cpu=0.0)
    assert not pacer.another_pays()
    clocks.spend(wall=PACE_SECONDS, cpu=0.0)
    assert pacer.another_pays()
    pacer.started()
    assert not pacer.another_pays()
    # Busy since the last start: what came before it no longer counts.
    clocks.spend(wall=1.0, cpu=0.95)
    assert not pacer.another_pays()


def test_a_thread_sleeping_out_a_budget_or_a_backoff_is_evidence_at_once():
    clocks = Clocks()
    pacer = Pacer(lambda: clocks.wall, lambda: clocks.cpu, lambda: clocks.waiting, lambda: False)
    clocks.spend(wall=0.01, cpu=0.01)  # busy, and too short a while to judge by the clocks
    assert not pacer.another_pays()
    clocks.waiting = 1
    assert pacer.another_pays()


def test_an_api_that_limits_requests_starts_every_stream_at_once():
    clocks = Clocks()
    limited = False
    pacer = Pacer(lambda: clocks.wall, lambda: clocks.cpu, lambda: clocks.waiting, lambda: limited)
    assert not pacer.another_pays()
    limited = True
    assert all(pacer.another_pays() for _ in range(3))
