"""Checks of the repository's metadata: manifest.json, hacs.json, translations, brand images."""

from __future__ import annotations

import json
from pathlib import Path
import re
import struct
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION = ROOT / "custom_components" / "pop3_mail"

# Keys HACS accepts in hacs.json (its integration schema).
HACS_KEYS = {
    "name",
    "content_in_root",
    "zip_release",
    "filename",
    "hide_default_branch",
    "country",
    "homeassistant",
    "hacs",
    "persistent_directory",
    "render_readme",
}


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_manifest_follows_hassfest_rules() -> None:
    manifest = _load(INTEGRATION / "manifest.json")
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:]), "after domain and name, keys are alphabetical"
    assert keys == [
        "domain",
        "name",
        "codeowners",
        "config_flow",
        "dependencies",
        "documentation",
        "integration_type",
        "iot_class",
        "issue_tracker",
        "loggers",
        "requirements",
        "version",
    ]
    assert manifest["domain"] == "pop3_mail"
    assert manifest["name"] == "POP3 Mail"
    assert manifest["config_flow"] is True
    # Sign-in with Microsoft stores its client id and secret as application credentials.
    assert manifest["dependencies"] == ["application_credentials"]
    assert manifest["integration_type"] == "service"
    assert manifest["iot_class"] == "cloud_polling"
    assert manifest["requirements"] == ["aiofiles>=24.1.0"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert all(owner.startswith("@") for owner in manifest["codeowners"])
    assert manifest["documentation"].startswith("https://")
    assert manifest["issue_tracker"].startswith("https://")


def test_hacs_json() -> None:
    hacs = _load(ROOT / "hacs.json")
    assert set(hacs) <= HACS_KEYS
    assert hacs["name"] == "POP3 Mail"
    assert hacs["homeassistant"] == "2025.4.0"
    assert re.fullmatch(r"\d{4}\.\d{1,2}\.\d+", hacs["homeassistant"])


def test_repository_files_exist() -> None:
    for name in ("README.md", "info.md", "LICENSE", "hacs.json"):
        assert (ROOT / name).is_file(), name
    assert not (INTEGRATION / "strings.json").exists(), "custom integrations ship translations only"


def _keys(tree: Any, prefix: str = "") -> set[str]:
    if isinstance(tree, dict):
        out: set[str] = set()
        for key, value in tree.items():
            out |= _keys(value, f"{prefix}{key}.")
        return out
    return {prefix.rstrip(".")}


def _placeholders(tree: Any) -> dict[str, set[str]]:
    return {key: set(re.findall(r"\{(\w+)\}", str(value))) for key, value in _flatten(tree).items()}


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out |= _flatten(value, f"{prefix}{key}.")
        return out
    return {prefix.rstrip("."): tree}


TRANSLATIONS = sorted((INTEGRATION / "translations").glob("*.json"))


def test_english_and_spanish_ship() -> None:
    assert {path.name for path in TRANSLATIONS} >= {"en.json", "es.json"}


@pytest.mark.parametrize("path", TRANSLATIONS, ids=lambda p: p.name)
def test_translation_matches_english(path: Path) -> None:
    english = _load(INTEGRATION / "translations" / "en.json")
    other = _load(path)
    assert _keys(other) == _keys(english)
    assert _placeholders(other) == _placeholders(english), "placeholders must survive translation"
    assert all(str(value).strip() for value in _flatten(other).values()), "no empty strings"


@pytest.mark.parametrize(("name", "size"), [("icon.png", 256), ("icon@2x.png", 512)])
def test_brand_icon(name: str, size: int) -> None:
    data = (INTEGRATION / "brand" / name).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (size, size)
