"""Fixtures of the Home Assistant layer's tests: a config entry against the fake POP3 server.

- `pop3_server`: the fake server (tests/servers/fake_pop3.py) with `INITIAL_MESSAGES`;
  override `server_options` to start it differently.
- `entry_data` / `entry_options`: what the config entry holds (clear text on 127.0.0.1,
  alice/secret); override them in a test module or with `pytest.mark.parametrize`.
- `mock_config_entry`: the entry, not yet added to Home Assistant.
- `init_integration`: the entry set up (its first check, the baseline, done).
- `snapshot`: syrupy with Home Assistant's serializer, one snapshot folder per Home
  Assistant release family, because the entity registry serialises differently in each.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    MAJOR_VERSION,
    MINOR_VERSION,
)
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension

from custom_components.pop3_mail.const import CONF_SECURITY, DOMAIN
from tests.servers.fake_pop3 import Fault, FaultAction

if TYPE_CHECKING:
    from collections.abc import Iterator

    from homeassistant.core import HomeAssistant
    from syrupy.assertion import SnapshotAssertion
    from syrupy.location import PyTestLocation

    from tests.servers.fake_pop3 import FakePOP3Server
    from tests.servers.fixtures import FakePOP3Factory

USERNAME = "alice"
PASSWORD = "secret"
MAILBOX = f"{USERNAME}@127.0.0.1"


def mail(
    n: int,
    *,
    sender: str = "Bob Example <Bob@Example.com>",
    subject: str | None = None,
    body: str = "Hello Alice,\r\nthis is a test.\r\n",
    extra_headers: str = "",
) -> bytes:
    """Return message number `n` of a test: distinct subject, Message-ID and date per `n`."""
    subject = f"Message {n}" if subject is None else subject
    return (
        f"From: {sender}\r\n"
        f"To: Alice <alice@example.com>\r\n"
        f"Subject: {subject}\r\n"
        f"Date: Tue, 1 Jul 2025 10:{n % 60:02d}:00 +0200\r\n"
        f"Message-ID: <m{n}@example.com>\r\n"
        f"{extra_headers}"
        f"\r\n"
        f"{body}"
    ).encode()


INITIAL_MESSAGES = (mail(1), mail(2))

# Which login the client picks depends on the server (APOP, AUTH PLAIN, USER/PASS).
LOGIN_COMMANDS = ("APOP", "AUTH", "PASS")


def login_faults(action: FaultAction) -> list[Fault]:
    """Faults that answer the next login with `action`, whichever command it uses."""
    return [Fault(command, action) for command in LOGIN_COMMANDS]


class VersionedSnapshotExtension(HomeAssistantSnapshotExtension):
    """Home Assistant's snapshot format, in a folder per Home Assistant `major.minor`.

    The folders are `snapshots/ha<major>.<minor>`, outside `__snapshots__`: syrupy's default
    extensions search `__snapshots__` recursively, and `--snapshot-update` would delete the
    other release's snapshots as unused.
    """

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        """Return `snapshots/ha<major>.<minor>` next to the test module."""
        return str(
            Path(test_location.filepath).parent / "snapshots" / f"ha{MAJOR_VERSION}.{MINOR_VERSION}"
        )


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Syrupy with Home Assistant's serializer, kept per Home Assistant release."""
    return snapshot.use_extension(VersionedSnapshotExtension)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> Iterator[None]:
    """Let Home Assistant load the integration from custom_components/."""
    return


@pytest.fixture
def server_options() -> dict[str, Any]:
    """Keyword arguments of the fake POP3 server."""
    return {"users": {USERNAME: PASSWORD}, "messages": INITIAL_MESSAGES}


@pytest.fixture
async def pop3_server(fake_pop3: FakePOP3Factory, server_options: dict[str, Any]) -> FakePOP3Server:
    """The fake POP3 server the entry points at."""
    return await fake_pop3(**server_options)


@pytest.fixture
def entry_data(pop3_server: FakePOP3Server) -> dict[str, Any]:
    """The data of the config entry: clear text is fine on loopback."""
    return {
        CONF_HOST: pop3_server.host,
        CONF_PORT: pop3_server.port,
        CONF_SECURITY: "none",
        CONF_USERNAME: USERNAME,
        CONF_PASSWORD: PASSWORD,
        CONF_VERIFY_SSL: True,
    }


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """The options of the config entry (none: every default)."""
    return {}


@pytest.fixture
def mock_config_entry(entry_data: dict[str, Any], entry_options: dict[str, Any]) -> MockConfigEntry:
    """The config entry of alice's mailbox, not yet added to Home Assistant."""
    return MockConfigEntry(
        domain=DOMAIN,
        # Fixed, so the unique ids in the snapshots do not change from run to run.
        entry_id="01JZPOP3MA1LTESTENTRY00001",
        title=f"{entry_data[CONF_USERNAME]}@{entry_data[CONF_HOST]}",
        unique_id=f"{entry_data[CONF_USERNAME]}@{entry_data[CONF_HOST]}".lower(),
        data=entry_data,
        options=entry_options,
        version=1,
        minor_version=1,
    )


@pytest.fixture
async def init_integration(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> MockConfigEntry:
    """The entry, set up: its first check (the baseline) is done."""
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    return mock_config_entry
