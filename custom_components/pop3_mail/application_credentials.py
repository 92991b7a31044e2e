"""Application credentials of POP3 Mail: the Microsoft identity platform."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.components.application_credentials import AuthorizationServer

from .oauth import MICROSOFT_AUTHORIZE_URL, MICROSOFT_TOKEN_URL

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant


async def async_get_authorization_server(hass: HomeAssistant) -> AuthorizationServer:
    """Return Microsoft's authorization server (tenant `common`: personal and work accounts)."""
    return AuthorizationServer(authorize_url=MICROSOFT_AUTHORIZE_URL, token_url=MICROSOFT_TOKEN_URL)


async def async_get_description_placeholders(hass: HomeAssistant) -> dict[str, str]:
    """Return what the "Add application credentials" dialog tells the user to register."""
    return {
        "entra_url": "https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade",
        "redirect_url": "https://my.home-assistant.io/redirect/oauth",
        "scope": "POP.AccessAsUser.All",
    }
