"""Login decisions and payloads: which method to use, and what it sends. No I/O."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import TYPE_CHECKING, Final, Literal

from .errors import POP3Error

if TYPE_CHECKING:
    from .protocol import Capabilities

type LoginMethod = Literal["xoauth2", "plain", "user", "apop"]

#: RFC 5034: an AUTH line with its initial response may not exceed 255 octets.
MAX_AUTH_LINE: Final = 255
#: Longest XOAUTH2 error status kept: it is the server's text, headed for logs.
MAX_STATUS: Final = 100
_PRINTABLE: Final = re.compile(r"[^\x20-\x7e]")


def choose_login(
    capabilities: Capabilities,
    *,
    tls: bool,
    timestamp: str | None,
    oauth2: bool,
    allow_cleartext: bool,
) -> LoginMethod:
    """Pick the strongest login the server offers that keeps the secret safe.

    XOAUTH2 when a token is given; over TLS SASL PLAIN, else USER/PASS; without
    TLS APOP when the greeting carries a timestamp (the password never crosses
    the wire); a secret in clear text only when the caller allowed it.
    """
    if not tls and not oauth2 and timestamp is not None:
        return "apop"
    if not tls and not allow_cleartext:
        raise POP3Error("Refusing to send the password over a connection without TLS")
    if oauth2:
        return "xoauth2"
    return "plain" if "PLAIN" in capabilities.sasl else "user"


def apop_digest(timestamp: str, password: str) -> str:
    """RFC 1939 APOP digest: MD5 of the greeting's timestamp followed by the password."""
    # MD5 is what APOP is defined with; it is the server's choice, not ours.
    digest = hashlib.md5((timestamp + password).encode(), usedforsecurity=False)
    return digest.hexdigest()


def plain_payload(username: str, password: str) -> bytes:
    """RFC 4616 PLAIN message: no authorization identity, then user and password."""
    return b"\0" + username.encode() + b"\0" + password.encode()


def xoauth2_payload(username: str, token: str) -> bytes:
    """Google/Microsoft XOAUTH2 initial client response."""
    return f"user={username}\x01auth=Bearer {token}\x01\x01".encode()


def fits_initial_response(mechanism: str, payload: bytes) -> bool:
    """Whether `AUTH mechanism <base64>` stays within the RFC 5034 line limit."""
    return len(f"AUTH {mechanism} ") + len(base64.b64encode(payload)) + 2 <= MAX_AUTH_LINE


def xoauth2_error_status(challenge: bytes, token: str | None) -> str:
    """What a refused XOAUTH2 token's JSON challenge says, for a person; never the token.

    Gmail sends ``{"status":"401","schemes":"bearer","scope":"..."}``; others
    add an ``error``. The result is printable ASCII, at most `MAX_STATUS`
    characters, ``"unknown"`` when the challenge is not such JSON.
    """
    try:
        fields = json.loads(challenge)
    except ValueError:
        return "unknown"
    if not isinstance(fields, dict):
        return "unknown"
    parts = [str(fields[key]) for key in ("status", "error") if key in fields]
    text = _PRINTABLE.sub("?", " ".join(parts)) or "unknown"
    if token:
        text = text.replace(token, "***")
    return text[:MAX_STATUS]
