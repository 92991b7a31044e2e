"""Parsing what the server sends: status lines, one-line values, listings, message bodies.

Pure functions over bytes; `protocol.POP3Protocol` decides which one applies.
Every rule a hostile server could probe is here, and each raises
`POP3ProtocolError`:

- numbers are 1 to 20 digits and at most 2^64-1; message numbers start at 1;
- a UID is 1 to 70 characters from 0x21 to 0x7E (RFC 1939 section 7);
- a listing (LIST, UIDL) names each message once;
- a status line is at most `MAX_STATUS_LINE` octets, a listing or CAPA line at
  most `MAX_LIST_LINE` (RFC 2449 section 4: 512 octets with the CRLF);
- the lines of a message (TOP, RETR) are bounded only by the answer's size
  cap: RFC 5322's 998 is broken by real mail, and refusing such a message
  would let any outside sender block the mailbox. Parsing is linear whatever
  the line length.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from .errors import MAX_ERROR_TEXT, POP3ProtocolError
from .events import Capabilities, Command, Reply, verb
from .requests import Result, Sizes, Stat, StatResult, Uidl
from .writers import MAX_NUMBER

#: Longest status line (+OK/-ERR and its text) we read before calling it an attack.
MAX_STATUS_LINE: Final = 8192
#: RFC 2449 section 4: a response line is at most 512 octets, CRLF included.
MAX_LIST_LINE: Final = 512

_STATUS: Final = re.compile(rb"(\+OK|-ERR)(?:[ \t]+(.*))?", re.IGNORECASE | re.DOTALL)
_CODE: Final = re.compile(r"\[([^\]\s]+)\]\s*(.*)", re.DOTALL)
# At most 20 digits: int() refuses very long ones with a ValueError, not ours.
_TWO_NUMBERS: Final = re.compile(rb"(\d{1,20})[ \t]+(\d{1,20})(?:[ \t].*)?", re.DOTALL)
_NUMBER_AND_UID: Final = re.compile(rb"(\d{1,20})[ \t]+([\x21-\x7e]{1,70})(?:[ \t].*)?", re.DOTALL)
# Whole lines of a listing, matched in bulk; the trailer is bounded so that a line
# longer than MAX_LIST_LINE does not match and is reported.
_UIDL_LINES: Final = re.compile(
    rb"^(\d{1,20})[ \t]+([\x21-\x7e]{1,70})(?:[ \t][^\n]{0,400})?\r?\n", re.MULTILINE
)
_LIST_LINES: Final = re.compile(
    rb"^(\d{1,20})[ \t]+(\d{1,20})(?:[ \t][^\n]{0,400})?\r?\n", re.MULTILINE
)
_TIMESTAMP: Final = re.compile(r"<[^<>\s]*@[^<>\s]*>")


def snippet(data: bytes | bytearray) -> str:
    """The start of `data`, safe to put in a message."""
    return repr(bytes(data[:60]))


def number(digits: bytes, *, what: str, minimum: int = 0) -> int:
    """An RFC 1939 number within 64 bits and at least `minimum`."""
    value = int(digits)
    if not minimum <= value <= MAX_NUMBER:
        raise POP3ProtocolError(f"{what} out of range: {snippet(digits)}")
    return value


def status(command: Command, line: bytes, secrets: tuple[str, ...] = ()) -> tuple[Reply, bytes]:
    """The status of an answer's first line, and the bytes after it.

    The text is cut to `MAX_ERROR_TEXT` characters and every one of `secrets`
    in it becomes ``***``: servers echo what they were sent in their errors.
    """
    match = _STATUS.fullmatch(line)
    if match is None:
        raise POP3ProtocolError(f"Expected +OK or -ERR, got {snippet(line)}")
    rest = match[2] or b""
    text = redact(rest.decode("utf-8", "replace").strip(), secrets)
    code = None
    if coded := _CODE.fullmatch(text):
        code, text = coded[1].upper()[:64], coded[2]
    if len(text) > MAX_ERROR_TEXT:
        text = text[:MAX_ERROR_TEXT] + "…"
    return Reply(command, match[1].upper() == b"+OK", text, code), rest


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def one_line_value(command: Command, rest: bytes) -> Result:
    """What a one-line +OK answer carries: STAT, LIST n, UIDL n; None for the others."""
    if not isinstance(command, (Stat, Sizes, Uidl)):
        return None
    pattern = _NUMBER_AND_UID if isinstance(command, Uidl) else _TWO_NUMBERS
    match = pattern.fullmatch(rest)
    if match is None:
        raise POP3ProtocolError(f"Malformed answer to {verb(command)}: {snippet(rest)}")
    if isinstance(command, Stat):
        count = number(match[1], what="Message count")
        return StatResult(count, number(match[2], what="Mailbox size"))
    if number(match[1], what="Message number", minimum=1) != command.msg:
        raise POP3ProtocolError(f"Answer to {verb(command)} names another message")
    if isinstance(command, Sizes):
        return number(match[2], what="Message size")
    return match[2].decode("ascii")


def parse_listing(
    command: Sizes | Uidl,
    buf: bytearray,
    start: int,
    end: int,
    *,
    into: dict[int, int] | dict[int, str],
    max_entries: int,
) -> None:
    """Add the complete listing lines of `buf[start:end]` to `into`.

    A malformed line, a message number of 0 or out of range, a number listed
    twice, or more than `max_entries` lines is a `POP3ProtocolError`.
    """
    if end <= start:
        return
    pattern = _UIDL_LINES if isinstance(command, Uidl) else _LIST_LINES
    pairs = pattern.findall(buf, start, end)
    if len(pairs) != buf.count(b"\n", start, end):
        bad = next(
            line
            for line in bytes(buf[start:end]).split(b"\n")[:-1]
            if pattern.fullmatch(line + b"\n") is None
        )
        raise POP3ProtocolError(f"Malformed line in answer to {verb(command)}: {snippet(bad)}")
    before = len(into)
    if before + len(pairs) > max_entries:
        raise POP3ProtocolError(f"The answer to {verb(command)} lists over {max_entries} messages")
    if isinstance(command, Uidl):
        uids: dict[int, str] = into  # type: ignore[assignment]  # chosen by the command
        for digits, uid in pairs:
            uids[number(digits, what="Message number", minimum=1)] = uid.decode("ascii")
    else:
        sizes: dict[int, int] = into  # type: ignore[assignment]  # chosen by the command
        for digits, size in pairs:
            sizes[number(digits, what="Message number", minimum=1)] = number(
                size, what="Message size"
            )
    if len(into) != before + len(pairs):
        raise POP3ProtocolError(f"The answer to {verb(command)} lists a message twice")


def find_terminator(buf: bytearray, start: int, end: int) -> int:
    """Where the ".CRLF" (or ".LF") line is in the whole lines `buf[start:end]`, or -1.

    `start` is the beginning of a line. Plain `find`: linear, no regex, no copy.
    """
    if buf.startswith((b".\r\n", b".\n"), start, end):
        return start
    found = [i + 1 for i in (buf.find(b"\n.\r\n", start, end), buf.find(b"\n.\n", start, end))]
    found = [i for i in found if i > 0]
    return min(found, default=-1)


def body_lines(lines: bytes | bytearray) -> bytes:
    """Whole lines of a message body as sent: CRLF line ends, one leading dot less."""
    data = b"\n" + lines
    if data.count(b"\n") != data.count(b"\r\n") + 1:
        # A server sending bare LF: still linear, two C-speed passes.
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    else:
        data = b"\r" + data
    return data.replace(b"\n.", b"\n")[2:]


def parse_capabilities(lines: list[str]) -> Capabilities:
    """Build `Capabilities` from the lines of a CAPA answer; unknown ones are kept in `raw`."""
    flags: dict[str, bool] = {}
    sasl: tuple[str, ...] = ()
    login_delay: int | None = None
    expire: str | None = None
    implementation: str | None = None
    per_user = False
    for line in lines:
        name, _, arg = line.strip().partition(" ")
        name, words = name.upper(), arg.split()
        if name in {"TOP", "UIDL", "USER", "RESP-CODES", "PIPELINING", "STLS", "UTF8"}:
            flags[name] = True
        elif name == "SASL":
            sasl = tuple(word.upper() for word in words)
        elif name == "LOGIN-DELAY" and words and words[0].isascii() and words[0].isdigit():
            # Longer than 12 digits (30,000 years) is "never"; int() of 5,000 digits would raise.
            login_delay = int(words[0]) if len(words[0]) <= 12 else 10**12
            per_user |= words[1:2] == ["USER"]
        elif name == "EXPIRE" and words:
            expire = words[0]
            per_user |= words[1:2] == ["USER"]
        elif name == "IMPLEMENTATION":
            implementation = arg.strip() or None
    return Capabilities(
        top=flags.get("TOP", False),
        uidl=flags.get("UIDL", False),
        user=flags.get("USER", False),
        resp_codes=flags.get("RESP-CODES", False),
        pipelining=flags.get("PIPELINING", False),
        stls=flags.get("STLS", False),
        utf8=flags.get("UTF8", False),
        sasl=sasl,
        login_delay=login_delay,
        expire=expire,
        implementation=implementation,
        raw=tuple(line.strip() for line in lines),
        per_user=per_user,
    )


def capabilities_body(data: bytes) -> Capabilities:
    """`Capabilities` from a CAPA answer's body (CRLF line ends, unstuffed)."""
    lines = data.split(b"\r\n")[:-1]
    if any(len(line) + 2 > MAX_LIST_LINE for line in lines):
        raise POP3ProtocolError("A CAPA line is longer than 512 octets (RFC 2449)")
    return parse_capabilities([line.decode("utf-8", "replace") for line in lines])


def decode_challenge(line: bytes) -> bytes:
    """The decoded payload of a SASL continuation line ("+ base64")."""
    payload = line[1:].strip(b" ")
    try:
        return base64.b64decode(payload, validate=True)
    except binascii.Error as err:
        raise POP3ProtocolError(f"Invalid SASL challenge: {snippet(line)}") from err


def apop_timestamp(greeting: str) -> str | None:
    """The `<...@...>` timestamp of an RFC 1939 greeting, which APOP needs; None without one."""
    match = _TIMESTAMP.search(greeting)
    return match[0] if match else None
