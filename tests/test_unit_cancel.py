"""Cancellation and uninterruptible_write, without sending a signal: the handler is called directly and
the signal mask is read back."""

import signal

import pytest

from tap_wootric import cancel
from tap_wootric.cancel import STOP_SIGNALS, Cancellation, Cancelled, uninterruptible_write


def blocked():
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


@pytest.mark.parametrize("signum,code,name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_check_raises_cancelled_with_the_exit_code_after_a_signal(signum, code, name):
    cancellation = Cancellation()
    cancellation.check()  # nothing asked the tap to stop yet
    assert not cancellation.requested
    cancellation._on_signal(signum, None)  # outside a wait the handler only notes the signal
    assert cancellation.requested and cancellation.signum == signum
    with pytest.raises(Cancelled) as raised:
        cancellation.check()
    assert (raised.value.exit_code, raised.value.name, raised.value.signum, str(raised.value)) == (code, name,
                                                                                                  signum, name)
    with pytest.raises(Cancelled):
        cancellation.check()  # and at every later safe point


def test_cancelled_is_no_exception_that_a_retry_would_catch():
    assert issubclass(Cancelled, BaseException) and not issubclass(Cancelled, Exception)


def test_a_second_signal_keeps_the_first():
    cancellation = Cancellation()
    cancellation._on_signal(signal.SIGTERM, None)
    cancellation._on_signal(signal.SIGINT, None)
    with pytest.raises(Cancelled) as raised:
        cancellation.check()
    assert raised.value.exit_code == 143


def test_a_signal_during_an_interruptible_wait_raises_at_once():
    cancellation = Cancellation()
    reached = []
    with pytest.raises(Cancelled) as raised, cancellation.interruptible():
        cancellation._on_signal(signal.SIGINT, None)
        reached.append("after")
    assert reached == [] and raised.value.exit_code == 130
    assert cancellation._waiting == 0


def test_a_second_signal_during_a_wait_does_not_raise_again():
    cancellation = Cancellation()
    cancellation._on_signal(signal.SIGTERM, None)
    cancellation._waiting = 1  # as inside interruptible(), while Cancelled is on its way out
    cancellation._on_signal(signal.SIGINT, None)
    assert cancellation.signum == signal.SIGTERM


def test_interruptible_does_not_start_a_wait_after_a_signal():
    cancellation = Cancellation()
    cancellation._on_signal(signal.SIGTERM, None)
    entered = []
    with pytest.raises(Cancelled), cancellation.interruptible():
        entered.append(True)
    assert entered == [] and cancellation._waiting == 0


def test_only_waits_are_interruptible_and_they_nest():
    cancellation = Cancellation()
    with cancellation.interruptible():
        with cancellation.interruptible():
            assert cancellation._waiting == 2
        assert cancellation._waiting == 1
    assert cancellation._waiting == 0
    with pytest.raises(ValueError), cancellation.interruptible():
        raise ValueError("a failed request")
    assert cancellation._waiting == 0
    cancellation._on_signal(signal.SIGINT, None)  # after the wait: noted, not raised
    assert cancellation.requested


def test_install_points_both_stop_signals_at_the_handler():
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    cancellation = Cancellation()
    try:
        cancellation.install()
        for signum in (signal.SIGTERM, signal.SIGINT):
            assert signal.getsignal(signum) == cancellation._on_signal
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_uninterruptible_write_blocks_the_stop_signals_until_it_ends():
    before = blocked()
    assert not set(STOP_SIGNALS) & before
    with uninterruptible_write():
        assert set(STOP_SIGNALS) <= blocked()  # a signal now stays pending: it is delivered afterwards
    assert blocked() == before


def test_uninterruptible_write_restores_the_mask_it_found_even_on_error():
    before = blocked()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
    try:
        with pytest.raises(OSError), uninterruptible_write():
            with uninterruptible_write():
                assert set(STOP_SIGNALS) <= blocked()
            assert set(STOP_SIGNALS) <= blocked()  # the inner one restores the outer one's mask
            raise OSError("broken pipe")
        assert blocked() == before | {signal.SIGINT}  # what was blocked before stays blocked
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def test_uninterruptible_write_where_there_are_no_signal_masks(monkeypatch):
    monkeypatch.delattr(cancel.signal, "pthread_sigmask")
    written = []
    with uninterruptible_write():
        written.append("line")
    assert written == ["line"]
