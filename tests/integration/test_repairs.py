"""Tests of the `insecure_connection` repair issue."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_VERIFY_SSL
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.pop3_mail.const import CONF_SECURITY, DOMAIN
from custom_components.pop3_mail.repairs import (
    insecure_connection_issue_id,
    is_insecure_connection,
    is_loopback_host,
)
from tests.integration.conftest import INITIAL_MESSAGES, PASSWORD, USERNAME, login_faults
from tests.servers.fake_pop3 import err

if TYPE_CHECKING:
    from collections.abc import Iterator

    from homeassistant.core import HomeAssistant

    from tests.servers.certs import TestPKI
    from tests.servers.fake_pop3 import FakePOP3Server
    from tests.servers.fixtures import FakePOP3Factory

REMOTE_HOST = "mail.example.com"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LocalHost.", True),
        ("pop.localhost", True),
        (" localhost ", True),
        # Every spelling of 127/8 the resolver accepts (inet_aton's short and numeric forms).
        ("127.1", True),
        ("127.0.1", True),
        ("127.255.255.254", True),
        ("2130706433", True),
        ("0x7f000001", True),
        ("0x7f.1", True),
        ("0177.0.0.1", True),
        ("0:0:0:0:0:0:0:1", True),
        ("::ffff:7f00:1", True),
        ("[::ffff:127.0.0.1]", True),
        ("::1%lo", True),
        # Text inet_aton would cut at the space: the resolver takes it for a name.
        ("127.0.0.1 mail.example.com", False),
        ("127.0.0.1.", False),
        ("10.1", False),
        ("0x0a000001", False),
        ("8.8.8.8", False),
        ("0.0.0.0", False),  # noqa: S104 (a host name to judge, not a bind address)
        ("::", False),
        ("::ffff:127.1", False),
        ("10.0.0.1", False),
        ("192.168.1.10", False),
        ("::ffff:10.0.0.1", False),
        ("fe80::1", False),
        ("203.0.113.5", False),
        ("mail.example.com", False),
        ("localhost.example.com", False),
        ("my-localhost", False),
        ("127.0.0.1.nip.io", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    """Only literal loopback addresses and the reserved localhost names count as local."""
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("security", "host", "insecure"),
    [
        ("none", "mail.example.com", True),
        ("none", "127.0.0.1", False),
        ("ssl", "mail.example.com", False),
        ("starttls", "mail.example.com", False),
    ],
)
def test_is_insecure_connection(security: str, host: str, insecure: bool) -> None:
    """Clear text is insecure only when it leaves the machine."""
    assert is_insecure_connection(security, host) is insecure


@pytest.fixture
def remote_host(hass: HomeAssistant) -> Iterator[None]:
    """Resolve REMOTE_HOST to the fake server on 127.0.0.1 (the one edge faked here)."""
    resolve = hass.loop.getaddrinfo

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == REMOTE_HOST:
            return [
                (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))
            ]
        return await resolve(host, port, *args, **kwargs)

    with patch.object(hass.loop, "getaddrinfo", getaddrinfo):
        yield


def remote_entry(entry_data: dict[str, Any]) -> MockConfigEntry:
    """An entry for alice's mailbox on REMOTE_HOST, with the settings of `entry_data`."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"{USERNAME}@{REMOTE_HOST}",
        unique_id=f"{USERNAME}@{REMOTE_HOST}",
        data={**entry_data, CONF_HOST: REMOTE_HOST},
    )


async def test_no_issue_on_loopback(
    hass: HomeAssistant, init_integration: MockConfigEntry, issue_registry: ir.IssueRegistry
) -> None:
    """Clear text to 127.0.0.1 never leaves the machine: no issue."""
    assert init_integration.data[CONF_SECURITY] == "none"
    assert init_integration.state is ConfigEntryState.LOADED
    assert not [issue for (domain, _), issue in issue_registry.issues.items() if domain == DOMAIN]


@pytest.mark.usefixtures("remote_host")
async def test_insecure_connection_issue(
    hass: HomeAssistant, entry_data: dict[str, Any], issue_registry: ir.IssueRegistry
) -> None:
    """Clear text to another machine raises a warning while the entry is loaded."""
    entry = remote_entry(entry_data)
    entry.add_to_hass(hass)
    issue_id = insecure_connection_issue_id(entry.entry_id)

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.WARNING
    assert issue.translation_key == "insecure_connection"
    assert issue.translation_placeholders == {"mailbox": entry.title, "host": REMOTE_HOST}
    assert not issue.is_fixable

    await hass.config_entries.async_unload(entry.entry_id)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None

    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


@pytest.mark.usefixtures("remote_host")
async def test_issue_stays_while_setup_retries(
    hass: HomeAssistant,
    entry_data: dict[str, Any],
    issue_registry: ir.IssueRegistry,
    pop3_server: FakePOP3Server,
) -> None:
    """A failing setup retries, sending the password each time: the warning stays up."""
    pop3_server.faults.extend(login_faults(err("[SYS/TEMP] try later")))
    entry = remote_entry(entry_data)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert issue_registry.async_get_issue(DOMAIN, insecure_connection_issue_id(entry.entry_id))

    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert not issue_registry.async_get_issue(DOMAIN, insecure_connection_issue_id(entry.entry_id))


@pytest.mark.usefixtures("remote_host")
async def test_issue_cleared_by_reconfigure(
    hass: HomeAssistant,
    fake_pop3: FakePOP3Factory,
    test_pki: TestPKI,
    entry_data: dict[str, Any],
    issue_registry: ir.IssueRegistry,
) -> None:
    """Switching the entry to STARTTLS removes the issue once the entry reloads."""
    server = await fake_pop3(
        users={USERNAME: PASSWORD},
        messages=INITIAL_MESSAGES,
        stls_context=test_pki.server_context(),
    )
    entry = remote_entry({**entry_data, "port": server.port})
    entry.add_to_hass(hass)
    issue_id = insecure_connection_issue_id(entry.entry_id)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None

    hass.config_entries.async_update_entry(
        entry, data={**entry.data, CONF_SECURITY: "starttls", CONF_VERIFY_SSL: False}
    )
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert server.sessions[-1].tls
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
