"""The request slots (api/in_flight.py), in memory: `workers` requests for each stream, a cap for the
account, one in all with one worker, and a thread that waits gives up at once when the run is ending."""

from __future__ import annotations

import threading
import time

from tap_wootric.api.in_flight import InFlight


class Stop(Exception):
    pass


class Stopper:
    """The run's cancellation, in small: `check` raises while it is set."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def check(self) -> None:
        if self.event.is_set():
            raise Stop()


def holding(slots: InFlight, stopper: Stopper, stream: str, count: int) -> int:
    """How many of `count` takes of `stream` at once succeed; the others are stopped while they wait."""
    taken = []

    def take() -> None:
        try:
            slots.take(stream)
        except Stop:
            return
        taken.append(stream)

    threads = [threading.Thread(target=take) for _ in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    stopper.event.set()
    for thread in threads:
        thread.join()
    stopper.event.clear()
    return len(taken)


def test_each_stream_has_its_own_slots_and_the_account_caps_them_all():
    stopper = Stopper()
    slots = InFlight(3, stopper.check, account=7)
    assert holding(slots, stopper, "responses", 5) == 3
    assert holding(slots, stopper, "end_users", 5) == 3
    assert holding(slots, stopper, "declines", 5) == 1  # the account's seventh
    slots.release("responses")
    assert holding(slots, stopper, "declines", 5) == 1
    assert holding(slots, stopper, "responses", 5) == 0  # the account is full again


def test_one_worker_is_one_request_in_flight_in_all():
    stopper = Stopper()
    slots = InFlight(1, stopper.check)
    assert slots.account == 1
    assert holding(slots, stopper, "responses", 3) == 1
    assert holding(slots, stopper, "nps_summary", 3) == 0


def test_the_account_cap_is_never_below_a_streams():
    assert InFlight(20, lambda: None, account=16).account == 20


def test_a_take_abandoned_by_a_stop_holds_no_slot():
    stopper = Stopper()
    slots = InFlight(2, stopper.check, account=2)
    slots.take("responses")
    slots.take("end_users")
    # The account is full: this take of responses holds its stream's second slot while it waits.
    assert holding(slots, stopper, "responses", 1) == 0
    slots.release("end_users")
    # The abandoned take gave its stream slot back: responses can still take its second, and no third.
    assert holding(slots, stopper, "responses", 2) == 1
