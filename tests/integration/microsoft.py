"""Sign-in with Microsoft in tests: an application credential, id tokens, a Microsoft server.

Microsoft's token endpoint is mocked at the HTTP edge (`aioclient_mock`), as Home
Assistant core tests its OAuth2 integrations; "outlook.office365.com" is the fake POP3
server with implicit TLS, which accepts XOAUTH2 with exactly the access tokens in its
`users` (address -> token).
"""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING, Any
from unittest.mock import patch
from urllib.parse import parse_qs, urlsplit

from homeassistant.components.application_credentials import (
    ClientCredential,
    async_import_client_credential,
)
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_USERNAME, CONF_VERIFY_SSL
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import config_entry_oauth2_flow
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.pop3_mail.const import CONF_SECURITY, DOMAIN
from custom_components.pop3_mail.oauth import (
    MICROSOFT_AUTHORIZE_URL,
    MICROSOFT_SERVER,
    MICROSOFT_TOKEN_URL,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from homeassistant.config_entries import ConfigFlowResult
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

    from tests.servers.certs import TestPKI
    from tests.servers.fake_pop3 import FakePOP3Server
    from tests.servers.fixtures import FakePOP3Factory

CLIENT_ID = "client-id"
CLIENT_SECRET = "client-secret"
CREDENTIAL = "pop3_mail_credential"
ADDRESS = "Alice@Outlook.com"
#: The access token the fake Microsoft server accepts at first.
ACCESS_TOKEN = "access-1"
REDIRECT_URI = "https://example.com/auth/external/callback"
# Where sessions are opened (tests replace its TLS context with the test CA's).
SESSION_MODULE = "custom_components.pop3_mail.session"


def id_token(claims: dict[str, Any]) -> str:
    """An unsigned JWT with `claims`, as the integration reads it (the signature is not checked)."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def token_response(
    access_token: str = ACCESS_TOKEN,
    *,
    refresh_token: str = "refresh-1",  # noqa: S107  (a test token)
    claims: dict[str, Any] | None = None,
    expires_in: int = 3600,
) -> dict[str, Any]:
    """What Microsoft's token endpoint answers: tokens and the id token of `claims`."""
    return {
        "token_type": "Bearer",
        "scope": "https://outlook.office.com/POP.AccessAsUser.All",
        "expires_in": expires_in,
        "access_token": access_token,
        "refresh_token": refresh_token,
        "id_token": id_token({"preferred_username": ADDRESS} if claims is None else claims),
    }


def stored_token(
    access_token: str = ACCESS_TOKEN, *, expires_at: float | None = None
) -> dict[str, Any]:
    """The `token` of an entry: valid for an hour unless `expires_at` says otherwise."""
    return {
        **token_response(access_token),
        "expires_at": time.time() + 3600 if expires_at is None else expires_at,
    }


def oauth_entry(server: FakePOP3Server, token: dict[str, Any], **changes: Any) -> MockConfigEntry:
    """A Microsoft entry whose server is the fake `server`."""
    data = {
        "auth_implementation": CREDENTIAL,
        "token": token,
        CONF_HOST: server.host,
        CONF_PORT: server.port,
        CONF_SECURITY: "ssl",
        CONF_USERNAME: ADDRESS,
        CONF_VERIFY_SSL: True,
        **changes,
    }
    name = f"{data[CONF_USERNAME]}@{data[CONF_HOST]}"
    return MockConfigEntry(domain=DOMAIN, title=name, unique_id=name.lower(), data=data)


def refresh_calls(aioclient_mock: AiohttpClientMocker) -> list[dict[str, Any]]:
    """The refresh requests sent to the token endpoint (form data)."""
    return [
        dict(data)
        for method, url, data, _headers in aioclient_mock.mock_calls
        if str(url) == MICROSOFT_TOKEN_URL and dict(data).get("grant_type") == "refresh_token"
    ]


@pytest.fixture
async def credential(hass: HomeAssistant) -> None:
    """The application credential of the user's Microsoft Entra app."""
    assert await async_setup_component(hass, "application_credentials", {})
    await async_import_client_credential(
        hass, DOMAIN, ClientCredential(CLIENT_ID, CLIENT_SECRET), CREDENTIAL
    )


@pytest.fixture
async def microsoft(fake_pop3: FakePOP3Factory, test_pki: TestPKI) -> AsyncIterator[FakePOP3Server]:
    """Microsoft's POP3 server: implicit TLS, alice's mailbox accepts the token "access-1"."""
    server = await fake_pop3(users={ADDRESS: "access-1"}, implicit_tls=test_pki.server_context())
    with (
        patch.dict(MICROSOFT_SERVER, {CONF_HOST: server.host, CONF_PORT: server.port}),
        patch(f"{SESSION_MODULE}.ssl_context_for", lambda verify_ssl: test_pki.client_context()),
    ):
        yield server


async def sign_in(
    hass: HomeAssistant,
    result: ConfigFlowResult,
    hass_client_no_auth: Any,
    aioclient_mock: AiohttpClientMocker,
    token: dict[str, Any] | None = None,
) -> ConfigFlowResult:
    """Go through Microsoft's page (the external step) and the callback; return the flow's end."""
    assert result["type"] is FlowResultType.EXTERNAL_STEP
    flow_id = result["flow_id"]
    state = config_entry_oauth2_flow._encode_jwt(
        hass, {"flow_id": flow_id, "redirect_uri": REDIRECT_URI}
    )
    url = urlsplit(result["url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == MICROSOFT_AUTHORIZE_URL
    assert parse_qs(url.query) == {
        "response_type": ["code"],
        "client_id": [CLIENT_ID],
        "redirect_uri": [REDIRECT_URI],
        "state": [state],
        "scope": ["openid email offline_access https://outlook.office.com/POP.AccessAsUser.All"],
        "prompt": ["select_account"],
    }
    client = await hass_client_no_auth()
    response = await client.get(f"/auth/external/callback?code=abcd&state={state}")
    assert response.status == 200
    aioclient_mock.post(MICROSOFT_TOKEN_URL, json=token_response() if token is None else token)
    return await hass.config_entries.flow.async_configure(flow_id)
