"""Issue 9: the worst loop stall and peak memory of one hostile input, now and before.

Each case of the hostile corpus runs in a child process of its own, once against this
tree and once against the code before the issue-9 changes (commit 650941c, checked out
in a temporary git worktree unless `--before PATH` names one), with a time cap per
case: a child still running at the cap is killed and reported as "> cap".

Cases (the issue's sizes by default; `--scale` shrinks them):

- `bare_lf_top`: one TOP answer of 60 MB of bare LF, read by the client over a socket;
- `stat_1e8`: a check whose STAT says ``+OK 100000000 10`` (planner and client, socket);
- `base64_junk`: `full_message` (what `fetch_message` returns) of a 10 MB base64 part
  full of non-base64 bytes;
- `unclosed_html`: `full_message` of a 3.8 MB HTML part that opens a tag and never
  closes it;
- `headers_300k`: `event_data` (parse, then `fit_event` to 30,000 bytes) of 300,000
  header lines.

Figures per run: the longest the event loop's thread was held by one callback (CPU
time between 1 ms ticks, as tests/pop3/test_trust.py measures it: the OS giving the
core to another process does not count), the seconds the case took, and the peak
resident memory above what the process held once the input was built. Pure functions
(`full_message`, `event_data`) are run on the loop here, so their stall is their whole
CPU time: before the changes they ran there (`fit_event` in the announcer) or, through
`fetch_message`, held a worker thread and the memory; now the integration runs them in
the executor, so the loop figure is what they would cost if they were not.

    .venv/bin/python -m benchmarks.bench_hostile [--scale 1.0] [--cap 20] [--no-before]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from pathlib import Path
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEFORE_COMMIT = "650941c"
CASES = ("bare_lf_top", "stat_1e8", "base64_junk", "unclosed_html", "headers_300k")
MIB = 2**20
#: Peak memory a child may reach before it is stopped (the old code reached 6 GB).
MEMORY_CAP = 8 * 2**30
LOGIN = [b"+OK\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n", b"+OK\r\n", b"+OK\r\n"]


# The child: one case against one tree.


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def _serve(answers: list[bytes]) -> tuple[asyncio.Server, int]:
    """A server on 127.0.0.1: a greeting, then the next answer for each line received."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+OK hostile\r\n")
        with contextlib.suppress(ConnectionError):
            for answer in answers:
                if not await reader.readline():
                    break
                writer.write(answer)
                await writer.drain()
            while await reader.readline():
                writer.write(b"+OK\r\n")
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _longest_hold(coro: Any) -> tuple[float, str]:
    """Run `coro` with a 1 ms ticker; the longest CPU hold of the loop thread and the result."""
    worst = 0.0
    done = False

    async def tick() -> None:
        nonlocal worst
        last = time.thread_time()
        while not done:
            await asyncio.sleep(0.001)
            now = time.thread_time()
            worst = max(worst, now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.005)
    try:
        outcome = "ok"
        await coro
    except Exception as err:  # whatever it raised is the outcome reported
        outcome = type(err).__name__
    finally:
        done = True
        await ticker
    return worst, outcome


def _mime(content_type: str, encoding: str, body: bytes) -> bytes:
    return (
        b"From: a@example.com\r\nSubject: hostile\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        + f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n".encode()
        + body
        + b"\r\n--b--\r\n"
    )


def _input(case: str, scale: float) -> Any:
    match case:
        case "bare_lf_top":
            return b"\n" * int(60_000_000 * scale)
        case "stat_1e8":
            return max(2, int(100_000_000 * scale))
        case "base64_junk":
            return _mime("application/octet-stream", "base64", b"!" * int(10_000_000 * scale))
        case "unclosed_html":
            html = b"<html><body><p>hello</p><a " + b"x" * int(3_800_000 * scale)
            return _mime("text/html; charset=utf-8", "8bit", html)
        case _:
            return b"".join(b"X-H%d: v\r\n" % n for n in range(int(300_000 * scale))) + b"\r\n"


async def _socket_case(case: str, data: Any) -> tuple[float, str]:
    from custom_components.pop3_mail.pop3 import Security, connect  # noqa: PLC0415
    from custom_components.pop3_mail.sync import state as mailbox_state  # noqa: PLC0415

    if case == "bare_lf_top":
        answers = [*LOGIN, b"+OK\r\n" + data + b".\r\n"]
    else:
        answers = [*LOGIN, b"+OK %d 10\r\n" % data, b"+OK 1 u1\r\n"]
    server, port = await _serve(answers)
    del answers

    async def run() -> None:
        async with connect(
            "127.0.0.1",
            port,
            security=Security.NONE,
            username="alice",
            password="secret",  # noqa: S106 - the test server takes any
            command_timeout=600,
        ) as session:
            if case == "bare_lf_top":
                await session.top(1, 0)
                return
            state = mailbox_state.MailboxState(initialised=True, known_uids=("u1",))
            checker = mailbox_state.new_check(state, top_lines=0)
            requests = checker.first_requests()
            whole = session.max_response_bytes if hasattr(session, "max_response_bytes") else 0
            while requests:
                # As the coordinator drives it: rounds of TOPs under the check's answer cap.
                if (limit := getattr(checker, "answer_limit", None)) is not None:
                    session.max_response_bytes = limit or whole
                requests = checker.feed(await session.pipeline(requests))
            checker.outcome()

    try:
        return await _longest_hold(run())
    finally:
        server.close()


async def _function_case(case: str, data: bytes) -> tuple[float, str]:
    from custom_components.pop3_mail.sync import message  # noqa: PLC0415

    async def run() -> None:
        if case == "headers_300k":
            message.event_data(data, uid="u1", size=len(data), text_length=0)
        else:
            message.full_message(data)

    return await _longest_hold(run())


def child(case: str, scale: float) -> None:
    """Run `case` against the tree first on sys.path; print one JSON line."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    # Imported before the clock starts: the figures are the case's, not the imports'.
    import custom_components.pop3_mail.pop3  # noqa: PLC0415
    import custom_components.pop3_mail.sync.message  # noqa: PLC0415
    import custom_components.pop3_mail.sync.state  # noqa: F401, PLC0415

    data = _input(case, scale)
    before = _rss()
    started = time.perf_counter()
    if case in {"bare_lf_top", "stat_1e8"}:
        stall, outcome = asyncio.run(_socket_case(case, data))
    else:
        stall, outcome = asyncio.run(_function_case(case, data))
    seconds = time.perf_counter() - started
    peak = max(0, _max_rss() - before)
    print(json.dumps({"stall": stall, "seconds": seconds, "peak": peak, "outcome": outcome}))


# The parent: every case against both trees, side by side.


def run_case(tree: Path, case: str, scale: float, cap: float) -> dict[str, Any] | None:
    """One child run; None when it was cut at the cap."""
    try:
        result = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", case, "--scale", str(scale)],
            cwd=tree,
            capture_output=True,
            text=True,
            timeout=cap,
            check=False,
            env={**os.environ, "PYTHONPATH": str(tree)},
        )
    except subprocess.TimeoutExpired:
        return None
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        # MemoryError at the cap, or a crash: reported as what it is.
        tail = (result.stderr.strip().splitlines() or ["?"])[-1]
        return {"stall": None, "seconds": None, "peak": None, "outcome": tail[:60]}
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


def _fmt(run: dict[str, Any] | None, key: str, cap: float) -> str:
    if run is None:
        return "cut" if key == "peak" else f"> {cap:g} s (cut)"
    value = run[key]
    if value is None:
        return "-"
    if key == "peak":
        return f"{value / MIB:,.0f} MiB"
    return f"{value * 1000:,.1f} ms" if key == "stall" else f"{value:,.2f} s"


def _ratio(now: dict[str, Any] | None, before: dict[str, Any] | None, key: str, cap: float) -> str:
    if now is None or now[key] is None:
        return "-"
    if before is None:
        # Cut at the cap: the old figure is at least the cap (for the stall, in seconds).
        return f"< {max(now[key], 1e-4) / cap:.4f}x" if key != "peak" else "-"
    if before[key] is None or not before[key]:
        return "-"
    return f"{now[key] / before[key]:.4f}x"


def main() -> int:
    """Measure every case now and before; print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=CASES)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--cap", type=float, default=20.0, help="seconds per case and tree")
    parser.add_argument("--before", type=Path, help="a checkout of the code before (650941c)")
    parser.add_argument("--no-before", action="store_true", help="measure this tree only")
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, os.getcwd())
        child(args.child, args.scale)
        return 0

    with contextlib.ExitStack() as stack:
        before_tree: Path | None = args.before
        if before_tree is None and not args.no_before:
            before_tree = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "before"
            git = ["git", "-C", str(ROOT)]
            subprocess.run(
                [*git, "worktree", "add", "--detach", str(before_tree), BEFORE_COMMIT],
                check=True,
                capture_output=True,
            )
            stack.callback(
                subprocess.run,
                [*git, "worktree", "remove", "--force", str(before_tree)],
                check=False,
                capture_output=True,
            )
        print(f"Hostile corpus at scale {args.scale:g}, cap {args.cap:g} s per case and tree")
        print()
        print(
            "| case | stall now | stall before | ratio | time now | time before "
            "| peak now | peak before | outcome now / before |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for case in CASES:
            now = run_case(ROOT, case, args.scale, args.cap)
            before = run_case(before_tree, case, args.scale, args.cap) if before_tree else None
            outcomes = (
                " / ".join("cut" if run is None else run["outcome"] for run in (now, before))
                if before_tree
                else ("cut" if now is None else now["outcome"])
            )
            print(
                f"| {case} | {_fmt(now, 'stall', args.cap)} | "
                f"{_fmt(before, 'stall', args.cap) if before_tree else 'n/a'} | "
                f"{_ratio(now, before, 'stall', args.cap) if before_tree else 'n/a'} | "
                f"{_fmt(now, 'seconds', args.cap)} | "
                f"{_fmt(before, 'seconds', args.cap) if before_tree else 'n/a'} | "
                f"{_fmt(now, 'peak', args.cap)} | "
                f"{_fmt(before, 'peak', args.cap) if before_tree else 'n/a'} | {outcomes} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
