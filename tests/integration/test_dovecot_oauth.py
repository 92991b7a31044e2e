"""Sign-in with Microsoft against a real Dovecot that checks XOAUTH2 tokens.

Dovecot asks a local introspection endpoint (tests/servers/introspection.py) about each
token, which accepts exactly the tokens the test lists: the flow's token logs in, a
refreshed token is accepted once the old one is revoked, and a revoked token that is
still "valid" on our side starts reauthentication. The token endpoint is mocked at the
HTTP edge, as in Home Assistant core's OAuth2 tests.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

from homeassistant.config_entries import SOURCE_REAUTH, SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.pop3_mail.const import DOMAIN, EVENT_NEW_MESSAGE
from custom_components.pop3_mail.oauth import MICROSOFT_SERVER, MICROSOFT_TOKEN_URL
from tests.integration.conftest import mail
from tests.integration.microsoft import (
    SESSION_MODULE,
    credential,
    refresh_calls,
    sign_in,
    token_response,
)
from tests.servers.introspection import IntrospectionServer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

    from tests.servers.dovecot import DovecotServer
    from tests.servers.fixtures import DovecotFactory

__all__ = ["credential"]  # fixture

pytestmark = pytest.mark.usefixtures("socket_enabled", "credential", "current_request_with_host")


def new_address(dovecot: DovecotServer) -> str:
    """A new user on `dovecot` named like a Microsoft account (an address)."""
    return dovecot.add_user(f"user{secrets.token_hex(4)}@outlook.test", secrets.token_urlsafe(12))


@pytest.fixture(scope="session")
def introspection() -> Iterator[IntrospectionServer]:
    """The token introspection endpoint Dovecot asks about every XOAUTH2 token."""
    with IntrospectionServer() as server:
        yield server


@pytest.fixture
def dovecot_oauth2(
    dovecot_factory: DovecotFactory, introspection: IntrospectionServer
) -> Iterator[DovecotServer]:
    """Dovecot with XOAUTH2 as "outlook.office365.com", its certificate trusted."""
    server = dovecot_factory(oauth2_introspection_url=introspection.url)
    with (
        patch.dict(MICROSOFT_SERVER, {CONF_HOST: server.host, CONF_PORT: server.pop3s_port}),
        patch(f"{SESSION_MODULE}.ssl_context_for", lambda verify_ssl: server.pki.client_context()),
    ):
        yield server
    introspection.tokens.clear()


async def test_sign_in_refresh_and_revocation(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    aioclient_mock: AiohttpClientMocker,
    dovecot_oauth2: DovecotServer,
    introspection: IntrospectionServer,
) -> None:
    """Flow, mail, refresh with the old token revoked, then a revoked token: reauth."""
    dovecot = dovecot_oauth2
    name = new_address(dovecot)
    dovecot.deliver(name, mail(1))
    introspection.tokens["access-1"] = name
    events = async_capture_events(hass, EVENT_NEW_MESSAGE)

    # The flow logs in to Dovecot with XOAUTH2 (the token Dovecot's endpoint knows).
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "microsoft"}
    )
    result = await sign_in(
        hass,
        result,
        hass_client_no_auth,
        aioclient_mock,
        token_response(claims={"preferred_username": name}),
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    coordinator = entry.runtime_data
    assert coordinator.data.count == 1
    assert "access-1" in introspection.requests

    # New mail arrives; the valid token costs no request.
    dovecot.deliver(name, mail(2))
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert [event.data["subject"] for event in events] == ["Message 2"]
    assert aioclient_mock.call_count == 1

    # The token runs out and Microsoft revokes it: the refreshed one is the only one accepted.
    token = {**entry.data["token"], "expires_at": time.time() - 10}
    hass.config_entries.async_update_entry(entry, data={**entry.data, "token": token})
    introspection.tokens = {"access-2": name}
    aioclient_mock.clear_requests()
    aioclient_mock.post(MICROSOFT_TOKEN_URL, json=token_response("access-2"))
    dovecot.deliver(name, mail(3))
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert coordinator.last_update_success
    assert [event.data["subject"] for event in events] == ["Message 2", "Message 3"]
    assert len(refresh_calls(aioclient_mock)) == 1
    assert introspection.requests[-1] == "access-2"

    # Revoked before it expired (password change, admin): Dovecot refuses it, reauth starts.
    introspection.tokens = {}
    await coordinator.async_refresh()
    assert not coordinator.last_update_success
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]


async def test_flow_with_a_token_dovecot_refuses(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    aioclient_mock: AiohttpClientMocker,
    dovecot_oauth2: DovecotServer,
    introspection: IntrospectionServer,
) -> None:
    """A token without POP access (unknown to the endpoint) aborts `invalid_auth`."""
    name = new_address(dovecot_oauth2)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "microsoft"}
    )
    result = await sign_in(
        hass,
        result,
        hass_client_no_auth,
        aioclient_mock,
        token_response(claims={"preferred_username": name}),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_auth"
    assert introspection.requests[-1] == "access-1"
