"""Microsoft entries at run time: a valid token before every POP3 session, refresh, failures.

The token endpoint is mocked at the HTTP edge; the fake server over TLS accepts XOAUTH2 with
exactly the token in its `users`, so a session that logged in proves which token it used.
"""

from __future__ import annotations

from datetime import timedelta
import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import ClientError
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.exceptions import ConfigEntryAuthFailed, HomeAssistantError
from homeassistant.helpers import config_entry_oauth2_flow
from homeassistant.helpers.update_coordinator import UpdateFailed
import pytest

from custom_components.pop3_mail.const import (
    CONF_ARCHIVE_FOLDER,
    CONF_DELETE_POLICY,
    DOMAIN,
)
from custom_components.pop3_mail.oauth import MICROSOFT_TOKEN_URL
from tests.integration.conftest import mail
from tests.integration.microsoft import (
    ADDRESS,
    CLIENT_ID,
    CLIENT_SECRET,
    credential,
    microsoft,
    oauth_entry,
    refresh_calls,
    stored_token,
    token_response,
)

if TYPE_CHECKING:
    from pathlib import Path

    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry
    from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

    from tests.servers.fake_pop3 import FakePOP3Server

__all__ = ["credential", "microsoft"]  # fixtures

pytestmark = pytest.mark.usefixtures("socket_enabled", "credential")

EXPIRED = -10.0
TRANSIENT_FAILURES = [
    pytest.param({"status": 500, "text": "Internal Server Error"}, id="500"),
    pytest.param({"status": 503, "json": {"error": "temporarily_unavailable"}}, id="503"),
    pytest.param({"status": 429, "json": {"error": "too_many_requests"}}, id="429"),
    pytest.param({"exc": ClientError("connection refused")}, id="unreachable"),
    pytest.param({"exc": TimeoutError()}, id="timeout"),
    # An answer without a new access token is not tested: Home Assistant 2025.4 keeps the
    # old token then and extends its expiry (2026 raises a connection error).
    pytest.param({"status": 200, "text": "<html>proxy error</html>"}, id="not-json"),
]
REJECTIONS = [
    pytest.param(
        {"status": 400, "json": {"error": "invalid_grant", "error_description": "AADSTS70008"}},
        id="400-invalid_grant",
    ),
    pytest.param({"status": 401, "json": {"error": "invalid_client"}}, id="401"),
]


def reauth_flows(hass: HomeAssistant) -> list[Any]:
    """The reauthentication flows in progress."""
    return [
        flow
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["source"] == SOURCE_REAUTH
    ]


async def set_up(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


def expire(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Let the stored access token run out (as an hour passing would)."""
    token = {**entry.data["token"], "expires_at": time.time() + EXPIRED}
    hass.config_entries.async_update_entry(entry, data={**entry.data, "token": token})


async def test_valid_token_costs_no_request(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker, microsoft: FakePOP3Server
) -> None:
    """Setup and later checks with a valid token log in with it, without any HTTP request."""
    entry = oauth_entry(microsoft, stored_token())
    await set_up(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    await entry.runtime_data.async_refresh()
    assert len(microsoft.sessions) == 2
    assert all(session.user == ADDRESS for session in microsoft.sessions)
    assert all(session.commands[1].startswith("AUTH XOAUTH2") for session in microsoft.sessions)
    assert aioclient_mock.call_count == 0


async def test_expired_token_is_refreshed_before_the_session(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker, microsoft: FakePOP3Server
) -> None:
    """An expired token is refreshed first; the new one logs in and is stored; no reload."""
    entry = oauth_entry(microsoft, stored_token("old", expires_at=time.time() + EXPIRED))
    microsoft.users[ADDRESS] = "access-2"
    aioclient_mock.post(MICROSOFT_TOKEN_URL, json=token_response("access-2", refresh_token="r2"))
    await set_up(hass, entry)

    assert entry.state is ConfigEntryState.LOADED
    assert refresh_calls(aioclient_mock) == [
        {
            "grant_type": "refresh_token",
            "refresh_token": "refresh-1",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
    ]
    assert entry.data["token"]["access_token"] == "access-2"
    assert entry.data["token"]["refresh_token"] == "r2"
    assert entry.data["token"]["expires_at"] > time.time() + 3000
    assert microsoft.sessions[0].user == ADDRESS
    # Storing the token did not restart the entry, and the next check needs no request.
    coordinator = entry.runtime_data
    await coordinator.async_refresh()
    assert entry.runtime_data is coordinator
    assert coordinator.last_update_success
    assert aioclient_mock.call_count == 1


async def test_token_expiring_after_setup_is_refreshed_by_the_check(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker, microsoft: FakePOP3Server
) -> None:
    """A token that runs out while the entry is loaded is refreshed by the next check."""
    entry = oauth_entry(microsoft, stored_token())
    await set_up(hass, entry)
    coordinator = entry.runtime_data
    expire(hass, entry)
    microsoft.users[ADDRESS] = "access-2"
    aioclient_mock.post(MICROSOFT_TOKEN_URL, json=token_response("access-2"))
    await coordinator.async_refresh()
    assert coordinator.last_update_success
    assert entry.runtime_data is coordinator
    assert len(refresh_calls(aioclient_mock)) == 1
    assert microsoft.sessions[-1].user == ADDRESS


@pytest.mark.parametrize("answer", REJECTIONS)
async def test_rejected_refresh_at_setup_starts_reauth(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    microsoft: FakePOP3Server,
    answer: dict[str, Any],
) -> None:
    """A refresh the token endpoint rejects starts reauthentication; no POP3 login is tried."""
    entry = oauth_entry(microsoft, stored_token(expires_at=time.time() + EXPIRED))
    aioclient_mock.post(MICROSOFT_TOKEN_URL, **answer)
    await set_up(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert len(reauth_flows(hass)) == 1
    assert microsoft.sessions == []


@pytest.mark.parametrize("answer", REJECTIONS)
async def test_rejected_refresh_after_setup_starts_reauth(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    microsoft: FakePOP3Server,
    answer: dict[str, Any],
) -> None:
    """The same for a check of a loaded entry: unavailable, and reauthentication."""
    entry = oauth_entry(microsoft, stored_token())
    await set_up(hass, entry)
    coordinator = entry.runtime_data
    expire(hass, entry)
    aioclient_mock.post(MICROSOFT_TOKEN_URL, **answer)
    await coordinator.async_refresh()
    assert not coordinator.last_update_success
    assert isinstance(coordinator.last_exception, ConfigEntryAuthFailed)
    assert coordinator.last_exception.translation_key == "sign_in_rejected"
    assert len(reauth_flows(hass)) == 1
    assert len(microsoft.sessions) == 1


@pytest.mark.parametrize("answer", TRANSIENT_FAILURES)
async def test_token_endpoint_failure_at_setup_is_transient(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    microsoft: FakePOP3Server,
    caplog: pytest.LogCaptureFixture,
    answer: dict[str, Any],
) -> None:
    """5xx, 429, no answer or a broken one: setup is retried later, never reauthentication."""
    entry = oauth_entry(microsoft, stored_token(expires_at=time.time() + EXPIRED))
    aioclient_mock.post(MICROSOFT_TOKEN_URL, **answer)
    with caplog.at_level(logging.WARNING):
        await set_up(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert reauth_flows(hass) == []
    assert microsoft.sessions == []
    assert "Microsoft's sign-in service is unavailable" in caplog.text


@pytest.mark.parametrize("answer", TRANSIENT_FAILURES)
async def test_token_endpoint_failure_after_setup_backs_off(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    microsoft: FakePOP3Server,
    caplog: pytest.LogCaptureFixture,
    answer: dict[str, Any],
) -> None:
    """A check whose refresh fails transiently is a failed update with backoff, no reauth.

    The outage is logged once, and its end once.
    """
    entry = oauth_entry(microsoft, stored_token())
    await set_up(hass, entry)
    coordinator = entry.runtime_data
    expire(hass, entry)
    aioclient_mock.post(MICROSOFT_TOKEN_URL, **answer)
    await coordinator.async_refresh()
    assert not coordinator.last_update_success
    assert isinstance(coordinator.last_exception, UpdateFailed)
    assert coordinator.last_exception.translation_key == "sign_in_unavailable"
    assert "Microsoft's sign-in service is unavailable" in str(coordinator.last_exception)
    assert coordinator.update_interval == timedelta(seconds=120)
    await coordinator.async_refresh()
    assert coordinator.update_interval == timedelta(seconds=240)
    assert reauth_flows(hass) == []
    assert len(microsoft.sessions) == 1
    warnings = [
        record
        for record in caplog.records
        if record.levelno == logging.WARNING and "sign-in service is unavailable" in record.message
    ]
    assert len(warnings) == 1

    # Once the endpoint answers again, the check works and the interval is back to normal.
    aioclient_mock.clear_requests()
    aioclient_mock.post(MICROSOFT_TOKEN_URL, json=token_response())
    await coordinator.async_refresh()
    assert coordinator.last_update_success
    assert coordinator.update_interval == timedelta(seconds=60)
    assert "sign-in service works again" in caplog.text


async def test_refused_xoauth2_login_starts_reauth(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker, microsoft: FakePOP3Server
) -> None:
    """A token the server refuses (revoked before it expired) starts reauthentication."""
    entry = oauth_entry(microsoft, stored_token())
    await set_up(hass, entry)
    coordinator = entry.runtime_data
    microsoft.users[ADDRESS] = "revoked-everything"
    await coordinator.async_refresh()
    assert not coordinator.last_update_success
    assert len(reauth_flows(hass)) == 1
    assert aioclient_mock.call_count == 0


async def test_removed_credential_starts_reauth(
    hass: HomeAssistant, microsoft: FakePOP3Server
) -> None:
    """An entry whose application credential is gone asks to sign in again."""
    entry = oauth_entry(microsoft, stored_token(), auth_implementation="deleted_credential")
    await set_up(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert len(reauth_flows(hass)) == 1
    assert microsoft.sessions == []


async def test_stored_sign_in_without_access_token_starts_reauth(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker, microsoft: FakePOP3Server
) -> None:
    """A stored token without an access token (a damaged entry) asks to sign in again."""
    token = {key: value for key, value in stored_token().items() if key != "access_token"}
    entry = oauth_entry(microsoft, token)
    await set_up(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert len(reauth_flows(hass)) == 1
    assert microsoft.sessions == []
    assert aioclient_mock.call_count == 0


async def test_unavailable_credential_provider_is_transient(
    hass: HomeAssistant, microsoft: FakePOP3Server
) -> None:
    """A credential provider that is down (not a removed credential): retried, no reauth."""

    async def provider_down(hass: HomeAssistant, domain: str) -> list[Any]:
        raise HomeAssistantError("provider down")

    config_entry_oauth2_flow.async_add_implementation_provider(hass, "broken", provider_down)
    entry = oauth_entry(microsoft, stored_token())
    await set_up(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert reauth_flows(hass) == []
    assert microsoft.sessions == []


async def test_actions_refresh_the_token(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker, microsoft: FakePOP3Server
) -> None:
    """An action's session makes the token valid first, like a check."""
    microsoft.mailbox.add(mail(1))
    entry = oauth_entry(microsoft, stored_token())
    await set_up(hass, entry)
    expire(hass, entry)
    microsoft.users[ADDRESS] = "access-2"
    aioclient_mock.post(MICROSOFT_TOKEN_URL, json=token_response("access-2"))
    response = await hass.services.async_call(
        DOMAIN,
        "fetch_message",
        {"config_entry_id": entry.entry_id, "uid": "uid-1"},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    assert response["subject"] == "Message 1"
    assert len(refresh_calls(aioclient_mock)) == 1
    assert microsoft.sessions[-1].user == ADDRESS


async def test_action_with_a_rejected_sign_in_starts_reauth(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker, microsoft: FakePOP3Server
) -> None:
    """An action whose refresh Microsoft rejects fails, translated, and reauth starts."""
    microsoft.mailbox.add(mail(1))
    entry = oauth_entry(microsoft, stored_token())
    await set_up(hass, entry)
    expire(hass, entry)
    aioclient_mock.post(MICROSOFT_TOKEN_URL, status=400, json={"error": "invalid_grant"})
    with pytest.raises(HomeAssistantError) as raised:
        await hass.services.async_call(
            DOMAIN,
            "delete_message",
            {"config_entry_id": entry.entry_id, "uid": "uid-1"},
            blocking=True,
        )
    assert raised.value.translation_key == "sign_in_rejected"
    assert len(reauth_flows(hass)) == 1
    assert microsoft.mailbox.uids() == ["uid-1"]


async def test_archive_session_uses_the_token(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    microsoft: FakePOP3Server,
    tmp_path: Path,
) -> None:
    """The archive's own session logs in with the refreshed token, like the check's."""
    folder = tmp_path / "archive"
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    entry = oauth_entry(microsoft, stored_token())
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry, options={CONF_ARCHIVE_FOLDER: str(folder), CONF_DELETE_POLICY: "after_archive"}
    )
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    coordinator = entry.runtime_data
    microsoft.mailbox.add(mail(3))
    await coordinator.async_refresh()
    expire(hass, entry)
    microsoft.users[ADDRESS] = "access-2"
    aioclient_mock.post(MICROSOFT_TOKEN_URL, json=token_response("access-2"))
    await coordinator.async_refresh()
    assert coordinator.last_update_success
    assert [path.read_bytes() for path in (folder / "new").iterdir()] == [mail(3)]
    assert microsoft.mailbox.uids() == []
    assert len(refresh_calls(aioclient_mock)) == 1
    assert all(session.user == ADDRESS for session in microsoft.sessions)


async def test_token_longer_than_an_auth_line(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker, microsoft: FakePOP3Server
) -> None:
    """Microsoft's access tokens are JWTs of 1-3 KB, far past AUTH's 255-octet line limit."""
    long_token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + "x" * 2500 + ".sig"
    microsoft.users[ADDRESS] = long_token
    entry = oauth_entry(microsoft, stored_token(long_token))
    await set_up(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    assert microsoft.sessions[0].user == ADDRESS
    (auth_line,) = [write for write in microsoft.sessions[0].writes if write.startswith(b"AUTH")]
    # The token went after the server's "+ " continuation, not on the AUTH line.
    assert len(auth_line) <= 255
