"""Exceptions of the POP3 client.

One small hierarchy, so a caller catches at the level it cares about: every
error (`POP3Error`), the connection (`POP3ConnectionError`), or one answer of
the server (`POP3ResponseError`, with the RFC 3206 response code).
"""

from __future__ import annotations


class POP3Error(Exception):
    """Base of every error the client raises; `str()` is a sentence for a person."""


class POP3ConnectionError(POP3Error):
    """The server could not be reached, or the connection was lost."""


class POP3TimeoutError(POP3ConnectionError):
    """A command, or the whole session, ran past its deadline."""


class POP3TLSError(POP3ConnectionError):
    """The TLS handshake failed or the certificate was not trusted."""


class POP3ProtocolError(POP3Error):
    """The server broke the protocol, or one response was larger than allowed."""


class POP3STLSUnavailableError(POP3Error):
    """STLS was asked for but the server does not offer it (we never fall back to clear text)."""


class POP3ResponseError(POP3Error):
    """The server answered -ERR.

    `code` is the RFC 2449/3206 response code (such as ``"IN-USE"``) or None;
    `text` is the human-readable rest of the line.
    """

    def __init__(self, text: str, code: str | None = None, command: str | None = None) -> None:
        self.text = text
        self.code = code
        self.command = command
        shown = f"[{code}] {text}" if code else text
        where = f" to {command}" if command else ""
        super().__init__(f"The server refused{where}: {shown}".rstrip())


class POP3AuthError(POP3ResponseError):
    """Credentials rejected ([AUTH], or a -ERR to PASS/APOP/AUTH)."""


class POP3PlaintextRefusedError(POP3ResponseError):
    """The server will not accept a password without TLS; not a wrong password."""


class POP3InUseError(POP3ResponseError):
    """[IN-USE]: another session holds the mailbox lock."""


class POP3LoginDelayError(POP3ResponseError):
    """[LOGIN-DELAY]: logged in again sooner than the server allows."""


class POP3TempError(POP3ResponseError):
    """[SYS/TEMP]: a temporary problem on the server."""


class POP3PermError(POP3ResponseError):
    """[SYS/PERM]: a permanent problem on the server."""
