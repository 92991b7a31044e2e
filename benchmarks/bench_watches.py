"""Issue #11: what the unread summaries of watches cost at 10,000 unread messages.

The state keeps a summary (sender, display name, subject, date) of every unread
message, so a watch added later counts mail that arrived before it. This measures,
for a mailbox of `--size` unread messages (plus 1,000 read ones) and 5 watches,
against the same state without summaries:

- memory: tracemalloc of the loaded state;
- state size: the JSON the `Store` writes;
- load (`from_dict`: the coordinator runs it in the executor, because building
  10,000 summaries can take longer than 20 ms on a busy machine) and save (`to_dict`
  plus the Store's orjson encoding, in the loop on Home Assistant 2026.10);
- the watch work: matching every summary against the watches (`index_matches`, which
  the coordinator runs in the executor at setup and for each check's new mail), and
  counting from those matches (`watch_statuses`, in the loop after every change);
- the state changes of an action in the loop: mark one message read, forget one.

Limit: nothing that runs in the event loop takes 20 ms or more. Pure CPU work, no
server: each figure is the median CPU time of this thread over `--repeat` runs (on a
busy 2-CPU machine, wall time mostly measures the other processes).

    .venv/bin/python -m benchmarks.bench_watches [--size 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import gc
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

import orjson

from benchmarks.bench_state import serialise
from benchmarks.common import (
    command_line,
    environment,
    fmt_bytes,
    fmt_ms,
    markdown_table,
    median,
    verdict,
    write_section,
)
from custom_components.pop3_mail.sync import state as mailbox_state
from custom_components.pop3_mail.sync.state import MailboxState
from custom_components.pop3_mail.sync.watches import (
    MessageSummary,
    Watch,
    index_matches,
    summary_of,
    watch_statuses,
)

if TYPE_CHECKING:
    from collections.abc import Callable

#: The event loop must never be blocked this long.
LOOP_LIMIT = 0.020
READ = 1_000

WATCHES = (
    Watch("w1", "Alarm", sender="alarma"),
    Watch("w2", "Facturas", subject="factura"),
    Watch("w3", "Bank statements", sender="mybank", subject="statement"),
    Watch("w4", "School", sender="colegio"),
    Watch("w5", "Shipping", subject="envío"),
)
SENDERS = (
    ("Alarma Casa", "noreply@panel-alarma.example"),
    ("Proveedor Energía SL", "facturacion@proveedor-energia.example"),
    ("My Bank", "alerts@mybank.example"),
    ("Colegio San José", "secretaria@colegio.example"),
    ("Tienda Online", "pedidos@tienda.example"),
    ("Ana García", "ana.garcia@correo.example"),
)
SUBJECTS = (
    "Factura nº {n} de su suministro eléctrico",
    "Your monthly statement is ready ({n})",
    "Alarma: apertura de puerta, zona {n}",
    "Su pedido {n} ha salido: envío en camino",
    "Re: reunión del jueves, acta {n}",
    "Newsletter {n}: las novedades de esta semana",
)


def make_state(size: int, *, summaries: bool) -> MailboxState:
    """A mailbox of `READ` read and `size` unread messages, with or without their summaries."""
    read = tuple(f"R{n:08d}.{n * 7919:x}" for n in range(READ))
    unread = tuple(f"U{n:08d}.{n * 104_729:x}" for n in range(size))
    kept: dict[str, MessageSummary] = {}
    if summaries:
        for n, uid in enumerate(unread):
            name, address = SENDERS[n % len(SENDERS)]
            kept[uid] = summary_of(
                {
                    "sender": address,
                    "sender_name": name,
                    "subject": SUBJECTS[n % len(SUBJECTS)].format(n=n),
                    "date": f"2026-11-{n % 28 + 1:02d}T10:{n % 60:02d}:00+01:00",
                }
            )
    return MailboxState(
        known_uids=read + unread,
        size=(READ + size) * 5_000,
        unread=frozenset(unread),
        initialised=True,
        summaries=kept,
    )


def timed(work: Callable[[], Any], repeat: int) -> float:
    """Median CPU time of `work`, with the garbage collector as in a running process."""
    times = []
    for _ in range(repeat):
        started = time.thread_time()
        work()
        times.append(time.thread_time() - started)
    return median(times)


def memory_of(stored: dict[str, Any]) -> int:
    """Bytes the state loaded from `stored` holds (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        state = mailbox_state.from_dict(stored)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del state
    return held


def measure(size: int, repeat: int) -> tuple[list[list[str]], list[bool]]:
    """The rows of the table and whether each loop figure is within the limit."""
    rows: list[list[str]] = []
    within: list[bool] = []
    figures: dict[bool, dict[str, float]] = {}
    for summaries in (False, True):
        state = make_state(size, summaries=summaries)
        stored = orjson.loads(orjson.dumps(mailbox_state.to_dict(state)))
        blob = serialise({"version": 1, "key": "pop3_mail.entry", "data": stored})
        figures[summaries] = {
            "memory": memory_of(stored),
            "size": len(blob),
            "load": timed(lambda stored=stored: mailbox_state.from_dict(stored), repeat),
            "save": timed(
                lambda state=state: serialise({"data": mailbox_state.to_dict(state)}), repeat
            ),
        }
    without, with_ = figures[False], figures[True]
    rows.extend(
        [
            [
                "state in memory",
                fmt_bytes(without["memory"]),
                fmt_bytes(with_["memory"]),
                fmt_bytes(with_["memory"] - without["memory"]),
                "-",
            ],
            [
                "state on disk (JSON)",
                fmt_bytes(without["size"]),
                fmt_bytes(with_["size"]),
                fmt_bytes(with_["size"] - without["size"]),
                "-",
            ],
        ]
    )
    for key, what, in_loop in (
        ("load", "load (`from_dict`, executor)", False),
        ("save", "save (`to_dict` + encode, loop)", True),
    ):
        ok = with_[key] < LOOP_LIMIT
        if in_loop:
            within.append(ok)
        rows.append(
            [
                what,
                fmt_ms(without[key]),
                fmt_ms(with_[key]),
                fmt_ms(with_[key] - without[key]),
                verdict(ok) if in_loop else "-",
            ]
        )

    state = make_state(size, summaries=True)
    summaries = state.summaries
    index = timed(lambda: index_matches(WATCHES, summaries), repeat)
    rows.append(["match every summary, 5 watches (executor)", "-", fmt_ms(index), "-", "-"])
    matches = index_matches(WATCHES, summaries)
    counts = timed(lambda: watch_statuses(WATCHES, summaries, matches), repeat)
    within.append(counts < LOOP_LIMIT)
    rows.append(
        [
            "count, 5 watches (loop, matches kept)",
            "-",
            fmt_ms(counts),
            "-",
            verdict(counts < LOOP_LIMIT),
        ]
    )
    uncached = timed(lambda: watch_statuses(WATCHES, summaries, {}), repeat)
    rows.append(
        ["count, 5 watches, nothing kept (not done in the loop)", "-", fmt_ms(uncached), "-", "-"]
    )
    last = next(reversed(summaries))
    for what, change in (
        ("mark one read (loop)", lambda: mailbox_state.mark_read(state, last)),
        ("forget one, `delete_message` (loop)", lambda: mailbox_state.forget(state, [last])),
        ("mark all read (loop)", lambda: mailbox_state.mark_read(state, None)),
    ):
        took = timed(change, repeat)
        within.append(took < LOOP_LIMIT)
        rows.append([what, "-", fmt_ms(took), "-", verdict(took < LOOP_LIMIT)])
    # The state the coordinator counts from after a change is a new one: no cache of statuses.
    changed = replace(state, summaries=dict(summaries))
    after = timed(lambda: watch_statuses(WATCHES, changed.summaries, matches), repeat)
    within.append(after < LOOP_LIMIT)
    rows.append(
        ["count after a change (loop)", "-", fmt_ms(after), "-", verdict(after < LOOP_LIMIT)]
    )
    return rows, within


def report(size: int, repeat: int, rows: list[list[str]], within: list[bool]) -> str:
    """The markdown text."""
    return "\n".join(
        [
            f"## bench_watches: unread summaries at {size:,} unread messages (issue #11)",
            "",
            f"{command_line()}; median CPU time of {repeat} runs. {environment()}.",
            "",
            f"A mailbox of {READ:,} read and {size:,} unread messages, 5 watches.",
            "",
            markdown_table(
                [
                    "what",
                    "without summaries",
                    "with summaries",
                    "cost of the summaries",
                    "loop < 20 ms",
                ],
                rows,
            ),
            "",
            f"Overall: {verdict(all(within))}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run; print and save the table. Exit 1 if a loop figure reached 20 ms."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-save", action="store_true", help="do not write results.md")
    parser.add_argument("--ordinary", action="store_true", help="accepted, as the others take it")
    args = parser.parse_args(argv)
    rows, within = measure(args.size, args.repeat)
    text = report(args.size, args.repeat, rows, within)
    print(text)
    if not args.no_save:
        write_section("bench_watches", text)
    return 0 if all(within) else 1


if __name__ == "__main__":
    raise SystemExit(main())
