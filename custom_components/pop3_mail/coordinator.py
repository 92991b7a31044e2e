"""The coordinator of POP3 Mail: checks one mailbox, keeps its state, announces new mail.

One check is one read-only POP3 session (STAT, UIDL, LIST, TOP) driven by the
planner in `sync/check.py`. What it found is applied to the persisted
`MailboxState`, and only when the whole check succeeded are the new messages
handed to the announcer (`announcer.py`), with the watches (config subentries)
each one matches (`watch_index.py`). The archive (`archiver.py`) runs in a session
of its own before the check.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
import time
from typing import TYPE_CHECKING, Any, override

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .announcer import Announcer, MessageListener
from .archiver import MailboxArchiver, archive_issue_id
from .const import (
    CONF_ARCHIVE_FOLDER,
    CONF_SCAN_INTERVAL,
    CONF_TEXT_LENGTH,
    DEFAULT_SCAN_INTERVAL,
    DEFAULT_TEXT_LENGTH,
    DOMAIN,
    LOGGER,
    MAX_BACKOFF,
    MAX_SCAN_INTERVAL,
)
from .errors import update_error
from .models import CheckFigures, MailboxData, mailbox_data
from .oauth import EntryTokens, is_oauth_entry
from .pop3.errors import POP3Error
from .repairs import async_delete_check_too_large, async_report_check
from .session import mailbox_name, open_session
from .store import MailboxStore
from .sync import state as mailbox_state
from .sync.message import event_data, top_lines_for
from .sync.state import MailboxState, StateFormatError
from .watch_index import WatchIndex, watches_of

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from contextlib import AbstractAsyncContextManager

    from .pop3 import Capabilities, POP3Session
    from .sync.check import CheckOutcome, MailboxCheck
    from .sync.watches import WatchStatus

type Pop3MailConfigEntry = ConfigEntry[Pop3MailCoordinator]


def backoff_interval(base: timedelta, failures: int) -> timedelta:
    """Return the time to the next check after `failures` failed checks in a row.

    Doubles with every failure up to `MAX_BACKOFF`, and never drops below `base`.
    """
    if failures <= 0:
        return base
    # Capped shift: 2**16 times any interval is past MAX_BACKOFF, and timedelta must not overflow.
    return max(base, min(base * (1 << min(failures, 16)), MAX_BACKOFF))


def describe_outcome(
    outcome: CheckOutcome, *, text_length: int
) -> tuple[list[dict[str, Any]], mailbox_state.LastMessage | None]:
    """Parse what a check fetched: event data of each new message, and the newest message.

    CPU work over up to a few megabytes of headers: run it in the executor.
    """
    parsed: dict[str, dict[str, Any]] = {
        message.uid: event_data(
            message.raw_top, uid=message.uid, size=message.size, text_length=text_length
        )
        for message in outcome.new
    }
    last: mailbox_state.LastMessage | None = None
    if (newest := outcome.newest) is not None:
        data = parsed.get(newest.uid) or event_data(
            newest.raw_top, uid=newest.uid, size=newest.size, text_length=0
        )
        last = mailbox_state.LastMessage(
            uid=newest.uid, sender=data["sender"], subject=data["subject"], date=data["date"]
        )
    return list(parsed.values()), last


class Pop3MailCoordinator(DataUpdateCoordinator[MailboxData]):
    """Checks one mailbox on a schedule and announces each new message once."""

    config_entry: Pop3MailConfigEntry

    def __init__(self, hass: HomeAssistant, entry: Pop3MailConfigEntry) -> None:
        """Prepare the coordinator of `entry`; nothing is read or connected yet."""
        self.mailbox = mailbox_name(entry.data)
        self._scan_interval = timedelta(
            seconds=entry.options.get(CONF_SCAN_INTERVAL, DEFAULT_SCAN_INTERVAL)
        )
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=self.mailbox,
            update_interval=self._scan_interval,
        )
        #: Held by every POP3 session of this entry: many servers lock the maildrop per session.
        self.session_lock = asyncio.Lock()
        #: The sign-in with Microsoft, made valid before each session; None with a password.
        self.tokens = EntryTokens(hass, entry) if is_oauth_entry(entry.data) else None
        self.last_check: CheckFigures | None = None
        self.capabilities: Capabilities | None = None
        self._state = MailboxState()
        self._store = MailboxStore(hass, entry.entry_id, self._state_to_save)
        self._failures = 0
        self.watch_index = WatchIndex(watches_of(entry))
        self.announcer = Announcer(
            hass,
            entry,
            self.mailbox,
            self._async_save_now,
            watches=self.watch_index.watches,
            watch_ids=self.watch_index.watch_ids,
        )
        self.archiver: MailboxArchiver | None = None
        self._archive_took_turn = False
        if folder := entry.options.get(CONF_ARCHIVE_FOLDER):
            self.archiver = MailboxArchiver(
                hass, entry, folder=Path(folder), mailbox=self.mailbox, connect=self.connect
            )

    @property
    def state(self) -> MailboxState:
        """The mailbox as the last successful check (and our own changes since) left it."""
        return self._state

    @property
    def archive_unverified(self) -> int:
        """Archived messages the last archive run kept because server or file did not match."""
        return self.archiver.unverified if self.archiver is not None else 0

    def connect(self) -> AbstractAsyncContextManager[POP3Session]:
        """Return a POP3 session with this entry's settings; hold `session_lock` around it."""
        return open_session(self.config_entry.data, tokens=self.tokens)

    @callback
    def async_add_message_listener(self, listener: MessageListener) -> CALLBACK_TYPE:
        """Call `listener` with the event data of every new message; returns the remover."""
        return self.announcer.async_add_listener(listener)

    @callback
    def async_add_watch_listener(self, watch_id: str, listener: MessageListener) -> CALLBACK_TYPE:
        """Call `listener` with the event data of every new message watch `watch_id` matches."""
        return self.announcer.async_add_listener(listener, watch_id=watch_id)

    def watch_status(self, watch_id: str) -> WatchStatus:
        """What watch `watch_id` shows now: its unread messages and the newest of them."""
        return self.watch_index.status(watch_id, self._state.summaries)

    @callback
    def async_start_announcing(self) -> None:
        """Announce new mail from now on, starting with what the first check found.

        Setup calls this once the entities exist, so mail that arrived while Home
        Assistant was stopped reaches the event entity and carries the device id.
        """
        self.announcer.async_start()

    @callback
    def async_mark_read(self, uid: str | None) -> None:
        """Mark one message read, or every message when `uid` is None."""
        state = mailbox_state.mark_read(self._state, uid)
        if state is not self._state:
            self.config_entry.async_create_task(
                self.hass, self._store.async_note_read(uid), "pop3_mail journal"
            )
        self._set_state(state)

    @callback
    def async_forget(self, uids: Collection[str], *, freed_bytes: int | None = None) -> None:
        """Take note that we deleted `uids` from the server: counts drop, no events fire.

        `freed_bytes`, the LIST sizes of the deleted messages, keeps the size exact.
        """
        state = mailbox_state.forget(self._state, uids, freed_bytes=freed_bytes)
        self._set_state(self.watch_index.settle(state))

    @override
    async def _async_setup(self) -> None:
        """Load the mailbox state saved by an earlier run."""
        try:
            # The state is read (and its journal replayed) in the executor: building the
            # summaries of 10,000 unread messages takes longer than the loop may be held.
            stored = await self._store.async_load()
        except StateFormatError as error:
            # Starting over means a new baseline: nothing is announced twice, at worst missed.
            LOGGER.warning("Ignoring the saved state of %s: %s", self.mailbox, error)
        else:
            if stored is not None:
                self._state = stored
        await self.watch_index.async_index(self.hass, self._state.summaries)
        settled = self.watch_index.settle(self._state)
        if settled is not self._state:
            self._state = settled
            if settled.initialised:
                self._async_schedule_save()
        # Options changes reload the entry, so this sees the archive folder set or removed.
        self._set_archive_baseline()

    def _set_archive_baseline(self) -> None:
        """Leave the mail already on the server out of an archive that starts now."""
        if self.archiver is None:
            state = mailbox_state.stop_archive(self._state)
        else:
            state = mailbox_state.start_archive(self._state)
        if state is not self._state:
            self._state = state
            if state.initialised:
                self._async_schedule_save()

    @override
    async def _async_update_data(self) -> MailboxData:
        """Check the mailbox; map client errors to Home Assistant's and back off on failure."""
        text_length = int(self.config_entry.options.get(CONF_TEXT_LENGTH, DEFAULT_TEXT_LENGTH))
        try:
            async with self.session_lock:
                if self.archiver is not None and not self._archive_took_turn:
                    # Before the check: every uid it handles was announced by an earlier
                    # check, so no message leaves the server before its event fired.
                    archived = await self._async_archive(self.archiver)
                    if archived and self._login_delay() is not None:
                        # The server would refuse a second login this soon: check next time.
                        self._archive_took_turn = True
                        return mailbox_data(self._state)
                self._archive_took_turn = False
                outcome = await self._async_check(top_lines_for(text_length))
                # Still under the lock: a refresh or an action that starts now must see the
                # state this check leaves, or it could announce the same mail again.
                announcements: list[dict[str, Any]] = []
                last_message: mailbox_state.LastMessage | None = None
                if outcome.new or outcome.newest is not None:
                    announcements, last_message = await self.hass.async_add_executor_job(
                        lambda: describe_outcome(outcome, text_length=text_length)
                    )
                summaries = await self.watch_index.async_summarise(self.hass, announcements)
                self._state = self.watch_index.settle(
                    mailbox_state.apply(
                        self._state, outcome, last_message=last_message, summaries=summaries
                    ),
                    summaries,
                )
        except POP3Error as error:
            self._failures += 1
            self.update_interval = backoff_interval(self._base_interval(), self._failures)
            async_report_check(self.hass, self.config_entry, error)
            raise update_error(error, self.mailbox) from error

        async_report_check(self.hass, self.config_entry, None)
        self._async_schedule_save()
        self._failures = 0
        self.update_interval = self._base_interval()
        if outcome.rebaselined:
            LOGGER.warning(
                "Every known message of %s disappeared at once (the server renumbered its "
                "message ids); taking the %d messages there now as read, without events",
                self.mailbox,
                outcome.count,
            )
        self.announcer.queue(announcements)
        return mailbox_data(self._state)

    async def _async_archive(self, archiver: MailboxArchiver) -> bool:
        """Run an archive session if one is due; return whether it logged in.

        Only a login uses the server's LOGIN-DELAY turn: a session that could not
        connect must not stand in for the check, or a server that is down would
        alternate between a failed check and a "successful" update.
        """
        turn = await archiver.async_run(self._state)
        if turn is None:
            return False
        if turn.state is not self._state:
            self._state = self.watch_index.settle(turn.state)
            self._async_schedule_save()
        return turn.logged_in

    async def _async_check(self, top_lines: int) -> CheckOutcome:
        """Run one read-only check session and record its figures."""
        started = dt_util.utcnow()
        clock = time.monotonic()
        session: POP3Session | None = None
        checker: MailboxCheck | None = None
        try:
            async with self.connect() as session:
                self.capabilities = session.capabilities
                checker = mailbox_state.new_check(self._state, top_lines=top_lines)
                requests = checker.first_requests()
                whole = session.max_response_bytes
                while requests:
                    # Rounds of TOPs are sized for this cap: the check's memory budget holds.
                    session.max_response_bytes = checker.answer_limit or whole
                    results = await session.pipeline(requests)
                    if checker.expects_full_list:
                        # A set difference over every uid of a large mailbox could hold
                        # the event loop past 20 ms; the planner is pure, so a thread is safe.
                        requests = await self.hass.async_add_executor_job(checker.feed, results)
                    else:
                        requests = checker.feed(results)
                outcome = checker.outcome()
        except POP3Error as error:
            partial = checker.partial_outcome() if checker is not None else None
            self._record_check(started, clock, session, partial, str(error))
            if partial is None or not partial.new:
                raise
            # Progress kept: what was fetched completely is announced; the next check
            # finds the rest (the state records only what this outcome covers).
            LOGGER.warning(
                "Checking %s stopped after %d new messages (%d left for the next check): %s",
                self.mailbox,
                len(partial.new),
                partial.deferred,
                error,
            )
            return partial
        self._record_check(started, clock, session, outcome, None)
        return outcome

    def _record_check(
        self,
        started: datetime,
        clock: float,
        session: POP3Session | None,
        outcome: CheckOutcome | None,
        error: str | None,
    ) -> None:
        stats = session.stats if session is not None else None
        self.last_check = CheckFigures(
            started=started,
            duration_s=round(time.monotonic() - clock, 6),
            bytes_in=stats.bytes_in if stats else 0,
            bytes_out=stats.bytes_out if stats else 0,
            commands=stats.commands if stats else 0,
            round_trips=stats.round_trips if stats else 0,
            full_list=outcome.full_list if outcome else False,
            new=len(outcome.new) if outcome else 0,
            removed=len(outcome.removed) if outcome else 0,
            rebaselined=outcome.rebaselined if outcome else False,
            error=error,
        )

    @callback
    @override
    def _async_refresh_finished(self) -> None:
        """Announce the mail a successful check found; the entities are available by now."""
        self.announcer.async_announce()

    def _login_delay(self) -> int | None:
        """The LOGIN-DELAY the server advertised in the last session, in seconds."""
        return self.capabilities.login_delay if self.capabilities else None

    def _base_interval(self) -> timedelta:
        """The scan interval, raised to the server's LOGIN-DELAY when it advertises one."""
        if (delay := self._login_delay()) is None:
            return self._scan_interval
        # Capped: a server advertising an absurd delay must not stop checks (or overflow dates).
        return max(self._scan_interval, timedelta(seconds=min(delay, MAX_SCAN_INTERVAL)))

    @callback
    def _set_state(self, state: MailboxState) -> None:
        """Take a state we changed ourselves (not a check): save it and update the entities."""
        if state == self._state:
            return
        self._state = state
        self._async_schedule_save()
        self.data = mailbox_data(state)
        self.async_update_listeners()

    # Persistence: every `Store` call of the entry is below.

    @callback
    def _async_schedule_save(self) -> None:
        self._store.async_schedule_save()

    @callback
    def _async_save_now(self, uids: Sequence[str]) -> None:
        """Journal the announced `uids` now: they must not be announced again after a crash."""
        self.config_entry.async_create_task(
            self.hass, self._store.async_note_announced(uids), "pop3_mail journal"
        )

    def _state_to_save(self) -> MailboxState:
        state = self._state
        if pending := self.announcer.pending:
            # Mail found but not announced yet (setup did not get that far) is saved as
            # unseen, so the next start announces it instead of taking it as known.
            state = mailbox_state.forget(
                state,
                [message["uid"] for message in pending],
                freed_bytes=sum(message["size"] for message in pending),
            )
        return state

    @override
    async def async_shutdown(self) -> None:
        """Stop checking and write the state now instead of after the save delay."""
        await super().async_shutdown()
        # A folder that still fails is reported again by the next archive run after setup.
        ir.async_delete_issue(self.hass, DOMAIN, archive_issue_id(self.config_entry.entry_id))
        async_delete_check_too_large(self.hass, self.config_entry.entry_id)
        await self._store.async_flush()
