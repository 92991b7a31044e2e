"""Exceptions of the POP3 client.

One small hierarchy, so a caller catches at the level it cares about: every
error (`POP3Error`), the connection (`POP3ConnectionError`, also a built-in
`ConnectionError`; `POP3TimeoutError` is also a `TimeoutError`), the server
breaking the protocol (`POP3ProtocolError`), our own misuse of it
(`POP3LocalProtocolError`), or one answer of the server (`POP3ResponseError`,
with the RFC 3206 response code).
"""

from __future__ import annotations

from typing import Final

#: Longest server text kept in an error: a 20 MB -ERR line must not reach logs whole.
MAX_ERROR_TEXT: Final = 512


class POP3Error(Exception):
    """Base of every error the client raises; `str()` is a sentence for a person."""


class POP3ConnectionError(POP3Error, ConnectionError):
    """The server could not be reached, or the connection was lost."""


class POP3TimeoutError(POP3ConnectionError, TimeoutError):
    """An answer, or the whole session, ran past its deadline."""


class POP3TLSError(POP3ConnectionError):
    """The TLS handshake failed or the certificate was not trusted."""


class POP3ProtocolError(POP3Error):
    """The server broke the protocol, or one response was larger than allowed."""


class POP3AnswerTooLargeError(POP3ProtocolError):
    """One answer was larger than the session (or a check's memory budget) allows."""


#: The h11 name: the remote side broke the protocol.
POP3RemoteProtocolError = POP3ProtocolError


class POP3LocalProtocolError(POP3Error):
    """We asked for something the protocol does not allow (a bug or bad input, not the server).

    For example STAT before login, a command with CR or LF in an argument, or a
    message number of 0.
    """


class POP3STLSUnavailableError(POP3Error):
    """STLS was asked for but the server does not offer it (we never fall back to clear text)."""


class POP3ResponseError(POP3Error):
    """The server answered -ERR.

    `code` is the RFC 2449/3206 response code (such as ``"IN-USE"``) or None;
    `text` is the human-readable rest of the line.
    """

    def __init__(self, text: str, code: str | None = None, command: str | None = None) -> None:
        """Keep the server's `text` (cut to `MAX_ERROR_TEXT` characters)."""
        if len(text) > MAX_ERROR_TEXT:
            text = text[:MAX_ERROR_TEXT] + "…"
        self.text = text
        self.code = code
        self.command = command
        shown = f"[{code}] {text}" if code else text
        where = f" to {command}" if command else ""
        super().__init__(f"The server refused{where}: {shown}".rstrip())


class POP3AuthError(POP3ResponseError):
    """Credentials rejected ([AUTH], or a -ERR to PASS/APOP/AUTH).

    `status` is what a refused XOAUTH2 token's JSON challenge said (such as
    ``"401"`` or ``"invalid_token"``), bounded, or None.
    """

    def __init__(
        self,
        text: str,
        code: str | None = None,
        command: str | None = None,
        *,
        status: str | None = None,
    ) -> None:
        """Keep the server's text, and the XOAUTH2 status when there was one."""
        super().__init__(text, code, command)
        self.status = status
        if status is not None:
            self.args = (f"{self.args[0]} (XOAUTH2 status {status})",)


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
