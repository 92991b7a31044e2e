"""The POP3 sessions of a mailbox: every one of them is opened by `open_session`.

The check, the archive, the actions and the config flow all log in through
`open_session`, so connection settings, TLS contexts and deadlines (and any step
every login needs) live in one place. A Microsoft mailbox's access token is made
valid here, before each session (see `oauth.py`).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.util.ssl import SSLCipherList, client_context, client_context_no_verify

from .const import (
    COMMAND_TIMEOUT,
    CONF_SECURITY,
    CONF_VERIFY_SSL,
    DEFAULT_VERIFY_SSL,
    SESSION_TIMEOUT,
)
from .oauth import CONF_TOKEN, EntryTokens, is_oauth_entry
from .pop3 import PORT_PLAIN, PORT_SSL, POP3Session, Security, connect

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    import ssl


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
    store is read inside the event loop. The intermediate cipher list is the one the
    POP3 client uses on its own (`pop3/tls.py`): the default list would still offer
    static-RSA suites without forward secrecy. Tests against a server with a test CA
    replace this function.
    """
    ciphers = SSLCipherList.INTERMEDIATE
    return client_context(ciphers) if verify_ssl else client_context_no_verify(ciphers)


@asynccontextmanager
async def open_session(
    data: Mapping[str, Any], *, tokens: EntryTokens | None = None
) -> AsyncIterator[POP3Session]:
    """Open the POP3 session (connected, secured, logged in) for the settings in `data`.

    `data` is an entry's data, or a form's before the entry exists. Hold the
    coordinator's `session_lock` around a session of a set-up entry: many servers lock
    the maildrop per session.

    A Microsoft mailbox (a `token` in `data`) logs in with XOAUTH2: with the entry's
    `tokens`, whose access token is first refreshed if it expires within 20 s (a valid
    one costs no request); without, with the token in `data`, which a sign-in just got.
    Token failures raise `TokenRejectedError` (an auth error) or `TokenUnavailableError`
    (a connection error), before anything connects.
    """
    oauth2_token: str | None = None
    if tokens is not None:
        oauth2_token = await tokens.async_access_token()
    elif is_oauth_entry(data):
        oauth2_token = data[CONF_TOKEN]["access_token"]
    security = Security(data[CONF_SECURITY])
    verify_ssl: bool = data.get(CONF_VERIFY_SSL, DEFAULT_VERIFY_SSL)
    async with connect(
        data[CONF_HOST],
        port_for(data),
        security=security,
        username=data[CONF_USERNAME],
        password=data.get(CONF_PASSWORD, ""),
        oauth2_token=oauth2_token,
        ssl_context=None if security is Security.NONE else ssl_context_for(verify_ssl),
        verify_ssl=verify_ssl,
        command_timeout=COMMAND_TIMEOUT,
        session_timeout=SESSION_TIMEOUT,
    ) as session:
        yield session
