"""SIGTERM and SIGINT stop the tap between Singer messages, never inside one.

Schedulers cancel a pipeline with SIGTERM (Ctrl-C sends SIGINT). Three rules keep the output whole:

- While a message is written, both signals are blocked at the OS level (`uninterruptible_write`). A
  signal that arrives then waits, pending, until the write and flush have finished. Merely noting the
  signal in a Python handler is not enough: a handled signal interrupts the blocking `write()` on a
  full pipe, the kernel returns a short count, and Python's text and buffered layers drop the rest of
  the data without an error (measured: 131,072 of 1,000,000 bytes reached the reader, exit code 0).
- The handler only notes the signal, except while the tap waits on the network or a timer
  (`Cancellation.interruptible`, around every API call): there it raises `Cancelled`, so a request
  that could take the full request timeout, or a rate-limit wait, ends at once.
- Everywhere else the tap stops at the next safe point (`Cancellation.check`, before each request), so
  nothing new starts and the last STATE written stays the resume point.

Nothing here imports more than the standard library: the entry point installs the handlers before the
tap's heavy imports, so that a Ctrl-C during them is handled quietly too.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from types import FrameType
from typing import Iterator, Optional

# SIGINT first: a process seen catching SIGTERM (which Python never does by itself) then has both handlers,
# so no Ctrl-C can slip in between the two and meet Python's default KeyboardInterrupt.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Cancelled(BaseException):
    """The tap was asked to stop by a signal. A BaseException, like KeyboardInterrupt, so that no
    `except Exception` on the way out (retries, error reporting) takes it for a failure."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process the signal ended: 143 and 130."""
        return 128 + self.signum


class WorkerStopped(BaseException):
    """A worker thread was told to stop because the run is ending (a signal, or another worker's error);
    a BaseException so that no retry takes it for a failure of the request."""


class Cancellation:
    """Whether, and by which signal, the process was asked to stop.

    One is made by the entry point and handed to what needs it (the API client); a signal disposition is
    process-wide, so a process has at most one installed.
    """

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._waiting = 0  # > 0 while the main thread waits on the network or a timer
        # Set by a signal, or by the main thread when the run fails: worker threads cannot be interrupted by
        # a signal handler (it runs in the main thread), so they wait on this instead of sleeping.
        self._stopping = threading.Event()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.signum is not None:
            return  # already stopping; a second signal must not break the orderly exit
        self.signum = signum
        self._stopping.set()
        if self._waiting:
            raise Cancelled(signum)

    def stop_workers(self) -> None:
        """Ask worker threads to stop at their next safe point (the run failed, or is over)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def sleep(self, seconds: float) -> None:
        """A wait that a stop ends at once, from any thread: Cancelled for a signal, WorkerStopped else."""
        if self._stopping.wait(max(0.0, seconds)):
            self.check()
            raise WorkerStopped()

    def check(self) -> None:
        """A safe point: raise Cancelled if a signal asked the tap to stop (WorkerStopped, in a worker
        thread, when the run is ending for another reason)."""
        if self.signum is not None:
            raise Cancelled(self.signum)
        if self._stopping.is_set() and threading.current_thread() is not threading.main_thread():
            raise WorkerStopped()

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """Around waits on the network or a timer, which a signal ends at once by raising Cancelled.
        Nothing inside may write to stdout."""
        self.check()
        # Only the main thread's waits: the handler raises in the main thread, whatever a worker does.
        main = threading.current_thread() is threading.main_thread()
        self._waiting += main
        try:
            yield
        finally:
            self._waiting -= main


@contextlib.contextmanager
def uninterruptible_write() -> Iterator[None]:
    """Block SIGTERM and SIGINT while a message is written and flushed; one that arrives meanwhile is
    delivered (and handled) as soon as the write is complete. Where signal masks do not exist
    (Windows), the write is unprotected."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
