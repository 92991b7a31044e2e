"""Helpers for POP3 Mail: turning POP3 client errors into translated Home Assistant errors."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from homeassistant.exceptions import HomeAssistantError

from .const import DOMAIN
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

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from homeassistant.core import HomeAssistant

    from .coordinator import Pop3MailConfigEntry

# Most specific first: the first class an error is an instance of decides its translation key.
# Keys without the `action_` prefix are shared with the coordinator's errors; the others
# would say "the check" where an action failed.
_TRANSLATION_KEYS: tuple[tuple[type[POP3Error], str], ...] = (
    (POP3PlaintextRefusedError, "plaintext_refused"),
    (POP3InUseError, "action_mailbox_in_use"),
    (POP3LoginDelayError, "action_login_delay"),
    (POP3TempError, "action_server_busy"),
    (POP3ResponseError, "action_server_error"),
    (POP3TimeoutError, "timeout"),
    (POP3TLSError, "tls_error"),
    (POP3ConnectionError, "cannot_connect"),
    (POP3STLSUnavailableError, "starttls_unavailable"),
    (POP3ProtocolError, "protocol_error"),
)


def translation_key_for(error: POP3Error) -> str:
    """Return the `exceptions` translation key that explains `error` to a person."""
    for error_type, key in _TRANSLATION_KEYS:
        if isinstance(error, error_type):
            return key
    return "action_unknown_error"


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
