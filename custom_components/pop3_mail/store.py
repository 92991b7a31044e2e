"""How the state of one mailbox is kept on disk: kind to SD cards, and nothing announced twice.

Two Home Assistant `Store` files per entry:

- the full state (`pop3_mail.<entry_id>`, `sync.state.to_dict`), written at most once
  per `FULL_SAVE_DELAY` and only when the state changed since the last full write.
  An unchanged check writes nothing; a 100,000-message mailbox is ~2.6 MB a write.
- a journal (`pop3_mail.<entry_id>.journal`): what happened since that full write
  that must survive a crash, as a list of operations (`["announced", uid, ...]`,
  `["summaries", rows]` and `["watch_last", {watch_id: row}]` for the watches,
  `["read", uid]`, `["read_all"]`), written at
  once after each announcement or read mark; its size grows with the mail of one
  save delay, not with the mailbox. It is removed when the full state that covers it
  is written, and replayed by `async_load` (announced uids become known and unread,
  with their summaries; the watches' last messages are restored; read marks are applied).
  Each full write bumps a generation number kept beside the state (key `journal`);
  a journal is replayed only onto the full state of its own generation, so one left
  behind by a crash between the two writes (or a late write) is never replayed twice.

Delivery is at least once: the journal is written right after the bus events of a
check fired, so a crash in the instant between the two (one small atomic file write,
a few milliseconds, more on a slow SD card) announces that check's messages again at
the next start, with the same `uid`. A crash costs nothing else: what the full write
had not caught up with is either in the journal or found again by the next check.

Versions: the full state is `Store` version `STORAGE_VERSION`; older files are
migrated (`_async_migrate_func`, `sync.state.upgrade`), never taken as a new
baseline. A file that cannot be read raises `StateFormatError` from `async_load`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, override

from homeassistant.core import CALLBACK_TYPE, HassJob, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.storage import Store

from .const import DOMAIN
from .sync.state import (
    MailboxState,
    StateFormatError,
    from_dict,
    to_dict,
    upgrade,
    watch_last_from_json,
    watch_last_to_json,
)
from .sync.watches import summaries_from_json, summaries_to_json

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

#: `Store` version of the full state: 1 before tombstones (`vanished`), migrated on load.
STORAGE_VERSION: Final = 2
JOURNAL_VERSION: Final = 1
# Key of the generation number in the full state's data (`from_dict` ignores it).
_GENERATION: Final = "journal"
#: Seconds a changed state waits before it is written in full (the journal covers the wait).
FULL_SAVE_DELAY: Final = 900.0


def storage_key(entry_id: str) -> str:
    """The `Store` key of an entry's full mailbox state."""
    return f"{DOMAIN}.{entry_id}"


def journal_key(entry_id: str) -> str:
    """The `Store` key of an entry's journal."""
    return f"{DOMAIN}.{entry_id}.journal"


class _StateStore(Store[dict[str, Any]]):
    """The full state, with its layout migrations."""

    @override
    async def _async_migrate_func(
        self, old_major_version: int, old_minor_version: int, old_data: dict[str, Any]
    ) -> dict[str, Any]:
        # The layout carries its own version too; `upgrade` reads either (or refuses).
        return upgrade(old_data)


def replay(state: MailboxState, operations: Sequence[Any]) -> MailboxState:
    """`state` with the journal's operations applied, in order; bad entries are skipped.

    Announced uids the state does not know are appended to the known ones, unread (with
    their summaries, so the watches count them): the next check finds the size changed,
    takes the full list, and announces none of them.
    """
    known: set[str] | None = None  # built only when needed: 100,000 uids take ~5 ms
    added: list[str] = []
    unread = set(state.unread)
    summaries = dict(state.summaries)
    watch_last = state.watch_last
    for operation in operations:
        match operation:
            case ["announced", *uids]:
                if known is None:
                    known = set(state.known_uids)
                for uid in uids:
                    if isinstance(uid, str) and uid not in known:
                        known.add(uid)
                        added.append(uid)
                        unread.add(uid)
            case ["summaries", list(rows)]:
                found = summaries_from_json(rows, frozenset(unread))
                for uid, summary in (found or {}).items():
                    summaries.setdefault(uid, summary)
            case ["watch_last", dict(rows)]:
                # Each carries every watch's entry at the time: the last one is the newest.
                if (found_last := watch_last_from_json(rows)) is not None:
                    watch_last = found_last
            case ["read", str(uid)]:
                unread.discard(uid)
            case ["read_all"]:
                unread.clear()
    if watch_last is not state.watch_last:
        if known is None:
            known = set(state.known_uids)
        # Only mail on the server keeps an entry, as in `sync/state.py`.
        watch_last = {key: last for key, last in watch_last.items() if last.uid in known}
    if (
        not added
        and unread == state.unread
        and summaries.keys() == state.summaries.keys()
        and watch_last == state.watch_last
    ):
        return state
    return replace(
        state,
        known_uids=state.known_uids + tuple(added),
        unread=frozenset(unread),
        # A summary is kept only while its message is unread (`sync/state.py`).
        summaries={uid: summary for uid, summary in summaries.items() if uid in unread},
        watch_last=watch_last,
    )


def _read(data: dict[str, Any], operations: list[list[str]]) -> tuple[MailboxState, MailboxState]:
    """The state of the full file, and the same with the journal replayed."""
    saved = from_dict(data)
    return saved, replay(saved, operations)


class MailboxStore:
    """The persisted state of one entry: `async_load`, then notes and saves as it changes.

    `state_fn` returns the state to write (the coordinator's, without mail found but not
    announced yet); it is called when a full write happens.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        state_fn: Callable[[], MailboxState] | None = None,
    ) -> None:
        """Prepare the files of `entry_id`; nothing is read yet."""
        self._hass = hass
        self._full = _StateStore(hass, STORAGE_VERSION, storage_key(entry_id))
        self._journal = Store[dict[str, Any]](hass, JOURNAL_VERSION, journal_key(entry_id))
        self._state_fn = state_fn
        # The state the full file holds (None: no full file yet), and its generation.
        self._saved: MailboxState | None = None
        self._generation = 0
        # Operations since the full write, as the journal file holds them.
        self._operations: list[list[Any]] = []
        self._journal_on_disk = False
        self._timer: CALLBACK_TYPE | None = None
        #: How many full and journal writes were made (for benchmarks and tests).
        self.full_writes = 0
        self.journal_writes = 0

    async def async_load(self) -> MailboxState | None:
        """The saved state with the journal replayed; None when nothing was saved yet."""
        data = await self._full.async_load()
        generation = 0 if data is None else data.get(_GENERATION)
        self._generation = generation if type(generation) is int else 0
        journal = await self._journal.async_load()
        if journal is not None:
            self._journal_on_disk = True
            operations = journal.get("operations")
            if journal.get("generation") == self._generation and isinstance(operations, list):
                self._operations = [op for op in operations if isinstance(op, list)]
        if data is None:
            return None
        # In the executor: reading 100,000 uids (and what grows beside them) is CPU work
        # the event loop should not wait for.
        self._saved, state = await self._hass.async_add_executor_job(
            _read, data, list(self._operations)
        )
        return state

    @callback
    def async_schedule_save(self) -> None:
        """Write the full state within `FULL_SAVE_DELAY`, if it changed by then.

        The first state ever (the baseline) is written at once: until it is, a crash
        would cost a new baseline and with it any mail that arrives meanwhile.
        """
        if self._saved is None or not self._saved.initialised:
            self._hass.async_create_task(self.async_save_now(), "pop3_mail save state")
            return
        if self._timer is None:
            # Cancelled on shutdown: the coordinator's shutdown writes with `async_flush`.
            self._timer = async_call_later(
                self._hass,
                FULL_SAVE_DELAY,
                HassJob(self._async_timer, "pop3_mail full save", cancel_on_shutdown=True),
            )

    async def _async_timer(self, _now: Any) -> None:
        self._timer = None
        await self.async_save_now()

    async def async_note_announced(self, uids: Sequence[str]) -> None:
        """Journal that `uids` were announced, now, with their summaries for the watches."""
        if not uids:
            return
        operations: list[list[Any]] = [["announced", *uids]]
        if self._state_fn is not None:
            state = self._state_fn()
            known = state.summaries
            summaries = {uid: known[uid] for uid in uids if uid in known}
            if summaries:
                operations.append(["summaries", summaries_to_json(summaries)])
            operations.extend(self._watch_last_operation(state))
        await self._async_journal(*operations)

    async def async_note_read(self, uid: str | None) -> None:
        """Journal a read mark (`uid` None: every message)."""
        operations: list[list[Any]] = [["read_all"] if uid is None else ["read", uid]]
        if self._state_fn is not None:
            # A watch's last message may not be in the full file yet (a watch added at
            # this start): once its summary is read away, only this entry keeps it.
            operations.extend(self._watch_last_operation(self._state_fn()))
        await self._async_journal(*operations)

    def _watch_last_operation(self, state: MailboxState) -> list[list[Any]]:
        """The journal operation of the watches' last messages, when they differ from the file."""
        if self._saved is not None and state.watch_last == self._saved.watch_last:
            return []
        if self._saved is None and not state.watch_last:
            return []
        return [["watch_last", watch_last_to_json(state.watch_last)]]

    async def _async_journal(self, *operations: list[Any]) -> None:
        self._operations.extend(operations)
        self.async_schedule_save()
        await self._async_write_journal()

    async def _async_write_journal(self) -> None:
        self.journal_writes += 1
        self._journal_on_disk = True
        await self._journal.async_save(
            {"generation": self._generation, "operations": list(self._operations)}
        )

    async def async_save_now(self) -> None:
        """Write the full state if it changed, then drop the journal it covers."""
        if self._state_fn is None:
            return
        state = self._state_fn()
        covered = len(self._operations)
        if not state.initialised:
            return
        if state != self._saved or covered:
            self.full_writes += 1
            self._generation += 1
            await self._full.async_save({**to_dict(state), _GENERATION: self._generation})
            self._saved = state
        del self._operations[:covered]
        if self._operations:
            await self._async_write_journal()
        elif self._journal_on_disk:
            self._journal_on_disk = False
            await self._journal.async_remove()

    async def async_flush(self) -> None:
        """Write what is pending now (on shutdown or unload)."""
        if self._timer is not None:
            self._timer()
            self._timer = None
        await self.async_save_now()

    async def async_remove(self) -> None:
        """Delete both files (the entry was removed)."""
        if self._timer is not None:
            self._timer()
            self._timer = None
        await self._full.async_remove()
        await self._journal.async_remove()


__all__ = [
    "FULL_SAVE_DELAY",
    "STORAGE_VERSION",
    "MailboxStore",
    "StateFormatError",
    "journal_key",
    "replay",
    "storage_key",
]
