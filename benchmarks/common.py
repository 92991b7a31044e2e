"""What both benchmarks share: a Dovecot with big mailboxes, a loop heartbeat, tables.

- `bench_dovecot(sizes)`: a running in-memory Dovecot with one fresh user per size,
  each holding that many ~2 KB messages, already indexed by a first login.
- `Heartbeat`: a 1 ms task on the event loop; `max_stall` is the longest time it
  waited beyond its 1 ms (the longest the loop was blocked, plus scheduling noise).
- `LongestCallback`: the CPU time of the longest single event-loop callback while it
  is active: what our code blocked the loop for, without the OS scheduling noise the
  heartbeat also sees on a busy machine.
- `CoordinatorCheck`: the coordinator's own check code, run without Home Assistant.
- `median`, `fmt_*`, `markdown_table`, `write_section`: reporting.
"""

from __future__ import annotations

import asyncio
from asyncio import events
import contextlib
from dataclasses import dataclass
import os
from pathlib import Path
import platform
import poplib
import statistics
import sys
import time
from typing import TYPE_CHECKING

from custom_components.pop3_mail.coordinator import Pop3MailCoordinator
from custom_components.pop3_mail.pop3 import POP3Session, connect
from tests.servers.dovecot import DovecotServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    import ssl

    from custom_components.pop3_mail.models import CheckFigures
    from custom_components.pop3_mail.sync.check import CheckOutcome
    from custom_components.pop3_mail.sync.state import MailboxState

RESULTS = Path(__file__).parent / "results.md"
MESSAGE_SIZE = 2048
HEARTBEAT = 0.001


def make_message(index: int, *, size: int = MESSAGE_SIZE) -> bytes:
    """A plain-text message of about `size` bytes (LF line ends, as Maildir stores them)."""
    head = (
        f"From: Sender {index} <sender{index}@example.com>\n"
        "To: Alice <alice@example.com>\n"
        f"Subject: Benchmark message {index}\n"
        "Date: Thu, 26 Nov 2026 10:00:00 +0000\n"
        f"Message-ID: <{index}.bench@example.com>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return head + body[: size - len(head) - 1] + b"\n"


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A user on the benchmark Dovecot, with `count` messages delivered and indexed."""

    user: str
    password: str
    count: int


@dataclass(slots=True)
class BenchServer:
    """The running Dovecot, its mailboxes by size, and what setting them up took."""

    dovecot: DovecotServer
    mailboxes: dict[int, Mailbox]
    client_context: ssl.SSLContext
    setup_seconds: dict[str, float]

    @property
    def host(self) -> str:
        """Where Dovecot listens."""
        return self.dovecot.host

    @property
    def port(self) -> int:
        """The POP3S (implicit TLS) port."""
        return self.dovecot.pop3s_port

    def deliver(self, mailbox: Mailbox, count: int, *, first: int) -> None:
        """Deliver `count` more messages, numbered from `first`."""
        self.dovecot.deliver_many(mailbox.user, (make_message(first + i) for i in range(count)))


@contextlib.contextmanager
def bench_dovecot(sizes: Sequence[int]) -> Iterator[BenchServer]:
    """Start an in-memory Dovecot with one user per size and warm its indexes; stop it after."""
    dovecot = DovecotServer(in_memory=True)
    dovecot.start()
    try:
        context = dovecot.pki.client_context()
        mailboxes: dict[int, Mailbox] = {}
        timings: dict[str, float] = {}
        for size in sizes:
            user, password = dovecot.new_user()
            started = time.perf_counter()
            dovecot.deliver_many(user, (make_message(i) for i in range(size)))
            timings[f"deliver {size}"] = time.perf_counter() - started
            started = time.perf_counter()
            # Dovecot indexes a Maildir at the first login; no measurement should pay for it.
            _login_once(dovecot, user, password, context, size)
            timings[f"first login {size}"] = time.perf_counter() - started
            mailboxes[size] = Mailbox(user, password, size)
        yield BenchServer(dovecot, mailboxes, context, timings)
    except BaseException:
        with contextlib.suppress(OSError):
            print(f"--- Dovecot's log ---\n{dovecot.log_path.read_text()[-4000:]}", file=sys.stderr)
        raise
    finally:
        dovecot.stop()


class CoordinatorCheck:
    """Runs the real `Pop3MailCoordinator._async_check` without a Home Assistant instance.

    It stands in for the coordinator where that method looks (`connect`, `_state`,
    `hass.async_add_executor_job`, `_record_check`), so the benchmark measures the
    coordinator's own code, executor hand-offs included; a change of those names
    breaks the benchmark loudly instead of letting it measure something else.
    """

    def __init__(self, server: BenchServer, mailbox: Mailbox, state: MailboxState) -> None:
        """Check `mailbox` on `server`, knowing `state`."""
        self.hass = _Executor()
        self._state = state
        self._server = server
        self._mailbox = mailbox
        self.capabilities: object = None
        self.last_check: CheckFigures | None = None

    _record_check = Pop3MailCoordinator._record_check

    def connect(self) -> POP3Session:
        """The session the coordinator would open (POP3S, the test CA)."""
        return connect(
            self._server.host,
            self._server.port,
            username=self._mailbox.user,
            password=self._mailbox.password,
            ssl_context=self._server.client_context,
        )

    async def run(self, top_lines: int = 0) -> tuple[CheckOutcome, CheckFigures]:
        """One check; its outcome and the figures the coordinator records."""
        outcome = await Pop3MailCoordinator._async_check(self, top_lines)  # type: ignore[arg-type]
        if self.last_check is None:
            raise AssertionError("the check recorded no figures")
        return outcome, self.last_check


class _Executor:
    """The one `hass` method `_async_check` uses."""

    def async_add_executor_job[*Ts, T](
        self, target: Callable[[*Ts], T], *args: *Ts
    ) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(None, target, *args)


def _login_once(
    dovecot: DovecotServer, user: str, password: str, context: ssl.SSLContext, expected: int
) -> None:
    pop = poplib.POP3_SSL(dovecot.host, dovecot.pop3s_port, context=context, timeout=120)
    try:
        pop.user(user)
        pop.pass_(password)
        count, _ = pop.stat()
        if count != expected:
            raise RuntimeError(f"{user}: Dovecot shows {count} messages, {expected} delivered")
    finally:
        pop.quit()


class Heartbeat:
    """A task waking every 1 ms; `max_stall` is its longest wait beyond that, in seconds.

    While the loop runs a callback that does not yield, the heartbeat cannot run, so its
    longest overshoot bounds the longest stall from above (it adds timer granularity
    and, on a busy machine, OS scheduling delays).
    """

    def __init__(self) -> None:
        """Not running until `async with`."""
        self.max_stall = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Heartbeat:
        """Start beating; the first beat has happened when this returns."""
        self._task = asyncio.get_running_loop().create_task(self._beat())
        await asyncio.sleep(0.005)
        self.max_stall = 0.0
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Let a last beat measure the end of the work, then stop."""
        await asyncio.sleep(0.003)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _beat(self) -> None:
        clock = time.perf_counter
        while True:
            before = clock()
            await asyncio.sleep(HEARTBEAT)
            self.ticks += 1
            self.max_stall = max(self.max_stall, clock() - before - HEARTBEAT)


class LongestCallback:
    """While active, the longest CPU time (thread time) one event-loop callback took.

    Wraps `asyncio.Handle._run` (pure Python, also behind timers), which runs every
    callback and every task step. Active for one measurement at a time.
    """

    def __init__(self) -> None:
        """Not measuring until `with`."""
        self.longest = 0.0
        self.what = ""
        self._original = events.Handle._run

    def __enter__(self) -> LongestCallback:
        """Start timing callbacks."""
        original, clock = self._original, time.thread_time
        timer = self

        def run(handle: events.Handle) -> None:
            started = clock()
            original(handle)
            took = clock() - started
            if took > timer.longest:
                timer.longest = took
                timer.what = repr(getattr(handle, "_callback", handle))[:100]

        events.Handle._run = run  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop timing."""
        events.Handle._run = self._original  # type: ignore[method-assign]


def median(values: Sequence[float]) -> float:
    """The median (of repeated measurements)."""
    return statistics.median(values)


def fmt_bytes(value: float) -> str:
    """Bytes for people: 2.1 kB, 2.41 MB."""
    if value >= 1e6:
        return f"{value / 1e6:.2f} MB"
    if value >= 1e4:
        return f"{value / 1e3:.0f} kB"
    if value >= 1e3:
        return f"{value / 1e3:.1f} kB"
    return f"{value:.0f} B"


def fmt_ms(seconds: float) -> str:
    """Milliseconds with a precision that fits their size."""
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def fmt_ratio(value: float, base: float) -> str:
    """`value / base` as a ratio, or "-" when the base is zero."""
    if base == 0:
        return "-"
    ratio = value / base
    if ratio >= 10:
        return f"{ratio:.0f}x"
    if ratio >= 0.1:
        return f"{ratio:.2f}x"
    return f"{ratio:.4f}x"


def verdict(passed: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if passed else "FAIL"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table, columns padded so the text form reads well too."""
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def raise_priority() -> int:
    """Ask for a higher CPU priority (root only), inherited by the Dovecot we start.

    Other work on a small machine otherwise preempts the client, the server and the
    heartbeat for whole time slices, which the figures would show as stalls and jitter.
    Returns the niceness now in force.
    """
    with contextlib.suppress(OSError):
        return os.nice(-10 - os.nice(0))
    return os.nice(0)


def realtime_client() -> bool:
    """Run this thread (and the threads it starts) as a real-time task, when allowed.

    Called after Dovecot started, so the server stays an ordinary task. The client then
    never waits for a time slice behind other work of the machine: the heartbeat
    measures what the client blocks the loop for, not the neighbours. Linux keeps 5% of
    every second for ordinary tasks whatever happens. Returns whether it worked.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except (OSError, AttributeError):
        return False
    return True


def scheduling() -> str:
    """How this thread is scheduled, for the results."""
    policy = "real-time (SCHED_FIFO)" if os.sched_getscheduler(0) == os.SCHED_FIFO else "ordinary"
    return f"client {policy}, niceness {os.nice(0)}"


def environment(server: BenchServer | None = None) -> str:
    """One line saying where the figures come from."""
    from homeassistant.const import __version__ as ha_version  # noqa: PLC0415

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    parts = [
        f"Python {platform.python_version()}",
        f"Home Assistant {ha_version}",
        f"{cpu}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        scheduling(),
    ]
    if server is not None:
        parts.insert(0, f"Dovecot {server.dovecot.version} (in memory, POP3S, test CA)")
    return "; ".join(parts)


def write_section(name: str, text: str) -> None:
    """Replace (or add) the section `name` of benchmarks/results.md with `text`."""
    start, end = f"<!-- {name} start -->", f"<!-- {name} end -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    if start in current and end in current:
        before, rest = current.split(start, 1)
        _, after = rest.split(end, 1)
        current = before + block + after.lstrip("\n")
        if not current.endswith("\n"):
            current += "\n"
    else:
        current = current.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(current)


def command_line() -> str:
    """How this script was run, for the results file."""
    args = " ".join(sys.argv[1:])
    module = Path(sys.argv[0]).stem
    python = os.path.relpath(sys.executable)
    if python.startswith(".."):
        python = "python"
    return f"`{python} -m benchmarks.{module}{' ' + args if args else ''}`"
