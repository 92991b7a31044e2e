"""The pure parts of sign-in with Microsoft: the id token's mailbox, refresh verdicts."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given, strategies as st
import pytest

from custom_components.pop3_mail import application_credentials
from custom_components.pop3_mail.oauth import mailbox_address, refresh_rejected
from tests.integration.microsoft import id_token


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"preferred_username": "Alice@Outlook.com"}, "Alice@Outlook.com"),
        ({"preferred_username": " alice@contoso.com ", "email": "x@y.z"}, "alice@contoso.com"),
        ({"email": "alice@contoso.com"}, "alice@contoso.com"),
        # A phone-number sign-in name is not a mailbox; the email claim is.
        ({"preferred_username": "+34600000000", "email": "alice@contoso.com"}, "alice@contoso.com"),
        ({"preferred_username": "+34600000000"}, None),
        ({}, None),
        ({"preferred_username": 42}, None),
        ({"preferred_username": "alice@contoso.com\r\nDELE 1"}, None),
        ({"preferred_username": "alice @contoso.com"}, None),
        ({"preferred_username": "alice@contoso.com\x00"}, None),
        ({"preferred_username": "a" * 400 + "@contoso.com"}, None),
    ],
)
def test_mailbox_address(claims: dict[str, Any], expected: str | None) -> None:
    assert mailbox_address({"id_token": id_token(claims)}) == expected


@pytest.mark.parametrize(
    "token",
    [
        {},
        {"id_token": None},
        {"id_token": "not-a-jwt"},
        {"id_token": "a.b"},
        {"id_token": "a.!!!.c"},
        {"id_token": "a." + base64.urlsafe_b64encode(b"not json").decode() + ".c"},
        {"id_token": "a." + base64.urlsafe_b64encode(b'["a list"]').decode() + ".c"},
        {"id_token": "a." + base64.urlsafe_b64encode(b"\xff\xfe").decode() + ".c"},
    ],
)
def test_broken_id_token_names_no_mailbox(token: dict[str, Any]) -> None:
    assert mailbox_address(token) is None


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=40) | st.integers(), max_size=4))
def test_any_claims_give_an_address_or_none(claims: dict[str, Any]) -> None:
    """Whatever the claims, the answer is None or a printable address without spaces."""
    address = mailbox_address({"id_token": id_token(claims)})
    assert address is None or (
        "@" in address and address.isprintable() and not any(c.isspace() for c in address)
    )


@given(st.binary(max_size=200))
def test_any_payload_bytes_never_raise(payload: bytes) -> None:
    encoded = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    assert mailbox_address({"id_token": f"h.{encoded}.s"}) in (None, *_addresses(payload))


def _addresses(payload: bytes) -> list[str]:
    try:
        claims = json.loads(payload)
    except ValueError:
        return []
    if not isinstance(claims, dict):
        return []
    return [str(value).strip() for value in claims.values()]


@pytest.mark.parametrize(
    ("status", "rejected"),
    [(400, True), (401, True), (403, True), (429, False), (500, False), (503, False), (200, False)],
)
def test_refresh_rejected(status: int, rejected: bool) -> None:
    """4xx is the endpoint's verdict on the grant; 429 and 5xx are its own trouble."""
    assert refresh_rejected(status) is rejected


def test_deeply_nested_claims_name_no_mailbox() -> None:
    """JSON nested past the parser's recursion limit is a broken token, not a crash."""
    payload = base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode()
    assert mailbox_address({"id_token": f"h.{payload}.s"}) is None


async def test_application_credentials_describe_the_entra_app() -> None:
    """The "Add application credential" dialog names the redirect URI and the POP permission."""
    placeholders = await application_credentials.async_get_description_placeholders(None)  # type: ignore[arg-type]
    assert placeholders["redirect_url"] == "https://my.home-assistant.io/redirect/oauth"
    assert placeholders["scope"] == "POP.AccessAsUser.All"
    server = await application_credentials.async_get_authorization_server(None)  # type: ignore[arg-type]
    assert server.authorize_url == "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
    assert server.token_url == "https://login.microsoftonline.com/common/oauth2/v2.0/token"
