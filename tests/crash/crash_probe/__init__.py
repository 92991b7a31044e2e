"""Crash-test probe: a test-only custom integration, never part of the product.

The crash test (tests/crash/driver.py) puts it into its temporary Home Assistant
config. It writes one JSON line per `pop3_mail_new_message` event to the file named
by `CRASH_PROBE_FILE`, and fsyncs it before the listener returns: the event bus
calls a callback listener inside `async_fire`, so the record exists before the
integration can go on to save its state, and a SIGKILL one instant later cannot
lose it. Each record carries the run (`CRASH_PROBE_RUN`, counted by the driver)
and the probe's check counter, so the verdict knows which check announced what.

The pop3_mail entry is stored disabled and enabled here, after the listener is in
place: at startup Home Assistant sets up integrations concurrently, and an entry
set up before this listener would announce the mail that arrived while Home
Assistant was down without anyone recording it.

The product's shortest scan interval is 10 s; the probe asks the mailbox's
coordinator for a check every `CRASH_PROBE_INTERVAL` seconds. The integration may
announce in a task that outlives the refresh, so a check starts only once no
announcement came for `QUIET` seconds: checks never overlap, and each announcement
is tagged with the check that found it.

`CRASH_PROBE_KILL_AFTER=n` makes the probe SIGKILL Home Assistant in the n-th
announcing check of this run. `CRASH_PROBE_KILL_WHEN=during` kills inside the
listener of that check's first announcement, so the rest of the check is never
announced in this run; a number of milliseconds kills that long after the check's
latest announcement (the timer restarts with each one): after the last one, while
the integration saves, or between two announcements when they come slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_component import DATA_INSTANCES

if TYPE_CHECKING:
    from homeassistant.helpers.typing import ConfigType

DOMAIN = "crash_probe"
WATCHED = "pop3_mail"
EVENT = "pop3_mail_new_message"
LOADED_TIMEOUT = 120.0
QUIET = 0.5  # seconds without an announcement before the next check starts


class Recorder:
    """Appends JSON lines to the probe's file, durably, from the event loop."""

    def __init__(self, fd: int, run: int, kill_after: int, kill_when: str) -> None:
        """Write to `fd`; kill in the `kill_after`-th announcing check (0: never)."""
        self.fd = fd
        self.run = run
        self.kill_after = kill_after
        self.kill_when = kill_when
        self.check = 0
        self.last_event = 0.0
        self._announcing_checks: set[int] = set()
        self._kill_timer: asyncio.TimerHandle | None = None

    def write(self, kind: str, *, sync: bool = True, **data: Any) -> None:
        """One record, flushed to disk before returning unless `sync` is False."""
        record = {"kind": kind, "run": self.run, "check": self.check, "t": time.monotonic()}
        line = json.dumps({**record, **data}, separators=(",", ":")) + "\n"
        # One write per line in O_APPEND mode: a kill never leaves half a line before another.
        os.write(self.fd, line.encode())
        if sync:
            os.fsync(self.fd)

    @callback
    def announced(self, event: Event[dict[str, Any]]) -> None:
        """Record one announcement (a callback: runs inside `async_fire`)."""
        data = event.data
        self.write(
            "event",
            uid=data.get("uid"),
            message_id=data.get("message_id"),
            entry_id=data.get("entry_id"),
        )
        self.last_event = time.monotonic()
        self._announcing_checks.add(self.check)
        if len(self._announcing_checks) != self.kill_after:
            return
        if self.kill_when == "during":
            self.kill()
            return
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        self._kill_timer = asyncio.get_running_loop().call_later(
            float(self.kill_when) / 1000, self.kill
        )

    def kill(self) -> None:
        """SIGKILL this Home Assistant, recording when."""
        # No fsync: the page cache outlives a killed process, and an fsync here would give
        # the integration's save milliseconds it would not have in a real crash.
        self.write("kill", sync=False)
        os.kill(os.getpid(), signal.SIGKILL)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Listen for announcements, then enable the mailbox and keep it checking."""
    path = os.environ["CRASH_PROBE_FILE"]
    fd = await hass.async_add_executor_job(
        os.open, path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
    )
    recorder = Recorder(
        fd,
        run=int(os.environ["CRASH_PROBE_RUN"]),
        kill_after=int(os.environ.get("CRASH_PROBE_KILL_AFTER", "0")),
        kill_when=os.environ.get("CRASH_PROBE_KILL_WHEN", "0"),
    )
    hass.bus.async_listen(EVENT, recorder.announced)
    recorder.write("start", pid=os.getpid())
    hass.async_create_background_task(
        _drive(hass, recorder, os.environ["CRASH_PROBE_ENTRY"]), "crash_probe checks"
    )
    return True


async def _drive(hass: HomeAssistant, recorder: Recorder, entry_id: str) -> None:
    """Enable the entry, wait until it is loaded, then ask for a check every interval."""
    interval = float(os.environ.get("CRASH_PROBE_INTERVAL", "1.0"))
    await hass.config_entries.async_set_disabled_by(entry_id, None)
    entry = hass.config_entries.async_get_entry(entry_id)
    deadline = time.monotonic() + LOADED_TIMEOUT
    while entry is None or entry.state is not ConfigEntryState.LOADED:
        if time.monotonic() > deadline:
            recorder.write("not_loaded", state=str(entry and entry.state))
            return
        await asyncio.sleep(0.1)
    coordinator = _coordinator(hass, entry_id)
    recorder.write("loaded", coordinator=type(coordinator).__name__)
    while True:
        await asyncio.sleep(interval)
        while time.monotonic() - recorder.last_event < QUIET:
            await asyncio.sleep(0.05)
        recorder.check += 1
        recorder.write("check")
        with contextlib.suppress(Exception):
            # A failed check is the integration's business (it logs it); keep asking.
            await coordinator.async_refresh()


def _coordinator(hass: HomeAssistant, entry_id: str) -> Any:
    """The coordinator behind the entry's `messages` sensor (a CoordinatorEntity)."""
    registry = er.async_get(hass)
    entity_id = next(
        entry.entity_id
        for entry in er.async_entries_for_config_entry(registry, entry_id)
        if entry.domain == "sensor" and entry.translation_key == "messages"
    )
    entity = hass.data[DATA_INSTANCES]["sensor"].get_entity(entity_id)
    return entity.coordinator  # type: ignore[union-attr]
