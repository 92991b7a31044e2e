"""Command encoding: a command value in, the exact line to write out. No state, no I/O."""

from __future__ import annotations

import base64
import re
from typing import Final

from .errors import POP3LocalProtocolError
from .events import Apop, Auth, AuthReply, Command, Greeting, Pass, User, verb
from .requests import Dele, Retr, Sizes, Top, Uidl

#: RFC 1939 numbers are unsigned and we keep them within 64 bits on both sides.
MAX_NUMBER: Final = 2**64 - 1
_UNSAFE: Final = re.compile(r"[\x00\r\n]")


def encode(command: Command | AuthReply) -> bytes:
    """The command line for `command`, CRLF included.

    Raises `POP3LocalProtocolError` for what no server may receive: CR, LF or
    NUL in an argument (a second command smuggled into the line), a message
    number below 1 or above 2^64-1, or the greeting (which is never sent).
    """
    match command:
        case Greeting():
            raise POP3LocalProtocolError("The greeting is not sent")
        case AuthReply(data):
            return base64.b64encode(data) + b"\r\n"
        case Auth(mechanism, initial):
            words = [mechanism] if initial is None else [mechanism, _initial_response(initial)]
        case User(name):
            words = [name]
        case Pass(password):
            words = [password]
        case Apop(name, digest):
            words = [name, digest]
        case Top(msg, lines):
            words = [_number(msg), _number(lines, minimum=0)]
        case Retr(msg) | Dele(msg):
            words = [_number(msg)]
        case Sizes(msg) | Uidl(msg):
            words = [] if msg is None else [_number(msg)]
        case _:
            words = []
    if any(_UNSAFE.search(word) for word in words):
        raise POP3LocalProtocolError(f"{verb(command)} arguments cannot hold CR, LF or NUL")
    return " ".join([verb(command), *words]).encode() + b"\r\n"


def _initial_response(data: bytes) -> str:
    # RFC 5034: an empty initial response is sent as "=".
    return base64.b64encode(data).decode() or "="


def _number(value: int, *, minimum: int = 1) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_NUMBER:
        raise POP3LocalProtocolError(f"Expected an integer from {minimum} to 2^64-1, got {value!r}")
    return str(value)
