"""What each POP3 client error means to a person: one table for checks, actions and forms.

A check that fails raises the `check` key (an `exceptions` translation), an action the
`action` key (the same text, or an `action_` variant where the text names the check),
and the config flow shows the `form` key (an `errors` translation of the contract).
"""

from __future__ import annotations

from typing import NamedTuple

from homeassistant.exceptions import ConfigEntryAuthFailed, HomeAssistantError
from homeassistant.helpers.update_coordinator import UpdateFailed

from .const import DOMAIN
from .oauth import TokenRejectedError, TokenUnavailableError
from .pop3.errors import (
    POP3AnswerTooLargeError,
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


class ErrorKeys(NamedTuple):
    """The translation keys of one kind of client error, per place it is shown."""

    check: str
    action: str
    form: str


# First match wins: subclasses before their base classes.
ERROR_KEYS: tuple[tuple[type[POP3Error], ErrorKeys], ...] = (
    # Microsoft's token endpoint, before any connection (see oauth.py).
    (TokenRejectedError, ErrorKeys("sign_in_rejected", "sign_in_rejected", "invalid_auth")),
    (
        TokenUnavailableError,
        ErrorKeys("sign_in_unavailable", "sign_in_unavailable", "cannot_connect"),
    ),
    (POP3AuthError, ErrorKeys("auth_failed", "auth_failed", "invalid_auth")),
    (
        POP3PlaintextRefusedError,
        ErrorKeys("plaintext_refused", "plaintext_refused", "plaintext_refused"),
    ),
    (POP3InUseError, ErrorKeys("mailbox_in_use", "action_mailbox_in_use", "cannot_connect")),
    (POP3LoginDelayError, ErrorKeys("login_delay", "action_login_delay", "cannot_connect")),
    (POP3TempError, ErrorKeys("server_busy", "action_server_busy", "cannot_connect")),
    (POP3ResponseError, ErrorKeys("server_error", "action_server_error", "cannot_connect")),
    (
        POP3STLSUnavailableError,
        ErrorKeys("starttls_unavailable", "starttls_unavailable", "starttls_unavailable"),
    ),
    (POP3TLSError, ErrorKeys("tls_error", "tls_error", "ssl_error")),
    (POP3TimeoutError, ErrorKeys("timeout", "timeout", "timeout")),
    (POP3ConnectionError, ErrorKeys("cannot_connect", "cannot_connect", "cannot_connect")),
    (POP3AnswerTooLargeError, ErrorKeys("answer_too_large", "protocol_error", "cannot_connect")),
    (POP3ProtocolError, ErrorKeys("protocol_error", "protocol_error", "cannot_connect")),
)
UNKNOWN_ERROR_KEYS = ErrorKeys("unknown_error", "action_unknown_error", "cannot_connect")


def error_keys(error: POP3Error) -> ErrorKeys:
    """Return the translation keys that explain `error`."""
    for kind, keys in ERROR_KEYS:
        if isinstance(error, kind):
            return keys
    return UNKNOWN_ERROR_KEYS


def update_error(error: POP3Error, mailbox: str) -> ConfigEntryAuthFailed | UpdateFailed:
    """Return the exception that tells Home Assistant why a check of `mailbox` failed.

    Only rejected credentials start reauthentication; everything else makes the
    entities unavailable until a later check succeeds.
    """
    key = error_keys(error).check
    placeholders = {"mailbox": mailbox, "error": str(error)}
    if isinstance(error, POP3AuthError):
        return ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
        )
    return UpdateFailed(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


def action_error(error: POP3Error, mailbox: str) -> HomeAssistantError:
    """Return the translated error an action raises when the server failed it."""
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key=error_keys(error).action,
        translation_placeholders={"mailbox": mailbox, "error": str(error)},
    )
