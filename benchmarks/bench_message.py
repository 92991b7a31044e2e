"""Issue 9 item 2: text extraction and event fitting cost what their input costs.

The hostile inputs of the issue, each measured once for time (wall, in this thread;
the coordinator runs them in the executor) and once under tracemalloc for the peak:

- `full_message` of a 10 MB base64 part full of non-base64 bytes (before: 1.8 GB);
- `full_message` of an HTML part that is one unclosed 3.8 MB tag (before: +627 MB);
- `fit_event` of 300,000 headers (before: 6 s) and of one 50 MB header (before: 9.5 s).

    .venv/bin/python -m benchmarks.bench_message [--no-save]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

from benchmarks.common import fmt_bytes, markdown_table, write_section
from custom_components.pop3_mail.sync.message import EVENT_LIMIT, fit_event, full_message

if TYPE_CHECKING:
    from collections.abc import Callable


def cases() -> list[tuple[str, str, Callable[[], Any]]]:
    """(name, the issue's figure, work)."""
    junk = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" + (
        b"\xff!@#$%^&*()" * 1_000_000
    )
    tag = b"Content-Type: text/html\r\n\r\n<p>hi</p><p " + b"a=1 " * 950_000
    headers = {f"X-Header-{i}": "value" for i in range(300_000)}
    huge = {"X-Huge": "y" * 50_000_000}
    return [
        ("full_message, 10 MB of base64 junk", "1.8 GB", lambda: full_message(junk)),
        ("full_message, one unclosed 3.8 MB tag", "+627 MB", lambda: full_message(tag)),
        (
            "fit_event, 300,000 headers",
            "6 s",
            lambda: fit_event({"uid": "a", "text": "", "headers": headers}, EVENT_LIMIT),
        ),
        (
            "fit_event, one 50 MB header",
            "9.5 s",
            lambda: fit_event({"uid": "a", "text": "", "headers": huge}, EVENT_LIMIT),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    """Measure; print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for name, before, work in cases():
        started = time.perf_counter()
        work()
        wall = time.perf_counter() - started
        tracemalloc.start()
        try:
            work()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        rows.append([name, before, f"{wall * 1000:,.0f} ms", fmt_bytes(peak)])
    text = (
        "## bench_message: hostile mail through text extraction and event fitting "
        "(issue 9 item 2)\n\n"
        + markdown_table(["input", "before (issue)", "time", "peak memory"], rows)
        + "\n\nPeak memory includes the input's decoded copies (the parser's string of the "
        "message, the payload). Times are of one run on this machine, in one thread."
    )
    print(text)
    if not args.no_save:
        write_section("bench_message", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
