"""Issue #3: what checking an unchanged mailbox costs, against poplib and the protocol floor.

On one Dovecot (in memory, POP3S with the test CA) with mailboxes of 1,000, 10,000 and
100,000 messages of ~2 KB, each repetition measures, one after the other:

- ours: the coordinator's check (`sync.state.new_check` driven over `pop3.connect`:
  CAPA, AUTH PLAIN, STAT + ``UIDL n`` pipelined, QUIT), then `sync.state.apply`;
- poplib: `poplib.POP3_SSL` in a thread doing the naive check (USER, PASS, STAT, full
  UIDL, QUIT), CPU measured in that thread;
- floor: a bare asyncio stream session (no parsing library) doing AUTH PLAIN, STAT,
  ``UIDL n``, QUIT, one command at a time.

Each is run once without and once with the 1 ms heartbeat: client CPU and wall time come
from the run without it (the heartbeat's own wake-ups would count as client CPU), the
loop stall from the run with it. Bytes are POP3 bytes (after TLS) as the client sent and
received them: ours from `SessionStats`, poplib by its `_putline`/`_getline`, the floor
by its own reads and writes. Medians of `--repeat` repetitions.

Then the headers (TOP n 0) of 1,000 messages, with our client, pipelined and one by one,
in one session each (timed from the first TOP to the last answer).

    .venv/bin/python -m benchmarks.bench_check [--sizes 1000,10000,100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from dataclasses import dataclass, fields
import poplib
import time
from typing import TYPE_CHECKING

from benchmarks.common import (
    BenchServer,
    CoordinatorCheck,
    Heartbeat,
    LongestCallback,
    Mailbox,
    bench_dovecot,
    command_line,
    environment,
    fmt_bytes,
    fmt_ms,
    fmt_ratio,
    markdown_table,
    median,
    raise_priority,
    realtime_client,
    verdict,
    write_section,
)
from custom_components.pop3_mail.pop3 import POP3Session, Top, connect
from custom_components.pop3_mail.sync import state as mailbox_state

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from custom_components.pop3_mail.sync.state import MailboxState

HEADER_FETCH = 1000
TARGET_BYTES = 0.01  # of poplib's
TARGET_CPU = 0.10  # of poplib's
TARGET_WALL = 1.2  # of the floor's
TARGET_STALL = 0.005  # seconds
TARGET_PIPELINE = 5.0  # times faster
SETTLE = 0.05  # seconds between sessions


@dataclass(slots=True)
class Run:
    """One measured check."""

    bytes_in: float = 0
    bytes_out: float = 0
    commands: float = 0
    round_trips: float = 0
    cpu: float = 0.0
    wall: float = 0.0
    stall: float = 0.0
    callback: float = 0.0


def median_run(runs: list[Run]) -> Run:
    """Field-wise median of repeated runs."""
    return Run(**{f.name: median([getattr(r, f.name) for r in runs]) for f in fields(Run)})


# --- the three clients -------------------------------------------------------------------


async def ours(server: BenchServer, mailbox: Mailbox, state: MailboxState) -> Run:
    """The coordinator's own `_async_check`, then `apply` as its update does."""
    wall, cpu = time.perf_counter(), time.thread_time()
    outcome, figures = await CoordinatorCheck(server, mailbox, state).run()
    after = mailbox_state.apply(state, outcome)
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    if outcome.full_list or outcome.new or outcome.count != mailbox.count or after != state:
        raise AssertionError(f"the unchanged mailbox did not check as unchanged: {outcome}")
    return Run(
        figures.bytes_in,
        figures.bytes_out,
        figures.commands,
        figures.round_trips,
        cpu=cpu,
        wall=wall,
    )


class _CountingPOP3SSL(poplib.POP3_SSL):
    """poplib's POP3_SSL, counting the lines it reads and writes (POP3 bytes, after TLS)."""

    bytes_in = 0
    bytes_out = 0
    commands = 0

    def _putline(self, line: bytes) -> None:
        self.bytes_out += len(line) + 2
        self.commands += 1
        super()._putline(line)  # type: ignore[misc]

    def _getline(self) -> tuple[bytes, int]:
        line, octets = super()._getline()  # type: ignore[misc]
        self.bytes_in += octets
        return line, octets


def poplib_check(server: BenchServer, mailbox: Mailbox) -> Run:
    """The naive check in a worker thread: USER, PASS, STAT, full UIDL, QUIT."""
    wall, cpu = time.perf_counter(), time.thread_time()
    pop = _CountingPOP3SSL(server.host, server.port, context=server.client_context, timeout=60)
    pop.user(mailbox.user)
    pop.pass_(mailbox.password)
    count, _ = pop.stat()
    _, lines, _ = pop.uidl()
    pop.quit()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    if count != mailbox.count or len(lines) != count:
        raise AssertionError(f"poplib saw {count} messages and {len(lines)} uids")
    return Run(pop.bytes_in, pop.bytes_out, pop.commands, pop.commands, cpu=cpu, wall=wall)


async def floor_check(server: BenchServer, mailbox: Mailbox, last_uid: str) -> Run:
    """The least a client can do: raw streams, AUTH PLAIN, STAT, UIDL n, QUIT, one at a time."""
    wall, cpu = time.perf_counter(), time.thread_time()
    reader, writer = await asyncio.open_connection(
        server.host, server.port, ssl=server.client_context
    )
    run = Run()

    async def command(line: bytes) -> bytes:
        writer.write(line)
        run.bytes_out += len(line)
        run.commands += 1
        run.round_trips += 1
        await writer.drain()
        answer = await reader.readline()
        run.bytes_in += len(answer)
        if not answer.startswith(b"+OK"):
            raise AssertionError(f"floor: {line[:4]!r} answered {answer!r}")
        return answer

    greeting = await reader.readline()
    run.bytes_in += len(greeting)
    secret = base64.b64encode(f"\0{mailbox.user}\0{mailbox.password}".encode())
    await command(b"AUTH PLAIN " + secret + b"\r\n")
    count = int((await command(b"STAT\r\n")).split()[1])
    uid = (await command(b"UIDL %d\r\n" % count)).split()[2].decode()
    await command(b"QUIT\r\n")
    writer.close()
    await writer.wait_closed()
    run.cpu, run.wall = time.thread_time() - cpu, time.perf_counter() - wall
    if count != mailbox.count or uid != last_uid:
        raise AssertionError(f"floor saw {count} messages, last uid {uid}")
    return run


async def settle(server: BenchServer, mailbox: Mailbox) -> None:
    """A pause, one short session (login, STAT, QUIT), and another pause."""
    await asyncio.sleep(SETTLE)
    async with _session(server, mailbox) as session:
        await session.stat()
    await asyncio.sleep(SETTLE)


def _session(server: BenchServer, mailbox: Mailbox) -> POP3Session:
    return connect(
        server.host,
        server.port,
        username=mailbox.user,
        password=mailbox.password,
        ssl_context=server.client_context,
    )


async def baseline_state(server: BenchServer, mailbox: Mailbox) -> MailboxState:
    """The state the coordinator holds after its first check, once it knows the newest mail."""
    state = mailbox_state.MailboxState()
    outcome, _ = await CoordinatorCheck(server, mailbox, state).run()
    newest = outcome.newest
    if newest is None:
        raise AssertionError("the baseline did not fetch the newest message")
    last = mailbox_state.LastMessage(uid=newest.uid, sender="", subject="", date=None)
    return mailbox_state.apply(state, outcome, last_message=last)


async def with_heartbeat[T](work: Callable[[], Awaitable[T]]) -> tuple[T, float, float]:
    """Run `work` while the heartbeat beats: its result, the longest stall and callback."""
    with LongestCallback() as callbacks:
        async with Heartbeat() as heartbeat:
            result = await work()
    return result, heartbeat.max_stall, callbacks.longest


# --- header fetching -----------------------------------------------------------------------


async def fetch_headers(
    server: BenchServer, mailbox: Mailbox, *, pipelined: bool, heartbeat: bool
) -> Run:
    """TOP n 0 of the first `HEADER_FETCH` messages in one session; times the TOPs only."""
    numbers = range(1, HEADER_FETCH + 1)
    async with _session(server, mailbox) as session:
        before = session.stats

        async def work() -> list[bytes]:
            if pipelined:
                results = await session.pipeline([Top(n, 0) for n in numbers])
                return [r for r in results if isinstance(r, bytes)]
            return [await session.top(n, 0) for n in numbers]

        wall, cpu = time.perf_counter(), time.thread_time()
        if heartbeat:
            tops, stall, callback = await with_heartbeat(work)
        else:
            tops, stall, callback = await work(), 0.0, 0.0
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        after = session.stats
    if len(tops) != HEADER_FETCH or not all(b"\r\nSubject: " in top for top in tops):
        raise AssertionError("header fetch returned something else than 1,000 headers")
    return Run(
        after.bytes_in - before.bytes_in,
        after.bytes_out - before.bytes_out,
        after.commands - before.commands,
        after.round_trips - before.round_trips,
        cpu=cpu,
        wall=wall,
        stall=stall,
        callback=callback,
    )


# --- the run -----------------------------------------------------------------------------


@dataclass(slots=True)
class SizeResult:
    """Medians for one mailbox size."""

    size: int
    ours: Run
    poplib: Run
    floor: Run


async def measure_size(server: BenchServer, mailbox: Mailbox, repeat: int) -> SizeResult:
    """Interleave the three clients `repeat` times, so drifts of the machine hit all alike."""
    state = await baseline_state(server, mailbox)
    last_uid = state.known_uids[-1]
    runs: dict[str, list[Run]] = {"ours": [], "poplib": [], "floor": []}
    clients: dict[str, Callable[[], Awaitable[Run]]] = {
        "ours": lambda: ours(server, mailbox, state),
        "poplib": lambda: asyncio.to_thread(poplib_check, server, mailbox),
        "floor": lambda: floor_check(server, mailbox, last_uid),
    }
    names = list(clients)
    for rep in range(repeat):
        for name in names[rep % 3 :] + names[: rep % 3]:
            # Dovecot still works a while after a session that listed every uid (poplib's):
            # the same short session before every measured one puts each on equal terms.
            await settle(server, mailbox)
            run = await clients[name]()
            await settle(server, mailbox)
            _, run.stall, run.callback = await with_heartbeat(clients[name])
            runs[name].append(run)
    return SizeResult(
        mailbox.count,
        median_run(runs["ours"]),
        median_run(runs["poplib"]),
        median_run(runs["floor"]),
    )


async def measure_headers(server: BenchServer, mailbox: Mailbox, repeat: int) -> tuple[Run, Run]:
    """Medians of the pipelined and the one-by-one header fetch."""
    pipelined: list[Run] = []
    serial: list[Run] = []
    for _ in range(repeat):
        for runs, flag in ((pipelined, True), (serial, False)):
            run = await fetch_headers(server, mailbox, pipelined=flag, heartbeat=False)
            with_beat = await fetch_headers(server, mailbox, pipelined=flag, heartbeat=True)
            run.stall, run.callback = with_beat.stall, with_beat.callback
            runs.append(run)
    return median_run(pipelined), median_run(serial)


def report(
    server: BenchServer, results: list[SizeResult], headers: tuple[Run, Run], repeat: int
) -> str:
    """The markdown text: figures, ratios, targets."""
    header = [
        "messages",
        "client",
        "bytes in",
        "bytes out",
        "commands",
        "round trips",
        "client CPU",
        "wall",
        "loop stall",
        "longest callback",
        "bytes vs poplib",
        "CPU vs poplib",
        "wall vs floor",
    ]
    rows = []
    for result in results:
        base_bytes = result.poplib.bytes_in + result.poplib.bytes_out
        for name, run in (
            ("ours", result.ours),
            ("poplib", result.poplib),
            ("floor", result.floor),
        ):
            rows.append(
                [
                    f"{result.size:,}",
                    name,
                    fmt_bytes(run.bytes_in),
                    fmt_bytes(run.bytes_out),
                    f"{run.commands:.0f}",
                    f"{run.round_trips:.0f}",
                    fmt_ms(run.cpu),
                    fmt_ms(run.wall),
                    fmt_ms(run.stall) + (" (a)" if name == "poplib" else ""),
                    fmt_ms(run.callback),
                    fmt_ratio(run.bytes_in + run.bytes_out, base_bytes),
                    fmt_ratio(run.cpu, result.poplib.cpu),
                    fmt_ratio(run.wall, result.floor.wall),
                ]
            )
    pipelined, serial = headers
    header_rows = [
        [
            name,
            fmt_bytes(run.bytes_in),
            fmt_bytes(run.bytes_out),
            f"{run.commands:.0f}",
            f"{run.round_trips:.0f}",
            fmt_ms(run.cpu),
            fmt_ms(run.wall),
            fmt_ms(run.stall),
            fmt_ms(run.callback),
            fmt_ratio(run.wall, pipelined.wall),
        ]
        for name, run in (("pipelined", pipelined), ("one by one", serial))
    ]
    targets = []
    largest = max(results, key=lambda r: r.size)
    o, p, f = largest.ours, largest.poplib, largest.floor
    byte_share = (o.bytes_in + o.bytes_out) / (p.bytes_in + p.bytes_out)
    targets = [
        (
            f"bytes at {largest.size:,} < 1% of poplib's",
            f"{byte_share:.3%}",
            verdict(byte_share < TARGET_BYTES),
        ),
        (
            f"client CPU at {largest.size:,} < 1/10 of poplib's",
            f"{o.cpu / p.cpu:.3f} ({fmt_ms(o.cpu)} vs {fmt_ms(p.cpu)})",
            verdict(o.cpu < TARGET_CPU * p.cpu),
        ),
        (
            f"wall time at {largest.size:,} within 1.2x of the floor",
            f"{o.wall / f.wall:.3f}x ({fmt_ms(o.wall)} vs {fmt_ms(f.wall)})",
            verdict(o.wall <= TARGET_WALL * f.wall),
        ),
        (
            f"loop stall at {largest.size:,} < 5 ms",
            f"{fmt_ms(o.stall)} (longest callback {fmt_ms(o.callback)})",
            verdict(o.stall < TARGET_STALL),
        ),
        (
            f"headers of {HEADER_FETCH:,}: pipelined >= 5x faster",
            f"{serial.wall / pipelined.wall:.1f}x",
            verdict(serial.wall >= TARGET_PIPELINE * pipelined.wall),
        ),
    ]
    setup = ", ".join(f"{k} {v:.1f} s" for k, v in server.setup_seconds.items())
    return "\n".join(
        [
            "## bench_check: checking an unchanged mailbox (issue #3)",
            "",
            f"{command_line()}; median of {repeat} runs. {environment(server)}.",
            "",
            markdown_table(header, rows),
            "",
            (
                "Bytes are POP3 bytes after TLS (the TLS handshake, alike for all three, is not "
                "counted). Client CPU is the thread CPU time of the client's own thread, wall the "
                "time from connect to closed. Loop stall: the longest a 1 ms heartbeat task waited "
                "beyond its 1 ms (includes OS scheduling delays on a busy machine); longest "
                "callback: the CPU time of the longest single event-loop callback or task step "
                "(what the client itself blocked the loop for). (a) poplib runs in a worker "
                "thread: its columns show how long it kept the event loop from running (GIL)."
            ),
            "",
            f"### Headers (TOP n 0) of {HEADER_FETCH:,} messages, our client",
            "",
            markdown_table(
                [
                    "fetch",
                    "bytes in",
                    "bytes out",
                    "commands",
                    "round trips",
                    "client CPU",
                    "wall",
                    "loop stall",
                    "longest callback",
                    "wall vs pipelined",
                ],
                header_rows,
            ),
            "",
            "### Targets",
            "",
            markdown_table(["target", "measured", "result"], targets),
            "",
            f"Setup (not measured): {setup}.",
        ]
    )


async def run_all(server: BenchServer, sizes: list[int], repeat: int) -> str:
    """Measure every size, then the header fetch; return the report."""
    results = []
    for size in sizes:
        print(f"measuring {size:,} messages ...", flush=True)
        results.append(await measure_size(server, server.mailboxes[size], repeat))
    fetch_box = min(
        (m for m in server.mailboxes.values() if m.count >= HEADER_FETCH), key=lambda m: m.count
    )
    print(f"measuring the headers of {HEADER_FETCH:,} messages ...", flush=True)
    headers = await measure_headers(server, fetch_box, repeat)
    return report(server, results, headers, repeat)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and save the table. Exit 1 if a target failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--no-save", action="store_true", help="do not write results.md")
    parser.add_argument(
        "--ordinary", action="store_true", help="do not run the client as a real-time task"
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if max(sizes) < HEADER_FETCH:
        parser.error(f"the header fetch needs a mailbox of at least {HEADER_FETCH} messages")
    raise_priority()
    started = time.perf_counter()
    with bench_dovecot(sizes) as server:
        if not args.ordinary:
            realtime_client()
        text = asyncio.run(run_all(server, sizes, args.repeat))
    print()
    print(text)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    if not args.no_save:
        write_section("bench_check", text)
    return 1 if "FAIL" in text else 0


if __name__ == "__main__":
    raise SystemExit(main())
