"""Sign-in with Microsoft: the OAuth2 settings, the id token's mailbox, a valid access token.

Outlook.com, Hotmail and Microsoft 365 accept only SASL XOAUTH2 for POP3. The
tokens come from Home Assistant's application credentials; before each POP3
session `async_access_token` makes the access token valid. Its failures are
POP3 errors, so the one error table of the integration (reauthentication for
a rejected sign-in, backoff for an unreachable token endpoint) covers them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from http import HTTPStatus
import json
from typing import TYPE_CHECKING, Any, Final

from aiohttp import ClientError, ClientResponseError
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_USERNAME, CONF_VERIFY_SSL
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.config_entry_oauth2_flow import (
    OAuth2Session,
    async_get_config_entry_implementation,
)

from .const import LOGGER
from .pop3 import Security
from .pop3.errors import POP3AuthError, POP3ConnectionError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from homeassistant.config_entries import ConfigEntry
    from homeassistant.core import HomeAssistant

# Tenant `common`: personal (Outlook.com, Hotmail) and work or school accounts alike.
MICROSOFT_AUTHORIZE_URL: Final = "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
MICROSOFT_TOKEN_URL: Final = "https://login.microsoftonline.com/common/oauth2/v2.0/token"  # noqa: S105  (a URL, not a secret)
MICROSOFT_SCOPES: Final = (
    "openid",
    "email",
    "offline_access",
    "https://outlook.office.com/POP.AccessAsUser.All",
)
#: The POP3 server of every Microsoft mailbox (other clouds change it with reconfigure).
MICROSOFT_SERVER: Final[dict[str, Any]] = {
    CONF_HOST: "outlook.office365.com",
    CONF_PORT: 995,
    "security": Security.SSL.value,
    CONF_VERIFY_SSL: True,
}

# Home Assistant's keys of an OAuth2 entry (config_entry_oauth2_flow).
CONF_AUTH_IMPLEMENTATION: Final = "auth_implementation"
CONF_TOKEN: Final = "token"  # noqa: S105  (a key, not a secret)

#: A token request that hangs is a transient failure, like a POP3 command past its deadline.
TOKEN_TIMEOUT: Final = 30.0
# Longer than any address: a hostile id token must not put megabytes into the entry title.
_MAX_ADDRESS = 320


class TokenRejectedError(POP3AuthError):
    """The token endpoint refused to renew the sign-in (revoked, expired, password changed)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        # The message names the token endpoint, not "the server" of POP3AuthError.
        self.args = (f"Microsoft refused to renew the sign-in: {detail}",)


class TokenUnavailableError(POP3ConnectionError):
    """The token endpoint could not be reached or failed (5xx, 429, a broken answer)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Microsoft's sign-in service is unavailable: {detail}")


def is_oauth_entry(data: Mapping[str, Any]) -> bool:
    """Whether the entry `data` signs in with OAuth2 (XOAUTH2) instead of a password."""
    return CONF_TOKEN in data


def refresh_rejected(status: int) -> bool:
    """Whether a token endpoint answer with HTTP `status` means "sign in again".

    4xx is the endpoint's verdict on the grant (`invalid_grant` is a 400); 429 and 5xx
    are its own trouble, retried later. Home Assistant 2026 maps statuses the same way.
    """
    return 400 <= status <= 499 and status != HTTPStatus.TOO_MANY_REQUESTS


def mailbox_address(token: Mapping[str, Any]) -> str | None:
    """Return the mailbox address in the token's id token: `preferred_username`, else `email`.

    The signature is not checked: the id token came straight from Microsoft's token
    endpoint over TLS, in the answer to our own request, so it is as trusted as the
    access token beside it (OpenID Connect Core 3.1.3.7). None when there is no usable
    address.
    """
    id_token = token.get("id_token")
    if not isinstance(id_token, str) or id_token.count(".") != 2:
        return None
    payload = id_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        return None
    if not isinstance(claims, dict):
        return None
    for claim in ("preferred_username", "email"):
        address = claims.get(claim)
        if isinstance(address, str) and (address := address.strip()) and _usable(address):
            return address
    return None


def _usable(address: str) -> bool:
    # A CR, LF or NUL would break the XOAUTH2 payload; an address without "@" is a
    # phone number or a display name, which Microsoft's POP3 server does not accept.
    return (
        len(address) <= _MAX_ADDRESS
        and "@" in address
        and address.isprintable()
        and not any(char.isspace() for char in address)
    )


def entry_data_for(token_data: Mapping[str, Any], username: str) -> dict[str, Any]:
    """Return the data of a new Microsoft entry: the tokens, Microsoft's server, the mailbox."""
    return {**token_data, **MICROSOFT_SERVER, CONF_USERNAME: username}


class EntryTokens:
    """The OAuth2 tokens of one entry: a valid access token before each POP3 session.

    One per entry, so its lock keeps concurrent sessions from refreshing twice.
    """

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        """Prepare the tokens of `entry`; the implementation is looked up on first use."""
        self._hass = hass
        self._entry = entry
        self._oauth_session: OAuth2Session | None = None
        self._unavailable = False

    async def async_access_token(self) -> str:
        """Return a valid access token (see `async_access_token`).

        An unavailable token endpoint is logged once per outage: the session that needed
        the token fails, and is retried with backoff like any unreachable server.
        """
        try:
            if self._oauth_session is None:
                self._oauth_session = await async_oauth_session(self._hass, self._entry)
            token = await async_access_token(self._oauth_session)
        except TokenUnavailableError as error:
            if not self._unavailable:
                LOGGER.warning("%s; %s is checked again later", error, self._entry.title)
            self._unavailable = True
            raise
        if self._unavailable:
            LOGGER.info("Microsoft's sign-in service works again for %s", self._entry.title)
        self._unavailable = False
        return token


async def async_oauth_session(hass: HomeAssistant, entry: ConfigEntry) -> OAuth2Session:
    """Return an `OAuth2Session` for an OAuth entry; a removed credential asks to sign in again."""
    try:
        implementation = await async_get_config_entry_implementation(hass, entry)
    except ValueError as error:
        # The application credential was deleted (ValueError on 2025.4; on 2026 the
        # UnknownImplementationError, also a ValueError): only a new sign-in helps.
        raise TokenRejectedError("the application credential was removed") from error
    except HomeAssistantError as error:
        # Home Assistant 2026: a credential provider is down; it may come back.
        raise TokenUnavailableError(str(error) or type(error).__name__) from error
    return OAuth2Session(hass, entry, implementation)


async def async_access_token(oauth_session: OAuth2Session) -> str:
    """Return a valid access token, refreshed first when it expires within 20 seconds.

    A valid token costs no request. Raises `TokenRejectedError` (sign in again) or
    `TokenUnavailableError` (try again later).
    """
    try:
        async with asyncio.timeout(TOKEN_TIMEOUT):
            await oauth_session.async_ensure_token_valid()
    except ClientResponseError as error:
        # Home Assistant 2025.4 raises aiohttp's own error; 2026 its subclasses
        # OAuth2TokenRequestReauthError / OAuth2TokenRequestTransientError. Both carry the status.
        detail = f"HTTP {error.status} {error.message}".strip()
        if refresh_rejected(error.status):
            raise TokenRejectedError(detail) from error
        raise TokenUnavailableError(detail) from error
    except TimeoutError as error:
        raise TokenUnavailableError(f"no answer within {TOKEN_TIMEOUT:.0f} s") from error
    except (ClientError, KeyError, TypeError, ValueError) as error:
        # No answer, or one without a usable token (2026: OAuth2TokenRequestConnectionError).
        raise TokenUnavailableError(str(error) or type(error).__name__) from error
    access_token = oauth_session.token.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        # A stored sign-in without an access token never heals by waiting.
        raise TokenRejectedError("the stored sign-in has no access token")
    return access_token
