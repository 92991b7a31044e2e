"""Archive orchestration: when an archive session is due, running it, applying its report.

One `MailboxArchiver` per entry with an archive folder. It decides without
connecting whether a session would do anything, runs it in a session of its own
(before the check, so only mail already announced is archived), turns the report
into a new `MailboxState`, and raises or clears the `archive_failed` repair issue.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import time
from typing import TYPE_CHECKING, Any, Final

from homeassistant.helpers import issue_registry as ir

from .archive_session import run_archive_session
from .const import (
    CONF_DELETE_POLICY,
    CONF_KEEP_DAYS,
    DEFAULT_DELETE_POLICY,
    DEFAULT_KEEP_DAYS,
    DOMAIN,
    ISSUE_ARCHIVE_FAILED,
    LOGGER,
)
from .maildir import MaildirArchive
from .pop3.errors import POP3Error
from .sync import state as mailbox_state
from .sync.retention import has_work

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from homeassistant.config_entries import ConfigEntry
    from homeassistant.core import HomeAssistant

    from .archive_session import ArchiveReport
    from .pop3 import POP3Session
    from .sync.state import MailboxState

# Archived mail whose deletion could not be verified is retried this often on its own (any
# archive session retries it too): a server with inexact LIST sizes must not cost a login a check.
UNVERIFIED_RETRY_SECONDS: Final = 3600


@dataclass(frozen=True, slots=True)
class ArchiveTurn:
    """What an archive session left: the new state, and whether it got to log in.

    A session that could not log in did not use the server's LOGIN-DELAY turn.
    """

    state: MailboxState
    logged_in: bool


def archive_issue_id(entry_id: str) -> str:
    """Return the id of an entry's `archive_failed` repair issue."""
    return f"{ISSUE_ARCHIVE_FAILED}_{entry_id}"


class MailboxArchiver:
    """Saves the new mail of one mailbox to its archive folder and deletes what is due."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        *,
        folder: Path,
        mailbox: str,
        connect: Callable[[], AbstractAsyncContextManager[POP3Session]],
    ) -> None:
        """Archive the mail of `entry` (called `mailbox` in logs and issues) into `folder`.

        `connect` opens a session of the entry: the coordinator's, so every session of
        an entry is opened the same way.
        """
        self._hass = hass
        self._entry = entry
        self._connect = connect
        self._mailbox = mailbox
        self.archive = MaildirArchive(folder, mailbox=mailbox.lower())
        self._session_failed = False
        #: Archived messages the last archive run kept because server or file did not match.
        self.unverified = 0

    @property
    def issue_id(self) -> str:
        """The id of this entry's `archive_failed` repair issue."""
        return archive_issue_id(self._entry.entry_id)

    def has_work(self, state: MailboxState, now: float) -> bool:
        """Tell, without connecting, whether an archive session would do anything."""
        options = self._entry.options
        archive = self.archive
        return state.initialised and has_work(
            state.known_uids,
            state.archived,
            options.get(CONF_DELETE_POLICY, DEFAULT_DELETE_POLICY),
            float(options.get(CONF_KEEP_DAYS, DEFAULT_KEEP_DAYS)),
            now,
            skip=archive.too_large,
            exclude=(state.archive_baseline or frozenset())
            | {
                uid
                for uid, found in archive.unverified.items()
                if now - found < UNVERIFIED_RETRY_SECONDS
            },
        )

    async def async_run(self, state: MailboxState) -> ArchiveTurn | None:
        """Run an archive session if there is work; return the state it leaves.

        None when there was no work. Hold the coordinator's `session_lock`. A POP3
        error here is only logged (the state is returned unchanged): the check that
        follows reports the server's health. A file-system error becomes a repair
        issue, and never stops the announcements.
        """
        now = time.time()
        if not self.has_work(state, now):
            return None
        options = self._entry.options
        report: ArchiveReport | None = None
        logged_in = False
        try:
            async with self._connect() as session:
                logged_in = True
                report = await run_archive_session(
                    session,
                    state,
                    self.archive,
                    policy=options.get(CONF_DELETE_POLICY, DEFAULT_DELETE_POLICY),
                    keep_days=float(options.get(CONF_KEEP_DAYS, DEFAULT_KEEP_DAYS)),
                    now=now,
                )
        except POP3Error as error:
            if not self._session_failed:
                LOGGER.warning("Archiving the mail of %s failed: %s", self._mailbox, error)
            self._session_failed = True
            if report is None:
                return ArchiveTurn(state, logged_in)
            # QUIT failed: the files are durable, but the server deleted nothing.
            report.deleted = []
        else:
            if self._session_failed:
                LOGGER.info("Archiving the mail of %s works again", self._mailbox)
            self._session_failed = False
        self._update_issue(report)
        return ArchiveTurn(self._apply(state, report), logged_in=True)

    def _apply(self, state: MailboxState, report: ArchiveReport) -> MailboxState:
        """Return `state` with the report's records added and its deletions forgotten."""
        self.unverified = len(report.unverified)
        if report.archived:
            state = replace(state, archived={**state.archived, **report.archived})
        if report.deleted:
            freed = sum(state.archived[uid].size for uid in report.deleted)
            state = mailbox_state.forget(state, report.deleted, freed_bytes=freed)
        return state

    def _update_issue(self, report: ArchiveReport) -> None:
        if report.error is None:
            ir.async_delete_issue(self._hass, DOMAIN, self.issue_id)
            return
        LOGGER.debug("Archiving the mail of %s stopped: %s", self._mailbox, report.error)
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            self.issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_ARCHIVE_FAILED,
            translation_placeholders={
                "mailbox": self._mailbox,
                "folder": str(self.archive.folder),
                "error": report.error.detail,
            },
        )
