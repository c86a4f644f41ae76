"""SIGTERM and SIGINT end the tap cleanly, and a target that stops reading ends it with one line.

Real processes and real pipes: the tap's stdout is a pipe that a reader thread here drains, as a
target would, and pauses at the moments under test. After every stop the output must end on a
complete line, every line must be a JSON message, stderr must end with exactly one line about the
stop, the exit must come within 5 s once the reader drains the pipe, and a rerun from the last STATE
the tap wrote must, together with what came before that STATE, hold every record of the source.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import signal
import subprocess
import sys
import termios
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
from fake import FakeWootric
from helpers import LOG_LINE, STREAMS, TapRunner, fill

pytestmark = pytest.mark.slow  # Real processes stopped mid-page, then resumed.

DATA_END = datetime(2026, 6, 1, tzinfo=timezone.utc)
DATA_START = DATA_END - timedelta(days=3 * 365)
# A small pipe fills at once, so the tap is soon blocked inside the write of a page (pages are ~40 KB).
PIPE_SIZE = 4096
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # named in fcntl from Python 3.10 on
EXIT_WITHIN_SECONDS = 5.0
STOPPED = {signal.SIGTERM: "CRITICAL Stopped by SIGTERM; the last STATE written is the resume point",
           signal.SIGINT: "CRITICAL Stopped by SIGINT; the last STATE written is the resume point"}
EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}


@pytest.fixture
def filled_fake(make_fake) -> FakeWootric:
    return fill(make_fake(seed=41), (220, 300, 80), DATA_START, DATA_END)


class Target(threading.Thread):
    """The reading end of the tap's stdout. It reads small chunks; when `halt_when(data)` turns true it
    stops reading (the pipe fills and the tap blocks in its write) until `resume()`."""

    def __init__(self, halt_when: Optional[Callable[[bytes], bool]] = None, chunk: int = 1000):
        super().__init__(daemon=True)
        self.fd = -1  # set by TapProcess
        self.halt_when = halt_when
        self.chunk = chunk
        self.data = bytearray()
        self.lock = threading.Lock()
        self.halted = threading.Event()
        self.resumed = threading.Event()
        self.done = threading.Event()
        self.dead = False
        self.on_line: Optional[Callable[[bytes], None]] = None

    def run(self) -> None:
        while True:
            chunk = os.read(self.fd, self.chunk)
            if not chunk:
                break
            with self.lock:
                start = len(self.data)
                self.data += chunk
            if self.on_line is not None:
                # Complete lines that this chunk finished.
                begin = self.data.rfind(b"\n", 0, start) + 1
                for line in bytes(self.data[begin:]).split(b"\n")[:-1]:
                    self.on_line(line)
            if self.halt_when is not None and not self.halted.is_set() and self.halt_when(bytes(self.data)):
                self.halted.set()
                self.resumed.wait()
                if self.dead:
                    break
                self.chunk = 65536
        self.done.set()

    def resume(self) -> None:
        self.resumed.set()

    def die(self) -> None:
        """Stop reading for good, as a target that crashed: the tap's next write fails."""
        self.dead = True
        os.close(self.fd)
        self.resume()

    def read_so_far(self) -> int:
        with self.lock:
            return len(self.data)


def unread_bytes(fd: int) -> int:
    """Bytes written into the pipe and not yet read."""
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)


def wait_until_blocked(fd: int) -> None:
    """Wait until the pipe is full and stays so: the tap is blocked inside a write."""
    deadline, last, steady_since = time.monotonic() + 10, -1, time.monotonic()
    while time.monotonic() < deadline:
        unread = unread_bytes(fd)
        if unread != last:
            last, steady_since = unread, time.monotonic()
        elif time.monotonic() - steady_since > 0.3:
            return
        time.sleep(0.02)


class TapProcess:
    """The tap with stdout on a pipe read by a Target, stderr collected."""

    def __init__(self, tap: TapRunner, config: Dict[str, Any], target: Target, state: Optional[dict] = None):
        self.tap = tap
        self.proc = subprocess.Popen(tap.argv(config, state=state), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=tap.env())
        fcntl.fcntl(self.proc.stdout.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
        target.fd = self.proc.stdout.fileno()
        self.target = target
        self.stderr = b""
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()
        target.start()

    def _read_stderr(self) -> None:
        self.stderr = self.proc.stderr.read()

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def finish(self, timeout: float = 60) -> Tuple[int, str, str]:
        returncode = self.proc.wait(timeout=timeout)
        self.target.resume()
        assert self.target.done.wait(timeout=10)
        self._stderr_reader.join(timeout=10)
        stdout, stderr = bytes(self.target.data).decode("utf-8", "replace"), self.stderr.decode()
        self.tap.outputs += [stdout, stderr]
        return returncode, stdout, stderr


def messages_of(stdout: str) -> List[Dict[str, Any]]:
    """Every line must be a whole JSON message, the last one included."""
    assert stdout == "" or stdout.endswith("\n"), f"output ends mid-line: ...{stdout[-80:]!r}"
    return [json.loads(line) for line in stdout.splitlines()]


def assert_one_stop_line(stderr: str, signum: int) -> None:
    lines = stderr.splitlines()
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-2000:]
    assert [line for line in lines if not LOG_LINE.match(line)] == [], "stderr has lines that are not log lines"
    assert [line for line in lines if line.startswith("CRITICAL")] == [STOPPED[signum]]
    assert lines[-1] == STOPPED[signum]


def assert_resume_loses_nothing(tap: TapRunner, fake: FakeWootric, messages: List[Dict[str, Any]]) -> None:
    """What a target keeps of the stopped run (records up to its last STATE) plus a rerun from that STATE
    hold every source record."""
    last = max((i for i, m in enumerate(messages) if m["type"] == "STATE"), default=None)
    kept = [] if last is None else [m for m in messages[:last] if m["type"] == "RECORD"]
    state = None if last is None else messages[last]["value"]
    resumed = tap.run(fake.config(), state=state)
    assert resumed.returncode == 0, resumed.stderr
    emitted = {stream: set() for stream in STREAMS}
    for message in kept + [m for m in resumed.messages if m["type"] == "RECORD"]:
        emitted[message["stream"]].add(message["record"]["id"])
    for stream in STREAMS:
        missing = fake.ids(stream) - emitted[stream]
        assert not missing, f"{len(missing)} {stream} records lost"
    if kept:
        assert len(resumed.records()) < sum(len(fake.ids(stream)) for stream in STREAMS), "the rerun started over"


def mid_record_line_of(stream: str, after_records: int) -> Callable[[bytes], bool]:
    """Halt when the data read ends inside a RECORD line of `stream`, after that many of its records."""
    head = b'{"type": "RECORD", "stream": "' + stream.encode() + b'"'

    def halt(data: bytes) -> bool:
        if data.endswith(b"\n"):
            return False
        last_line = data[data.rfind(b"\n") + 1:]
        return last_line.startswith(head) and data.count(head) > after_records

    return halt


@pytest.mark.parametrize("signum, stream", [(signal.SIGTERM, "end_users"), (signal.SIGTERM, "responses"),
                                            (signal.SIGINT, "end_users")], ids=["SIGTERM-end_users",
                                                                                "SIGTERM-responses",
                                                                                "SIGINT-end_users"])
def test_a_signal_while_a_page_is_written_finishes_the_page_and_stops(tap, filled_fake, signum, stream):
    fake = filled_fake
    target = Target(halt_when=mid_record_line_of(stream, after_records=60))
    run = TapProcess(tap, fake.config(), target)
    assert target.halted.wait(timeout=30), "the sync never reached the page to stop in"
    fd = run.proc.stdout.fileno()
    wait_until_blocked(fd)
    written_at_signal = target.read_so_far() + unread_bytes(fd)
    run.signal(signum)
    time.sleep(0.5)
    assert run.proc.poll() is None, "the tap ended while its write was still unfinished"
    resumed_at = time.monotonic()
    target.resume()
    returncode, stdout, stderr = run.finish()
    exit_seconds = time.monotonic() - resumed_at

    assert returncode == EXIT_CODES[signum], stderr[-2000:]
    messages = messages_of(stdout)
    # The moment under test: the tap had written part of a line of this stream's records.
    cut = stdout.encode()
    line_start = cut.rfind(b"\n", 0, written_at_signal) + 1
    assert cut[written_at_signal - 1:written_at_signal] != b"\n", "the signal came between two writes"
    assert cut[line_start:].startswith(b'{"type": "RECORD", "stream": "' + stream.encode())
    assert exit_seconds < EXIT_WITHIN_SECONDS, exit_seconds
    assert_one_stop_line(stderr, signum)
    assert_resume_loses_nothing(tap, fake, messages)


def test_ctrl_c_that_also_ends_the_target_still_exits_130(tap, filled_fake):
    """Ctrl-C reaches the whole pipeline: the target may die while the tap finishes its write."""
    fake = filled_fake
    target = Target(halt_when=mid_record_line_of("responses", after_records=60))
    run = TapProcess(tap, fake.config(), target)
    assert target.halted.wait(timeout=30), "the sync never reached the page to stop in"
    wait_until_blocked(run.proc.stdout.fileno())
    run.signal(signal.SIGINT)
    time.sleep(0.2)
    target.die()
    returncode, stdout, stderr = run.finish()
    assert returncode == 130, stderr[-2000:]
    assert_one_stop_line(stderr, signal.SIGINT)
    assert_resume_loses_nothing(tap, fake, messages_of(stdout[:stdout.rfind("\n") + 1]))


def test_sigterm_right_after_a_state_ends_the_tap_cleanly(tap, filled_fake):
    fake = filled_fake
    target = Target()
    holder: Dict[str, Any] = {"states": 0, "sent": None}

    def on_line(line: bytes) -> None:
        if holder["sent"] is None and line.startswith(b'{"type": "STATE"'):
            value = json.loads(line)["value"]
            if "responses" in value.get("bookmarks", {}) and value.get("currently_syncing") == "responses":
                holder["states"] += 1
                if holder["states"] == 2:
                    holder["sent"] = time.monotonic()
                    run.signal(signal.SIGTERM)

    target.on_line = on_line
    run = TapProcess(tap, fake.config(), target)
    returncode, stdout, stderr = run.finish()
    assert holder["sent"] is not None, "the sync never wrote the STATE to stop at"
    assert returncode == 143, stderr[-2000:]
    assert time.monotonic() - holder["sent"] < EXIT_WITHIN_SECONDS
    messages = messages_of(stdout)
    assert_one_stop_line(stderr, signal.SIGTERM)
    assert_resume_loses_nothing(tap, fake, messages)


def at_first_request_after_a_record(fake: FakeWootric, target: Target,
                                    action: Callable[[FakeWootric, int], None]) -> Dict[str, Any]:
    """Call `action(fake, n)` once, just before serving the first request (number n) made after the target
    has read a RECORD: the tap is then in the middle of a stream. A hook runs before the fake looks up
    the faults of its request, so the action can still break that very request."""
    fired: Dict[str, Any] = {}

    def hook(server: FakeWootric, number: int) -> None:
        if not fired and b'{"type": "RECORD"' in bytes(target.data):
            fired["number"] = number
            action(server, number)

    for number in range(1, 200):
        fake.on_request(number, functools.partial(hook, number=number))
    return fired


@pytest.mark.parametrize("workers", [1, 4], ids=["1-worker", "4-workers"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_slow_request_ends_it_at_once(tap, filled_fake, signum, workers):
    fake = filled_fake
    target = Target()
    holder: Dict[str, Any] = {}

    def stop_during(server: FakeWootric, number: int) -> None:
        server.fault(number, "slow", 60)  # far beyond the test's patience
        holder["sent"] = time.monotonic()
        holder["run"].signal(signum)

    fired = at_first_request_after_a_record(fake, target, stop_during)
    holder["run"] = TapProcess(tap, fake.config(workers=workers), target)
    returncode, stdout, stderr = holder["run"].finish()
    assert fired, "the sync never made a request after its first records"
    exit_seconds = time.monotonic() - holder["sent"]
    assert returncode == EXIT_CODES[signum], stderr[-2000:]
    assert exit_seconds < EXIT_WITHIN_SECONDS, exit_seconds
    # Nothing new starts after the signal: the fake may still receive the requests the other workers had
    # in flight, and no more.
    assert fake.api_request_count - fired["number"] <= workers - 1, "the tap made a request after the signal"
    messages = messages_of(stdout)
    assert_one_stop_line(stderr, signum)
    assert_resume_loses_nothing(tap, fake, messages)


@pytest.mark.parametrize("workers", [1, 4], ids=["1-worker", "4-workers"])
def test_sigterm_during_a_rate_limit_wait_ends_it_at_once(tap, filled_fake, workers):
    fake = filled_fake
    target = Target()
    holder: Dict[str, Any] = {}

    def rate_limit_then_stop(server: FakeWootric, number: int) -> None:
        server.fail(number, 429, headers={"Retry-After": "30"})

        def send() -> None:
            holder["sent"] = time.monotonic()
            # With several workers the other streams go on during the wait: count what the fake had then.
            holder["requests"] = server.api_request_count
            holder["run"].signal(signal.SIGTERM)

        # Half a second after the 429: the tap is asleep in its 30 s wait by then.
        threading.Timer(0.5, send).start()

    fired = at_first_request_after_a_record(fake, target, rate_limit_then_stop)
    holder["run"] = TapProcess(tap, fake.config(workers=workers), target)
    returncode, stdout, stderr = holder["run"].finish()
    assert fired, "the sync never made a request after its first records"
    exit_seconds = time.monotonic() - holder["sent"]
    assert returncode == 143, stderr[-2000:]
    assert exit_seconds < EXIT_WITHIN_SECONDS, exit_seconds
    assert "retry 1 in 30.0 s" in stderr
    # With one worker, nothing but the wait; with several, the others' requests in flight at the signal.
    assert fake.api_request_count - holder["requests"] <= workers - 1
    if workers == 1:
        assert fake.api_request_count == fired["number"]
    assert_one_stop_line(stderr, signal.SIGTERM)
    assert_resume_loses_nothing(tap, fake, messages_of(stdout))


def test_a_target_that_stops_reading_ends_the_tap_with_one_line(tap, filled_fake):
    fake = filled_fake
    read_end, write_end = os.pipe()
    reader = subprocess.Popen([sys.executable, "-c", "import sys\nfor _ in range(5): sys.stdin.readline()"],
                              stdin=read_end)
    proc = subprocess.Popen(tap.argv(fake.config()), stdout=write_end, stderr=subprocess.PIPE, env=tap.env())
    os.close(read_end)
    os.close(write_end)
    stderr = proc.communicate(timeout=60)[1].decode()
    reader.wait(timeout=10)
    tap.outputs.append(stderr)
    assert proc.returncode == 1
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-2000:]
    lines = stderr.splitlines()
    assert [line for line in lines if not LOG_LINE.match(line)] == []
    assert [line for line in lines if line.startswith("CRITICAL")] == [lines[-1]]
    assert lines[-1].startswith("CRITICAL The target stopped reading the tap's output (broken pipe)")


def handlers_installed(pid: int) -> bool:
    """Whether the process catches SIGTERM, which Python does not by default and the tap's entry point
    sets up before its heavy imports."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.M).group(1), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def test_the_package_import_is_light_so_the_handlers_come_before_the_heavy_imports():
    code = "import sys, tap_wootric; print(sorted({'singer', 'requests', 'pendulum', 'backoff'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_ctrl_c_while_the_tap_is_importing_prints_no_traceback(fake, tap):
    # Once the entry point has installed its handlers, importing singer-python, requests and pendulum
    # still takes about 150 ms: Ctrl-C at several points in it (the later ones may land after it).
    for delay in (0.0, 0.03, 0.06, 0.1):
        proc = subprocess.Popen(tap.argv(fake.config()), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=tap.env())
        deadline = time.monotonic() + 10
        while not handlers_installed(proc.pid) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.001)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = (stream.decode() for stream in proc.communicate(timeout=30))
        tap.outputs += [stdout, stderr]
        assert proc.returncode == 130, (delay, stderr[-2000:])
        assert_one_stop_line(stderr, signal.SIGINT)
        if delay == 0.0:
            # Nothing else happened: the signal came while the tap was still importing.
            assert stderr.splitlines() == [STOPPED[signal.SIGINT]] and stdout == ""
