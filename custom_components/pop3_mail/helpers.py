"""Helpers for POP3 Mail actions: POP3 client errors become translated Home Assistant errors."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from .errors import action_error, error_keys
from .pop3.errors import POP3AuthError, POP3Error

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from homeassistant.core import HomeAssistant

    from .coordinator import Pop3MailConfigEntry


def translation_key_for(error: POP3Error) -> str:
    """Return the `exceptions` translation key that explains `error` to a person."""
    return error_keys(error).action


@asynccontextmanager
async def pop3_error_handler(
    hass: HomeAssistant, entry: Pop3MailConfigEntry
) -> AsyncIterator[None]:
    """Turn POP3 client errors raised in the block into translated `HomeAssistantError`s.

    Rejected credentials also start the reauthentication flow, as a failed check would.
    """
    try:
        yield
    except POP3Error as error:
        if isinstance(error, POP3AuthError):
            entry.async_start_reauth(hass)
        raise action_error(error, entry.title) from error
