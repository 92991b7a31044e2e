"""Issue 9 item 8: bytes written to disk for the mailbox state, today's way against ours.

A 100,000-message mailbox checked every minute, a day long, through the real
`MailboxStore` on Home Assistant's `Store` (a headless `HomeAssistant`; the bytes are
those the Store's JSON encoder produces for each write, as they would reach the disk):

- unchanged: no new mail all day;
- new mail: one new message every 10 minutes (144 a day).

"Before" is the behaviour of main before this change, replayed with the same states:
the whole state written after every check (`to_dict` each time).

    .venv/bin/python -m benchmarks.bench_disk [--size 100000] [--no-save]
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta
import tempfile
from typing import Any
from unittest.mock import patch

from homeassistant.core import HomeAssistant
from homeassistant.helpers import json as ha_json
from homeassistant.util import dt as dt_util
import orjson

from benchmarks.common import markdown_table, write_section
from custom_components.pop3_mail import store as store_module
from custom_components.pop3_mail.store import FULL_SAVE_DELAY, MailboxStore
from custom_components.pop3_mail.sync.check import CheckOutcome, NewMessage
from custom_components.pop3_mail.sync.state import MailboxState, apply, to_dict

CHECKS_PER_DAY = 1440


def json_bytes(data: Any) -> int:
    return len(orjson.dumps(data, default=ha_json.json_encoder_default))


async def simulate(
    size: int, every: int | None, checks: int = CHECKS_PER_DAY
) -> tuple[int, int, int, int]:
    """(our bytes, our writes, before bytes, before writes) for one simulated day."""
    with tempfile.TemporaryDirectory() as config_dir:
        hass = HomeAssistant(config_dir)
        written = [0, 0]
        original = store_module.Store.async_save

        async def counting(self: Any, data: Any) -> None:
            written[0] += json_bytes({"version": 2, "key": self.key, "data": data})
            written[1] += 1
            await original(self, data)

        uids = tuple(f"uid-{i:08d}" for i in range(size))
        state = MailboxState(known_uids=uids, size=size * 5000, initialised=True)
        holder = {"state": state}
        before = [0, 0]
        with patch.object(store_module.Store, "async_save", counting):
            await hass.async_start()  # timers and the Store need a running core
            store = MailboxStore(hass, "bench", lambda: holder["state"])
            await store.async_save_now()
            written[:] = [0, 0]
            now = dt_util.utcnow()
            for minute in range(checks):
                new: tuple[NewMessage, ...] = ()
                if every and minute % every == every - 1:
                    uid = f"new-{minute:08d}"
                    new = (NewMessage(uid, len(holder["state"].known_uids) + 1, 5000, b""),)
                current = holder["state"]
                outcome = CheckOutcome(
                    count=len(current.known_uids) + len(new),
                    size=current.size + 5000 * len(new),
                    uids=current.known_uids + tuple(m.uid for m in new),
                    new=new,
                    removed=frozenset(),
                    rebaselined=False,
                    full_list=False,
                    newest=None,
                )
                holder["state"] = apply(current, outcome)
                # Before: the whole state after every check.
                before[0] += json_bytes(
                    {"version": 1, "key": "k", "data": to_dict(holder["state"])}
                )
                before[1] += 1
                if new:
                    await store.async_note_announced([m.uid for m in new])
                store.async_schedule_save()
                now += timedelta(minutes=1)
                with patch("homeassistant.util.dt.utcnow", return_value=now):
                    from pytest_homeassistant_custom_component.common import (  # noqa: PLC0415
                        async_fire_time_changed,
                    )

                    async_fire_time_changed(hass, now)
                await hass.async_block_till_done()
            await store.async_flush()
            await hass.async_stop()
    return written[0], written[1], before[0], before[1]


def main(argv: list[str] | None = None) -> int:
    """Run both days; print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--checks", type=int, default=CHECKS_PER_DAY, help="minutes simulated")
    args = parser.parse_args(argv)
    rows = []
    for name, every in (("unchanged", None), ("1 new message every 10 min", 10)):
        ours, our_writes, before, before_writes = asyncio.run(
            simulate(args.size, every, args.checks)
        )
        new = 0 if every is None else args.checks // every
        per_message = f"{ours / new:,.0f} B" if new else "-"
        before_per = f"{before / new:,.0f} B" if new else "-"
        rows.append(
            [
                name,
                f"{before:,} B ({before_writes} writes)",
                f"{ours:,} B ({our_writes} writes)",
                f"{ours / before:.4f}",
                f"{before_per} / {per_message}",
            ]
        )
    table = markdown_table(
        [
            "day of checks every minute",
            "before",
            "ours",
            "ratio",
            "per new message (before / ours)",
        ],
        rows,
    )
    text = (
        f"## bench_disk: bytes written per day, {args.size:,}-message mailbox (issue 9 item 8)\n\n"
        f"Full state at most once per {FULL_SAVE_DELAY:.0f} s and only when changed; a journal "
        "of the announcements since, written at once.\n\n" + table
    )
    print(text)
    if not args.no_save:
        write_section("bench_disk", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
