"""The watches of one mailbox, which unread messages each one matches, and its last message.

The coordinator keeps one `WatchIndex`; matching many messages is CPU work, so it
runs in the executor (at setup over every unread message, after a check over the
new ones), and the entities count from the matches it keeps.

Each watch's last message lives in the state (`MailboxState.watch_last`), so it
outlives the reading of that message; `settle` keeps it right after every change
that adds mail or removes mail from the server (see its docstring).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .const import CONF_WATCH_NAME, CONF_WATCH_SENDER, CONF_WATCH_SUBJECT, SUBENTRY_WATCH
from .sync.state import LastMessage, MailboxState, set_watch_last
from .sync.watches import (
    MessageSummary,
    Watch,
    WatchStatus,
    index_matches,
    matching_ids,
    summary_of,
    watch_statuses,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from homeassistant.config_entries import ConfigEntry
    from homeassistant.core import HomeAssistant


def watches_of(entry: ConfigEntry[Any]) -> tuple[Watch, ...]:
    """Return the watches of `entry`: its `watch` subentries, in the order they were added."""
    return tuple(
        Watch(
            watch_id=subentry.subentry_id,
            name=subentry.data.get(CONF_WATCH_NAME) or subentry.title,
            sender=subentry.data.get(CONF_WATCH_SENDER) or "",
            subject=subentry.data.get(CONF_WATCH_SUBJECT) or "",
        )
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_WATCH
    )


def summarise(
    announcements: list[dict[str, Any]], watches: tuple[Watch, ...]
) -> tuple[dict[str, MessageSummary], dict[str, tuple[str, ...]]]:
    """Return the summary of each new message and the watches it matches (executor work)."""
    summaries = {data["uid"]: summary_of(data) for data in announcements}
    return summaries, index_matches(watches, summaries)


class WatchIndex:
    """The watches of a mailbox, the watches each unread message matches, and their counts.

    Subentry changes reload the entry, so the watches are fixed for an index's lifetime.
    """

    def __init__(self, watches: tuple[Watch, ...]) -> None:
        """Index nothing yet."""
        self.watches = watches
        self._matches: dict[str, tuple[str, ...]] = {}
        # The statuses of the last summaries counted: states are immutable, so the
        # same mapping object means the same counts.
        self._counted: Mapping[str, MessageSummary] | None = None
        self._statuses: dict[str, WatchStatus] = {}

    async def async_index(
        self, hass: HomeAssistant, summaries: Mapping[str, MessageSummary]
    ) -> None:
        """Match every summary (a loaded state's) in the executor."""
        if self.watches and summaries:
            self._matches = await hass.async_add_executor_job(
                index_matches, self.watches, summaries
            )

    async def async_summarise(
        self, hass: HomeAssistant, announcements: list[dict[str, Any]]
    ) -> dict[str, MessageSummary]:
        """Return the summaries of a check's new mail, matched in the executor."""
        if not announcements:
            return {}
        summaries, matches = await hass.async_add_executor_job(
            summarise, announcements, self.watches
        )
        self._matches.update(matches)
        return summaries

    def watch_ids(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        """The ids of the watches a new message (its event data) matches."""
        if (ids := self._matches.get(data["uid"])) is not None:
            return ids
        return matching_ids(self.watches, summary_of(data))

    def status(self, watch_id: str, summaries: Mapping[str, MessageSummary]) -> WatchStatus:
        """What watch `watch_id` shows for these unread summaries: a count and the newest."""
        if self._counted is not summaries:
            if len(self._matches) > 2 * len(summaries) + 100:
                # Read and deleted mail leaves the cache here, not on every change.
                self._matches = {uid: ids for uid, ids in self._matches.items() if uid in summaries}
            self._statuses = watch_statuses(self.watches, summaries, self._matches)
            self._counted = summaries
        return self._statuses.get(watch_id, WatchStatus())

    def settle(
        self, state: MailboxState, new: Mapping[str, MessageSummary] | None = None
    ) -> MailboxState:
        """`state` with each watch's last message right; the same state when nothing changes.

        The newest of the `new` messages (a check's, in arrival order) a watch matches
        becomes its last message. A watch without one (added after its mail arrived, or
        whose last message left the server) takes its newest unread match. Run after
        every change that adds or removes mail, never on a read: then every watch with
        an unread match has an entry before the read, and reading leaves it alone.
        """
        lasts: dict[str, LastMessage] = {}
        if new:
            # Only the new mail the state kept as unread: baseline mail is not "arriving".
            arrived = {uid: summary for uid, summary in new.items() if uid in state.summaries}
            statuses = watch_statuses(self.watches, arrived, self._matches)
            for watch in self.watches:
                status = statuses[watch.watch_id]
                if status.last is not None and status.last_uid is not None:
                    lasts[watch.key] = _last_message(status.last_uid, status.last)
        for watch in self.watches:
            if watch.key in lasts or watch.key in state.watch_last:
                continue
            status = self.status(watch.watch_id, state.summaries)
            if status.last is not None and status.last_uid is not None:
                lasts[watch.key] = _last_message(status.last_uid, status.last)
        return set_watch_last(state, lasts, watch_ids=(watch.key for watch in self.watches))


def _last_message(uid: str, summary: MessageSummary) -> LastMessage:
    return LastMessage(uid=uid, sender=summary.sender, subject=summary.subject, date=summary.date)
