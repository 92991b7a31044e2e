"""Prepares the demo's Home Assistant config folder (`config/`) before each start.

Runtime files from an earlier run are removed, so every start is a fresh install
that is already onboarded: an owner user (demo / demo-pop3) made with Home
Assistant's own auth APIs, the onboarding steps marked done, the demo dashboard as
the default dashboard, and a config entry for the demo mailbox. The integration is
loaded from the working tree through a symlink, like the blueprint.

    python -m demo.bootstrap --config config --pop3-port 10110    # normally run by scripts/demo
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path
import shutil
from typing import TYPE_CHECKING, Any

from homeassistant.auth import auth_manager_from_config
from homeassistant.auth.const import GROUP_ID_ADMIN
from homeassistant.auth.providers import homeassistant as hass_auth
from homeassistant.components.onboarding.const import STEPS
from homeassistant.core import CoreState, HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.util import dt as dt_util
from homeassistant.util.ulid import ulid_now
from homeassistant.util.yaml import load_yaml_dict

from demo.mailserver import DEMO_PASSWORD, DEMO_USERNAME

if TYPE_CHECKING:
    from collections.abc import Mapping

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"
DOMAIN = "pop3_mail"

LOGIN_USERNAME = "demo"
LOGIN_PASSWORD = "demo-pop3"  # noqa: S105 (the demo prints it; loopback only)
OWNER_NAME = "Demo"

# Checks every 10 s (the integration's minimum), so the dashboard follows mail that
# arrives every 30 s; 500 characters of body text reach the alarm notification.
DEMO_SCAN_INTERVAL = 10
DEMO_TEXT_LENGTH = 500
DEFAULT_HTTP_PORT = 8123

# What a run leaves in the config folder; all of it is ignored by git.
RUNTIME_FILES = (
    ".storage",
    ".HA_VERSION",
    "deps",
    "tts",
    "blueprints",
    "custom_components",
    "packages",
)
RUNTIME_GLOBS = ("home-assistant_v2.db*", "home-assistant.log*", ".ha_run.lock")


def entry_data(host: str, port: int) -> dict[str, Any]:
    """The demo mailbox's config entry data (what the config flow would store)."""
    return {
        "host": host,
        "security": "none",
        "port": port,
        "username": DEMO_USERNAME,
        "password": DEMO_PASSWORD,
        "verify_ssl": True,
    }


def entry_options(scan_interval: int = DEMO_SCAN_INTERVAL) -> dict[str, Any]:
    """The demo mailbox's options (what the options flow would store)."""
    return {
        "scan_interval": scan_interval,
        "text_length": DEMO_TEXT_LENGTH,
        "delete_policy": "keep",
        "keep_days": 14,
    }


def watches() -> list[dict[str, Any]]:
    """The demo mailbox's watches (config subentries, as the "Add watch" flow stores them)."""
    return [
        {"name": "Alarm", "sender": "alarm@demo.example"},
        {"name": "Facturas", "subject": "factura"},
    ]


def mailbox_name(host: str) -> str:
    """The entry's title and unique id, as the config flow makes them."""
    return f"{DEMO_USERNAME}@{host}".lower()


def dashboard_config(config_dir: Path) -> dict[str, Any]:
    """The demo dashboard (config/dashboards/pop3_mail.yaml) as Lovelace stores it."""
    return dict(load_yaml_dict(config_dir / "dashboards" / "pop3_mail.yaml"))


def _flow_versions() -> tuple[int, int]:
    """The entry version the integration's config flow writes (1.1 until it says more)."""
    try:
        from custom_components.pop3_mail.config_flow import (  # noqa: PLC0415
            Pop3MailConfigFlow,
        )
    except ImportError:
        return 1, 1
    return Pop3MailConfigFlow.VERSION, Pop3MailConfigFlow.MINOR_VERSION


def _store_document(key: str, version: int, data: Any, minor_version: int = 1) -> dict[str, Any]:
    """A file of Home Assistant's `.storage` folder."""
    return {"version": version, "minor_version": minor_version, "key": key, "data": data}


def _write_private(path: Path, document: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
    path.chmod(0o600)


def _link(link: Path, target: Path) -> None:
    """A relative symlink (config/custom_components/pop3_mail -> ../../custom_components/...)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent), target_is_directory=True)


def reset(config_dir: Path) -> None:
    """Remove everything an earlier run left behind and link the working tree in."""
    for name in RUNTIME_FILES:
        target = config_dir / name
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
    for pattern in RUNTIME_GLOBS:
        for target in config_dir.glob(pattern):
            target.unlink()
    _link(config_dir / "custom_components" / DOMAIN, ROOT / "custom_components" / DOMAIN)
    _link(
        config_dir / "blueprints" / "automation" / DOMAIN,
        ROOT / "blueprints" / "automation" / DOMAIN,
    )
    (config_dir / ".storage").mkdir()


async def create_owner(config_dir: Path, username: str, password: str) -> None:
    """Create the owner user with Home Assistant's auth APIs (as onboarding does)."""
    hass = HomeAssistant(str(config_dir))
    # Newer releases load the device registry during auth setup, which needs both registries.
    if hasattr(dr, "async_setup"):
        from homeassistant.config_entries import ConfigEntries  # noqa: PLC0415

        hass.config_entries = ConfigEntries(hass, {})
        await hass.config_entries.async_initialize()
        dr.async_setup(hass)
    await asyncio.gather(dr.async_load(hass), er.async_load(hass))
    hass.auth = await auth_manager_from_config(hass, [{"type": "homeassistant"}], [])
    provider = hass.auth.auth_providers[0]
    assert isinstance(provider, hass_auth.HassAuthProvider)  # noqa: S101
    await provider.async_initialize()
    await provider.async_add_auth(username, password)
    user = await hass.auth.async_create_user(OWNER_NAME, group_ids=[GROUP_ID_ADMIN])
    credentials = await provider.async_get_or_create_credentials({"username": username})
    await hass.auth.async_link_user(user, credentials)
    logging.getLogger("homeassistant.core").setLevel(logging.WARNING)
    # Stopping a running instance writes the auth store, whose saves are delayed.
    hass.set_state(CoreState.running)
    await hass.async_stop()
    if not user.is_owner:
        raise RuntimeError("the demo user did not become the owner")


def write_http_settings(config_dir: Path, http_port: int) -> None:
    """Serve on 127.0.0.1:`http_port`, where each release keeps that setting.

    Newer releases keep the HTTP settings in `.storage/http` (and flag an `http:` key in
    configuration.yaml as deprecated); older ones read only YAML, so there the settings
    go into a package that configuration.yaml includes.
    """
    settings = {"server_host": ["127.0.0.1"], "server_port": http_port}
    try:
        from homeassistant.components.http import (  # type: ignore[attr-defined,unused-ignore]  # noqa: PLC0415
            config as http_config,
        )
    except ImportError:
        packages = config_dir / "packages"
        packages.mkdir(exist_ok=True)
        # JSON is YAML too.
        (packages / "demo_http.yaml").write_text(json.dumps({"http": settings}))
        return
    stable = {
        **http_config.HTTP_STORAGE_SCHEMA(settings),
        "created_at": dt_util.utcnow().isoformat(),
        "error": None,
        "error_message": None,
    }
    _write_private(
        config_dir / ".storage" / http_config.STORAGE_KEY,
        _store_document(
            http_config.STORAGE_KEY,
            http_config.STORAGE_VERSION,
            {"stable": stable, "pending": None, "yaml_migration_done": True},
            minor_version=http_config.STORAGE_MINOR_VERSION,
        ),
    )


def write_seed_files(
    config_dir: Path, *, host: str, port: int, scan_interval: int = DEMO_SCAN_INTERVAL
) -> str:
    """Onboarding done, the dashboard and the demo mailbox's config entry; returns its id."""
    storage = config_dir / ".storage"
    _write_private(storage / "onboarding", _store_document("onboarding", 4, {"done": list(STEPS)}))
    _write_private(
        storage / "lovelace",
        _store_document("lovelace", 1, {"config": dashboard_config(config_dir)}),
    )
    version, minor_version = _flow_versions()
    entry_id = ulid_now()
    entry = {
        "entry_id": entry_id,
        "version": version,
        "minor_version": minor_version,
        "domain": DOMAIN,
        "title": mailbox_name(host),
        "data": entry_data(host, port),
        "options": entry_options(scan_interval),
        "pref_disable_new_entities": False,
        "pref_disable_polling": False,
        "source": "user",
        "unique_id": mailbox_name(host),
        "disabled_by": None,
        "subentries": [
            {
                "subentry_id": ulid_now(),
                "subentry_type": "watch",
                "title": watch["name"],
                "data": watch,
                "unique_id": None,
            }
            for watch in watches()
        ],
    }
    # Written in the storage format 1.1; Home Assistant migrates it to its own on load.
    _write_private(
        storage / "core.config_entries",
        _store_document("core.config_entries", 1, {"entries": [entry]}, minor_version=1),
    )
    return entry_id


def bootstrap(
    config_dir: Path,
    *,
    host: str,
    port: int,
    http_port: int = DEFAULT_HTTP_PORT,
    scan_interval: int = DEMO_SCAN_INTERVAL,
) -> str:
    """Everything above, in order; returns the config entry id."""
    reset(config_dir)
    asyncio.run(create_owner(config_dir, LOGIN_USERNAME, LOGIN_PASSWORD))
    write_http_settings(config_dir, http_port)
    return write_seed_files(config_dir, host=host, port=port, scan_interval=scan_interval)


def main() -> None:
    """Command line: seed a config folder for a POP3 server already listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG_DIR)
    parser.add_argument("--pop3-host", default="127.0.0.1")
    parser.add_argument("--pop3-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT)
    parser.add_argument("--scan-interval", type=int, default=DEMO_SCAN_INTERVAL)
    args = parser.parse_args()
    os.umask(0o077)
    entry_id = bootstrap(
        args.config.resolve(),
        host=args.pop3_host,
        port=args.pop3_port,
        http_port=args.http_port,
        scan_interval=args.scan_interval,
    )
    print(f"seeded {args.config} (config entry {entry_id})")


if __name__ == "__main__":
    main()
