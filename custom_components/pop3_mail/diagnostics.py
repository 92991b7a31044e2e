"""Diagnostics of POP3 Mail: settings, server capabilities and what the last check cost."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from homeassistant.components.diagnostics import REDACTED, async_redact_data
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME

from .const import CONF_ARCHIVE_FOLDER
from .oauth import CONF_TOKEN

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

    from .coordinator import Pop3MailConfigEntry

# The title, the unique id and the mailbox name are all "username@host". A Microsoft
# entry's `token` holds the access, refresh and id tokens (the id token names the person).
TO_REDACT = {CONF_PASSWORD, CONF_USERNAME, "title", "unique_id", "mailbox", CONF_TOKEN}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: Pop3MailConfigEntry
) -> dict[str, Any]:
    """Return diagnostics for a config entry."""
    coordinator = entry.runtime_data
    state = coordinator.state
    on_server = set(state.known_uids)
    baseline = state.archive_baseline
    diagnostics: dict[str, Any] = {
        "entry": {
            "title": entry.title,
            "unique_id": entry.unique_id,
            "data": dict(entry.data),
            "options": dict(entry.options),
        },
        "mailbox": coordinator.mailbox,
        "coordinator": {
            "last_update_success": coordinator.last_update_success,
            # Grows while checks fail (backoff), and never below the server's LOGIN-DELAY.
            "update_interval_s": (
                coordinator.update_interval.total_seconds()
                if coordinator.update_interval is not None
                else None
            ),
        },
        "capabilities": (
            asdict(coordinator.capabilities) if coordinator.capabilities is not None else None
        ),
        "last_check": asdict(coordinator.last_check) if coordinator.last_check else None,
        "state": {
            "initialised": state.initialised,
            "messages": len(state.known_uids),
            "size": state.size,
            "unread": len(state.unread),
            "archived": len(state.archived),
            # Mail on the server before archiving started, which the archive leaves alone.
            "archive_baseline": None if baseline is None else len(baseline),
            "summaries": len(state.summaries),
        },
        # What each watch looks for and counts; never the mail it matched.
        "watches": [
            {
                "name": watch.name,
                "sender": watch.sender,
                "subject": watch.subject,
                "unread": coordinator.watch_status(watch.watch_id).unread,
            }
            for watch in coordinator.watch_index.watches
        ],
    }
    if entry.options.get(CONF_ARCHIVE_FOLDER):
        diagnostics["archive"] = {
            "backlog": len(on_server - state.archived.keys() - (baseline or frozenset())),
            # Due for deletion but kept: the server's size or the file did not match the record.
            "unverified": coordinator.archive_unverified,
        }
    last_check = diagnostics["last_check"]
    username = str(entry.data.get(CONF_USERNAME) or "")
    if last_check and last_check.get("error") and username:
        # The server's own error text may quote the login name ("no such user alice").
        last_check["error"] = last_check["error"].replace(username, REDACTED)
    return async_redact_data(diagnostics, TO_REDACT)
