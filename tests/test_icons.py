"""Every icon icons.json names must exist in the Material Design Icons the frontend ships."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hass_frontend
import pytest

ICONS = Path(__file__).resolve().parent.parent / "custom_components/pop3_mail/icons.json"


def _icons(tree: Any) -> set[str]:
    if isinstance(tree, dict):
        return set().union(*(_icons(value) for value in tree.values()))
    return {tree}


@pytest.fixture(scope="module")
def known_icons() -> set[str]:
    icon_list = Path(hass_frontend.__file__).parent / "static" / "mdi" / "iconList.json"
    return {f"mdi:{entry['name']}" for entry in json.loads(icon_list.read_text())}


def test_icons_exist(known_icons: set[str]) -> None:
    used = _icons(json.loads(ICONS.read_text()))
    assert used, "icons.json names no icon"
    assert used <= known_icons, f"unknown icons: {sorted(used - known_icons)}"
