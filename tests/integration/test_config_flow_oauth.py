"""The config flow of Microsoft mailboxes: sign-in, reauthentication, reconfigure.

The whole flow runs through the external step and `/auth/external/callback`, with
Microsoft's token endpoint mocked at the HTTP edge and its POP3 server played by the
fake server over TLS, which accepts XOAUTH2 with exactly the current access token.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_USERNAME, CONF_VERIFY_SSL
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component
import pytest

from custom_components.pop3_mail.const import CONF_SECURITY, DOMAIN
from custom_components.pop3_mail.oauth import MICROSOFT_TOKEN_URL
from tests.integration.microsoft import (
    ADDRESS,
    CREDENTIAL,
    credential,
    microsoft,
    oauth_entry,
    refresh_calls,
    sign_in,
    stored_token,
    token_response,
)

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigFlowResult
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

    from tests.servers.fake_pop3 import FakePOP3Server
    from tests.servers.fixtures import FakePOP3Factory

__all__ = ["credential", "microsoft"]  # fixtures

pytestmark = pytest.mark.usefixtures("socket_enabled", "current_request_with_host")

MAILBOX = f"{ADDRESS}@127.0.0.1"


async def start_microsoft_flow(hass: HomeAssistant) -> ConfigFlowResult:
    """Open the user menu and pick "Sign in with Microsoft"."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["password", "microsoft"]
    return await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "microsoft"}
    )


@pytest.mark.usefixtures("credential")
async def test_microsoft_creates_entry(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    aioclient_mock: AiohttpClientMocker,
    microsoft: FakePOP3Server,
) -> None:
    """The flow signs in, logs in with XOAUTH2, then creates the entry named after the mailbox."""
    result = await sign_in(
        hass, await start_microsoft_flow(hass), hass_client_no_auth, aioclient_mock
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == MAILBOX
    entry = result["result"]
    assert entry.unique_id == MAILBOX.lower()
    token = dict(entry.data["token"])
    assert token.pop("expires_at") == pytest.approx(time.time() + 3600, abs=60)
    assert token == token_response()
    assert {key: value for key, value in entry.data.items() if key != "token"} == {
        "auth_implementation": CREDENTIAL,
        CONF_HOST: microsoft.host,
        CONF_PORT: microsoft.port,
        CONF_SECURITY: "ssl",
        CONF_USERNAME: ADDRESS,
        CONF_VERIFY_SSL: True,
    }
    # The token request carried the code and the credential.
    assert aioclient_mock.call_count == 1
    _method, url, data, _headers = aioclient_mock.mock_calls[0]
    assert str(url) == MICROSOFT_TOKEN_URL
    assert dict(data)["code"] == "abcd"
    assert dict(data)["client_secret"] == "client-secret"
    # The flow's own login, over TLS with XOAUTH2, then the entry's first check.
    first = microsoft.sessions[0]
    assert first.tls
    assert first.user == ADDRESS
    assert first.commands[0] == "CAPA"
    assert first.commands[1].startswith("AUTH XOAUTH2")
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert all(session.user == ADDRESS for session in microsoft.sessions)
    # A token valid for an hour costs no further request.
    assert aioclient_mock.call_count == 1


@pytest.mark.usefixtures("credential", "microsoft")
async def test_email_claim_when_no_preferred_username(
    hass: HomeAssistant, hass_client_no_auth: Any, aioclient_mock: AiohttpClientMocker
) -> None:
    """Without `preferred_username` the id token's `email` names the mailbox."""
    result = await sign_in(
        hass,
        await start_microsoft_flow(hass),
        hass_client_no_auth,
        aioclient_mock,
        token_response(claims={"email": ADDRESS, "name": "Alice"}),
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_USERNAME] == ADDRESS


@pytest.mark.usefixtures("credential", "microsoft")
@pytest.mark.parametrize(
    "claims",
    [{}, {"preferred_username": "+34600000000"}, {"email": "alice@\r\nexample.com"}],
    ids=["no-address", "phone-number", "line-break"],
)
async def test_id_token_without_usable_address_aborts(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    aioclient_mock: AiohttpClientMocker,
    claims: dict[str, Any],
) -> None:
    """An id token without a usable mailbox address aborts; nothing is logged in to."""
    result = await sign_in(
        hass,
        await start_microsoft_flow(hass),
        hass_client_no_auth,
        aioclient_mock,
        token_response(claims=claims),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "oauth_error"
    assert hass.config_entries.async_entries(DOMAIN) == []


@pytest.mark.usefixtures("credential")
async def test_login_refused_aborts_invalid_auth(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    aioclient_mock: AiohttpClientMocker,
    microsoft: FakePOP3Server,
) -> None:
    """A token the POP3 server refuses (no POP permission) aborts before any entry exists."""
    microsoft.users[ADDRESS] = "another-token"
    result = await sign_in(
        hass, await start_microsoft_flow(hass), hass_client_no_auth, aioclient_mock
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_auth"
    assert hass.config_entries.async_entries(DOMAIN) == []


@pytest.mark.usefixtures("credential")
async def test_unreachable_server_aborts_cannot_connect(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    aioclient_mock: AiohttpClientMocker,
    microsoft: FakePOP3Server,
) -> None:
    """Microsoft's POP3 server down: abort `cannot_connect`."""
    await microsoft.stop()
    result = await sign_in(
        hass, await start_microsoft_flow(hass), hass_client_no_auth, aioclient_mock
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "cannot_connect"


@pytest.mark.usefixtures("credential")
async def test_already_configured(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    aioclient_mock: AiohttpClientMocker,
    microsoft: FakePOP3Server,
) -> None:
    """The same mailbox twice (any spelling of the address) aborts `already_configured`."""
    oauth_entry(microsoft, stored_token(), **{CONF_USERNAME: ADDRESS.lower()}).add_to_hass(hass)
    result = await sign_in(
        hass, await start_microsoft_flow(hass), hass_client_no_auth, aioclient_mock
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert microsoft.sessions == []


async def test_missing_credentials(hass: HomeAssistant) -> None:
    """Without an application credential the flow aborts with Home Assistant's reason."""
    assert await async_setup_component(hass, "application_credentials", {})
    result = await start_microsoft_flow(hass)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "missing_credentials"


# -- reauthentication ------------------------------------------------------------------------


@pytest.mark.usefixtures("credential")
async def test_reauth_signs_in_again(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    aioclient_mock: AiohttpClientMocker,
    microsoft: FakePOP3Server,
) -> None:
    """Reauth shows `reauth_confirm`, then the same sign-in; the new token is stored."""
    entry = oauth_entry(microsoft, stored_token("revoked"))
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reauth_confirm"
    assert result["description_placeholders"]["mailbox"] == MAILBOX
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    result = await sign_in(hass, result, hass_client_no_auth, aioclient_mock)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data["token"]["access_token"] == "access-1"
    assert entry.data["token"]["refresh_token"] == "refresh-1"
    assert microsoft.sessions[0].user == ADDRESS
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


@pytest.mark.usefixtures("credential")
async def test_reauth_with_another_account_aborts(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    aioclient_mock: AiohttpClientMocker,
    microsoft: FakePOP3Server,
) -> None:
    """Signing in as someone else aborts `wrong_account` and keeps the entry as it was."""
    entry = oauth_entry(microsoft, stored_token("revoked"))
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    result = await sign_in(
        hass,
        result,
        hass_client_no_auth,
        aioclient_mock,
        token_response(claims={"preferred_username": "bob@outlook.com"}),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_account"
    assert entry.data["token"]["access_token"] == "revoked"
    assert microsoft.sessions == []


@pytest.mark.usefixtures("credential")
async def test_reauth_login_refused_aborts(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    aioclient_mock: AiohttpClientMocker,
    microsoft: FakePOP3Server,
) -> None:
    """A new token the server still refuses aborts `invalid_auth`; the entry is unchanged."""
    entry = oauth_entry(microsoft, stored_token("revoked"))
    entry.add_to_hass(hass)
    microsoft.users[ADDRESS] = "something-else"
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    result = await sign_in(hass, result, hass_client_no_auth, aioclient_mock)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_auth"
    assert entry.data["token"]["access_token"] == "revoked"


# -- reconfigure -----------------------------------------------------------------------------


@pytest.mark.usefixtures("credential")
async def test_reconfigure_moves_to_another_endpoint(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    fake_pop3: FakePOP3Factory,
    microsoft: FakePOP3Server,
) -> None:
    """Another POP3 endpoint (another Microsoft cloud), same account and sign-in.

    The valid token logs in there without a token request; unique id and title follow.
    """
    entry = oauth_entry(microsoft, stored_token())
    entry.add_to_hass(hass)
    other = await fake_pop3(users={ADDRESS: "access-1"}, implicit_tls=microsoft.implicit_tls)
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_HOST: "localhost",
            CONF_SECURITY: "ssl",
            CONF_PORT: other.port,
            CONF_VERIFY_SSL: True,
        },
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert (entry.data[CONF_HOST], entry.data[CONF_PORT]) == ("localhost", other.port)
    assert entry.unique_id == f"{ADDRESS}@localhost".lower()
    assert entry.title == f"{ADDRESS}@localhost"
    assert entry.data["token"]["access_token"] == "access-1"
    assert other.sessions[0].user == ADDRESS
    assert aioclient_mock.call_count == 0


@pytest.mark.usefixtures("credential")
async def test_reconfigure_refreshes_an_expired_token(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker, microsoft: FakePOP3Server
) -> None:
    """An expired token is refreshed before the login; the new one is kept in the entry."""
    entry = oauth_entry(microsoft, stored_token("expired", expires_at=time.time() - 10))
    entry.add_to_hass(hass)
    aioclient_mock.post(MICROSOFT_TOKEN_URL, json=token_response("access-1", refresh_token="r2"))
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_HOST: microsoft.host,
            CONF_SECURITY: "ssl",
            CONF_PORT: microsoft.port,
            CONF_VERIFY_SSL: True,
        },
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert [call["refresh_token"] for call in refresh_calls(aioclient_mock)] == ["refresh-1"]
    assert entry.data["token"]["access_token"] == "access-1"
    assert entry.data["token"]["refresh_token"] == "r2"


@pytest.mark.usefixtures("credential")
async def test_reconfigure_with_a_revoked_sign_in_shows_invalid_auth(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker, microsoft: FakePOP3Server
) -> None:
    """A refresh Microsoft rejects (`invalid_grant`) is a form error; nothing is logged in to."""
    entry = oauth_entry(microsoft, stored_token("expired", expires_at=time.time() - 10))
    entry.add_to_hass(hass)
    aioclient_mock.post(
        MICROSOFT_TOKEN_URL,
        status=400,
        json={"error": "invalid_grant", "error_description": "AADSTS70000: revoked"},
    )
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_HOST: microsoft.host,
            CONF_SECURITY: "ssl",
            CONF_PORT: microsoft.port,
            CONF_VERIFY_SSL: True,
        },
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    assert microsoft.sessions == []
