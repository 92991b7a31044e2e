"""Diagnostics of a Microsoft entry: the tokens and the mailbox address are redacted."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)

from tests.integration.microsoft import (
    ADDRESS,
    credential,
    id_token,
    microsoft,
    oauth_entry,
    stored_token,
)

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

    from tests.servers.fake_pop3 import FakePOP3Server

__all__ = ["credential", "microsoft"]  # fixtures

pytestmark = pytest.mark.usefixtures("socket_enabled", "credential")


async def test_diagnostics_redact_the_tokens(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, microsoft: FakePOP3Server
) -> None:
    """No access, refresh or id token, and no address, reaches the diagnostics."""
    token = stored_token()
    entry = oauth_entry(microsoft, token)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert diagnostics["entry"]["data"]["token"] == "**REDACTED**"
    assert diagnostics["entry"]["data"]["auth_implementation"] == entry.data["auth_implementation"]
    text = repr(diagnostics)
    for secret in (token["access_token"], token["refresh_token"], id_token({"x": 1})[:20]):
        assert secret not in text
    assert ADDRESS not in text
    assert ADDRESS.lower() not in text
