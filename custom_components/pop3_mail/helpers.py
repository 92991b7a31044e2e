"""Helpers for POP3 Mail: turning POP3 client errors into translated Home Assistant errors."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from homeassistant.exceptions import HomeAssistantError

from .const import DOMAIN
from .coordinator import error_key
from .pop3.errors import POP3AuthError, POP3Error

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from homeassistant.core import HomeAssistant

    from .coordinator import Pop3MailConfigEntry

# Keys whose text fits an action as well as a check; the others say "the check", so actions
# have `action_` variants of them.
_SHARED_KEYS: frozenset[str] = frozenset(
    {
        "plaintext_refused",
        "starttls_unavailable",
        "tls_error",
        "timeout",
        "cannot_connect",
        "protocol_error",
    }
)


def translation_key_for(error: POP3Error) -> str:
    """Return the `exceptions` translation key that explains `error` to a person."""
    key = error_key(error)
    return key if key in _SHARED_KEYS else f"action_{key}"


@asynccontextmanager
async def pop3_error_handler(
    hass: HomeAssistant, entry: Pop3MailConfigEntry
) -> AsyncIterator[None]:
    """Turn POP3 client errors raised in the block into translated `HomeAssistantError`s.

    Rejected credentials also start the reauthentication flow, as a failed check would.
    """
    try:
        yield
    except POP3AuthError as error:
        entry.async_start_reauth(hass)
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="auth_failed",
            translation_placeholders={"mailbox": entry.title, "error": str(error)},
        ) from error
    except POP3Error as error:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key=translation_key_for(error),
            translation_placeholders={"mailbox": entry.title, "error": str(error)},
        ) from error
