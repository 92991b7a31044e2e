"""Every icon icons.json names must exist in the frontends of both supported Home Assistants.

A missing name shows as a blank icon, with no error anywhere. tests/data/mdi_icons.txt holds
the icon names both frontends ship (2025.4 and 2026.10): the names in
`hass_frontend/static/mdi/iconList.json` of package home-assistant-frontend 20250411.0 and
20260930.5, intersected. The frontend is not a test requirement (268 MB), hence the list.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
ICONS = ROOT.parent / "custom_components/pop3_mail/icons.json"
KNOWN = ROOT / "data" / "mdi_icons.txt"


def _icons(tree: Any) -> set[str]:
    if isinstance(tree, dict):
        return set().union(*(_icons(value) for value in tree.values()))
    return {tree}


def test_icons_exist() -> None:
    known = {f"mdi:{line}" for line in KNOWN.read_text().splitlines() if line and line[0] != "#"}
    used = _icons(json.loads(ICONS.read_text()))
    assert len(known) > 7000
    assert used, "icons.json names no icon"
    assert used <= known, f"unknown icons: {sorted(used - known)}"
