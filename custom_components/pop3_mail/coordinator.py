"""The coordinator of POP3 Mail: checks one mailbox, keeps its state, announces new mail.

One check is one read-only POP3 session (STAT, UIDL, LIST, TOP) driven by the
planner in `sync/check.py`. What it found is applied to the persisted
`MailboxState`, and only when the whole check succeeded are the new messages
announced: a `pop3_mail_new_message` bus event and the event entity, once each,
in arrival order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
import time
from typing import TYPE_CHECKING, Any, Final, override

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util
from homeassistant.util.ssl import client_context, client_context_no_verify

from .archive import ArchiveReport, MaildirArchive, run_archive_session
from .const import (
    COMMAND_TIMEOUT,
    CONF_ARCHIVE_FOLDER,
    CONF_DELETE_POLICY,
    CONF_KEEP_DAYS,
    CONF_SCAN_INTERVAL,
    CONF_SECURITY,
    CONF_TEXT_LENGTH,
    CONF_VERIFY_SSL,
    DEFAULT_DELETE_POLICY,
    DEFAULT_KEEP_DAYS,
    DEFAULT_SCAN_INTERVAL,
    DEFAULT_TEXT_LENGTH,
    DEFAULT_VERIFY_SSL,
    DOMAIN,
    EVENT_NEW_MESSAGE,
    ISSUE_ARCHIVE_FAILED,
    LOGGER,
    MAX_BACKOFF,
    MAX_EVENT_BYTES,
    MAX_SCAN_INTERVAL,
    PORT_PLAIN,
    PORT_SSL,
    SESSION_TIMEOUT,
    STORAGE_SAVE_DELAY,
    STORAGE_VERSION,
)
from .pop3 import Capabilities, POP3Session, Security, connect
from .pop3.errors import (
    POP3AuthError,
    POP3ConnectionError,
    POP3Error,
    POP3InUseError,
    POP3LoginDelayError,
    POP3PlaintextRefusedError,
    POP3ProtocolError,
    POP3ResponseError,
    POP3STLSUnavailableError,
    POP3TempError,
    POP3TimeoutError,
    POP3TLSError,
)
from .sync import state as mailbox_state
from .sync.message import event_data, fit_event, top_lines_for
from .sync.retention import has_work
from .sync.state import MailboxState, StateFormatError

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager
    import ssl

    from .sync.check import CheckOutcome

type Pop3MailConfigEntry = ConfigEntry[Pop3MailCoordinator]
type MessageListener = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True, slots=True)
class LastMessage:
    """The newest message on the server, as the `last_message` sensor shows it."""

    uid: str
    sender: str
    subject: str
    date: datetime | None


@dataclass(frozen=True, slots=True)
class MailboxData:
    """What the entities show of a mailbox."""

    count: int
    size: int
    unread: int
    last_message: LastMessage | None


@dataclass(frozen=True, slots=True)
class CheckFigures:
    """What the last check cost and found (for diagnostics and benchmarks).

    The byte and command counts are those of the check's own session; `error` is
    the reason a failed check gave, None when it succeeded.
    """

    started: datetime
    duration_s: float
    bytes_in: int
    bytes_out: int
    commands: int
    round_trips: int
    full_list: bool
    new: int
    removed: int
    rebaselined: bool
    error: str | None


def mailbox_name(data: Mapping[str, Any]) -> str:
    """Return `username@host`: the title of the entry and the name of its device."""
    return f"{data[CONF_USERNAME]}@{data[CONF_HOST]}"


def port_for(data: Mapping[str, Any]) -> int:
    """Return the port to connect to: the one given, else the usual one for the security."""
    if (port := data.get(CONF_PORT)) is not None:
        return int(port)
    return PORT_SSL if data[CONF_SECURITY] == Security.SSL else PORT_PLAIN


def ssl_context_for(verify_ssl: bool) -> ssl.SSLContext:
    """Return the TLS context for a connection.

    Home Assistant's shared contexts are built once at startup, so no certificate
    store is read inside the event loop. Tests against a server with a test CA
    replace this function.
    """
    return client_context() if verify_ssl else client_context_no_verify()


def open_session(data: Mapping[str, Any]) -> AbstractAsyncContextManager[POP3Session]:
    """Return the POP3 session (connected, secured, logged in) for the settings in `data`."""
    security = Security(data[CONF_SECURITY])
    verify_ssl: bool = data.get(CONF_VERIFY_SSL, DEFAULT_VERIFY_SSL)
    return connect(
        data[CONF_HOST],
        port_for(data),
        security=security,
        username=data[CONF_USERNAME],
        password=data[CONF_PASSWORD],
        ssl_context=None if security is Security.NONE else ssl_context_for(verify_ssl),
        verify_ssl=verify_ssl,
        command_timeout=COMMAND_TIMEOUT,
        session_timeout=SESSION_TIMEOUT,
    )


def backoff_interval(base: timedelta, failures: int) -> timedelta:
    """Return the time to the next check after `failures` failed checks in a row.

    Doubles with every failure up to `MAX_BACKOFF`, and never drops below `base`.
    """
    if failures <= 0:
        return base
    # Capped shift: 2**16 times any interval is past MAX_BACKOFF, and timedelta must not overflow.
    return max(base, min(base * (1 << min(failures, 16)), MAX_BACKOFF))


def update_error(error: POP3Error, mailbox: str) -> ConfigEntryAuthFailed | UpdateFailed:
    """Return the exception that tells Home Assistant why a check of `mailbox` failed.

    Only rejected credentials start reauthentication; everything else makes the
    entities unavailable until a later check succeeds.
    """
    placeholders = {"mailbox": mailbox, "error": str(error)}
    if isinstance(error, POP3AuthError):
        return ConfigEntryAuthFailed(
            translation_domain=DOMAIN,
            translation_key="auth_failed",
            translation_placeholders=placeholders,
        )
    return UpdateFailed(
        translation_domain=DOMAIN,
        translation_key=error_key(error),
        translation_placeholders=placeholders,
    )


def error_key(error: POP3Error) -> str:
    """Return the `exceptions` translation key that explains why a check failed.

    Actions use the same keys, with an `action_` prefix where the text names the check
    (see `helpers.translation_key_for`).
    """
    match error:
        case POP3PlaintextRefusedError():
            return "plaintext_refused"
        case POP3InUseError():
            return "mailbox_in_use"
        case POP3LoginDelayError():
            return "login_delay"
        case POP3TempError():
            return "server_busy"
        case POP3ResponseError():
            return "server_error"
        case POP3STLSUnavailableError():
            return "starttls_unavailable"
        case POP3TLSError():
            return "tls_error"
        case POP3TimeoutError():
            return "timeout"
        case POP3ConnectionError():
            return "cannot_connect"
        case POP3ProtocolError():
            return "protocol_error"
    return "unknown_error"


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


def mailbox_data(state: MailboxState) -> MailboxData:
    """Return what the entities show of `state`."""
    last: LastMessage | None = None
    if (stored := state.last_message) is not None:
        last = LastMessage(
            uid=stored.uid,
            sender=stored.sender,
            subject=stored.subject,
            date=dt_util.parse_datetime(stored.date) if stored.date else None,
        )
    return MailboxData(
        count=state.count, size=state.size, unread=len(state.unread), last_message=last
    )


# Archived mail whose deletion could not be verified is retried this often on its own (any
# archive session retries it too): a server with inexact LIST sizes must not cost a login a check.
UNVERIFIED_RETRY_SECONDS: Final = 3600


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
        self.last_check: CheckFigures | None = None
        self.capabilities: Capabilities | None = None
        self._state = MailboxState()
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, storage_key(entry.entry_id)
        )
        self._failures = 0
        self._message_listeners: list[MessageListener] = []
        self._pending: list[dict[str, Any]] = []
        self._announcing = False
        self._archive: MaildirArchive | None = None
        self._archive_session_failed = False
        self._archive_took_turn = False
        #: Archived messages the last archive run kept because server or file did not match.
        self.archive_unverified = 0
        if folder := entry.options.get(CONF_ARCHIVE_FOLDER):
            self._archive = MaildirArchive(Path(folder), mailbox=self.mailbox.lower())

    @property
    def state(self) -> MailboxState:
        """The mailbox as the last successful check (and our own changes since) left it."""
        return self._state

    def connect(self) -> AbstractAsyncContextManager[POP3Session]:
        """Return a POP3 session with this entry's settings; hold `session_lock` around it."""
        return open_session(self.config_entry.data)

    @callback
    def async_add_message_listener(self, listener: MessageListener) -> CALLBACK_TYPE:
        """Call `listener` with the event data of every new message; returns the remover."""
        self._message_listeners.append(listener)
        return lambda: self._message_listeners.remove(listener)

    @callback
    def async_start_announcing(self) -> None:
        """Announce new mail from now on, starting with what the first check found.

        Setup calls this once the entities exist, so mail that arrived while Home
        Assistant was stopped reaches the event entity and carries the device id.
        """
        self._announcing = True
        self._async_announce()

    async def async_mark_read(self, uid: str | None) -> None:
        """Mark one message read, or every message when `uid` is None."""
        self._set_state(mailbox_state.mark_read(self._state, uid))

    async def async_forget(self, uids: Collection[str], *, freed_bytes: int | None = None) -> None:
        """Take note that we deleted `uids` from the server: counts drop, no events fire.

        `freed_bytes`, the LIST sizes of the deleted messages, keeps the size exact.
        """
        self._set_state(mailbox_state.forget(self._state, uids, freed_bytes=freed_bytes))

    @override
    async def _async_setup(self) -> None:
        """Load the mailbox state saved by an earlier run."""
        stored = await self._store.async_load()
        if stored is not None:
            try:
                self._state = mailbox_state.from_dict(stored)
            except StateFormatError as error:
                # Starting over means a new baseline: nothing is announced twice, at worst missed.
                LOGGER.warning("Ignoring the saved state of %s: %s", self.mailbox, error)
        # Options changes reload the entry, so this sees the archive folder set or removed.
        self._set_archive_baseline()

    def _set_archive_baseline(self) -> None:
        """Leave the mail already on the server out of an archive that starts now."""
        if self._archive is None:
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
        options = self.config_entry.options
        text_length = int(options.get(CONF_TEXT_LENGTH, DEFAULT_TEXT_LENGTH))
        try:
            async with self.session_lock:
                if self._archive is not None and not self._archive_took_turn:
                    # Before the check: every uid it handles was announced by an earlier
                    # check, so no message leaves the server before its event fired.
                    archived = await self._async_archive(self._archive)
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
                self._state = mailbox_state.apply(self._state, outcome, last_message=last_message)
        except POP3Error as error:
            self._failures += 1
            self.update_interval = backoff_interval(self._base_interval(), self._failures)
            raise update_error(error, self.mailbox) from error

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
        self._pending.extend(announcements)
        return mailbox_data(self._state)

    async def _async_check(self, top_lines: int) -> CheckOutcome:
        """Run one read-only check session and record its figures."""
        started = dt_util.utcnow()
        clock = time.monotonic()
        session: POP3Session | None = None
        try:
            async with self.connect() as session:
                self.capabilities = session.capabilities
                checker = mailbox_state.new_check(self._state, top_lines=top_lines)
                requests = checker.first_requests()
                while requests:
                    results = await session.pipeline(requests)
                    if checker.expects_full_list:
                        # A set difference over every uid of a large mailbox could hold
                        # the event loop past 20 ms; the planner is pure, so a thread is safe.
                        requests = await self.hass.async_add_executor_job(checker.feed, results)
                    else:
                        requests = checker.feed(results)
                outcome = checker.outcome()
        except POP3Error as error:
            self._record_check(started, clock, session, None, str(error))
            raise
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

    async def _async_archive(self, archive: MaildirArchive) -> bool:
        """Save new mail to the archive folder and delete what the policy says is due.

        Runs in a session of its own; returns whether it logged in. A POP3 error here
        is only logged: the check that follows reports the server's health. A
        file-system error becomes a repair issue, and never stops the announcements.
        """
        options = self.config_entry.options
        policy = options.get(CONF_DELETE_POLICY, DEFAULT_DELETE_POLICY)
        keep_days = float(options.get(CONF_KEEP_DAYS, DEFAULT_KEEP_DAYS))
        now = time.time()
        state = self._state
        if not state.initialised or not has_work(
            state.known_uids,
            state.archived,
            policy,
            keep_days,
            now,
            skip=archive.too_large,
            exclude=(state.archive_baseline or frozenset())
            | {
                uid
                for uid, found in archive.unverified.items()
                if now - found < UNVERIFIED_RETRY_SECONDS
            },
        ):
            return False
        report: ArchiveReport | None = None
        try:
            async with self.connect() as session:
                report = await run_archive_session(
                    session, state, archive, policy=policy, keep_days=keep_days, now=now
                )
        except POP3Error as error:
            if not self._archive_session_failed:
                LOGGER.warning("Archiving the mail of %s failed: %s", self.mailbox, error)
            self._archive_session_failed = True
            if report is None:
                return True
            # QUIT failed: the files are durable, but the server deleted nothing.
            report.deleted = []
        else:
            if self._archive_session_failed:
                LOGGER.info("Archiving the mail of %s works again", self.mailbox)
            self._archive_session_failed = False
        self._apply_archive_report(report, archive)
        return True

    def _apply_archive_report(self, report: ArchiveReport, archive: MaildirArchive) -> None:
        self.archive_unverified = len(report.unverified)
        state = self._state
        if report.archived:
            state = replace(state, archived={**state.archived, **report.archived})
        if report.deleted:
            freed = sum(state.archived[uid].size for uid in report.deleted)
            state = mailbox_state.forget(state, report.deleted, freed_bytes=freed)
        if state is not self._state:
            self._state = state
            self._async_schedule_save()
        issue_id = self._archive_issue_id()
        if report.error is None:
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)
            return
        LOGGER.debug("Archiving the mail of %s stopped: %s", self.mailbox, report.error)
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_ARCHIVE_FAILED,
            translation_placeholders={
                "mailbox": self.mailbox,
                "folder": str(archive.folder),
                "error": report.error.detail,
            },
        )

    @callback
    @override
    def _async_refresh_finished(self) -> None:
        """Announce the mail a successful check found; the entities are available by now."""
        if self._announcing:
            self._async_announce()

    @callback
    def _async_announce(self) -> None:
        """Fire the bus event and the event entity for each pending message, in order."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        entry = self.config_entry
        device_id = next(
            (
                device.id
                for device in dr.async_entries_for_config_entry(
                    dr.async_get(self.hass), entry.entry_id
                )
                if (DOMAIN, entry.entry_id) in device.identifiers
            ),
            None,
        )
        for data in pending:
            message = fit_event(
                {
                    **data,
                    "entry_id": entry.entry_id,
                    "device_id": device_id,
                    "mailbox": self.mailbox,
                },
                MAX_EVENT_BYTES,
            )
            self.hass.bus.async_fire(EVENT_NEW_MESSAGE, message)
            for listener in list(self._message_listeners):
                try:
                    listener(message)
                except Exception:  # noqa: BLE001
                    # One failing listener must not cost the others, or later mail, its event.
                    LOGGER.exception("Error announcing a message of %s", self.mailbox)
        # Announced mail must not be announced again after a crash: write the state now
        # instead of after the usual debounce.
        self.config_entry.async_create_task(
            self.hass, self._store.async_save(self._data_to_save()), "pop3_mail save state"
        )

    def _archive_issue_id(self) -> str:
        return f"{ISSUE_ARCHIVE_FAILED}_{self.config_entry.entry_id}"

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

    @callback
    def _async_schedule_save(self) -> None:
        self._store.async_delay_save(self._data_to_save, STORAGE_SAVE_DELAY)

    def _data_to_save(self) -> dict[str, Any]:
        state = self._state
        if self._pending:
            # Mail found but not announced yet (setup did not get that far) is saved as
            # unseen, so the next start announces it instead of taking it as known.
            state = mailbox_state.forget(
                state,
                [message["uid"] for message in self._pending],
                freed_bytes=sum(message["size"] for message in self._pending),
            )
        return mailbox_state.to_dict(state)

    @override
    async def async_shutdown(self) -> None:
        """Stop checking and write the state now instead of after the save delay."""
        await super().async_shutdown()
        # A folder that still fails is reported again by the next archive run after setup.
        ir.async_delete_issue(self.hass, DOMAIN, self._archive_issue_id())
        if self._state.initialised:
            await self._store.async_save(self._data_to_save())


def storage_key(entry_id: str) -> str:
    """Return the `Store` key of an entry's mailbox state."""
    return f"{DOMAIN}.{entry_id}"
