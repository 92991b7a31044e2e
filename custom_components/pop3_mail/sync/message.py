"""What the user sees of a message: event data, the fetch_message answer, the 30,000-byte cut.

Public names:

- `event_data(raw, *, uid, size, text_length)`: the new-message event data (the
  contract keys except `entry_id`, `device_id`, `mailbox`, which the caller adds
  before `fit_event`).
- `fit_event(data, limit=30_000)`: the same data cut to fit `limit` bytes of JSON.
- `full_message(raw)`: the `fetch_message` answer (the caller adds `uid`).
- `top_lines_for(text_length)`: body lines to ask TOP for.
- `json_size(data)`: the bytes of the JSON of `data`, the larger of ASCII-escaped
  and UTF-8 output.
- `decode_words(text)`: RFC 2047 encoded words decoded, broken ones left as they are.

Parsing is CPU work (a whole message for `full_message`): callers run it in an
executor. Every function here is linear in its input, with small constants
(measured in `benchmarks/bench_message.py`), and is given bounded input:
`event_data` a TOP answer (at most `CHECK_ANSWER_LIMIT`, 4 MiB, see
`sync/check.py`), `full_message` one message (at most the client's per-answer cap,
64 MiB), `fit_event` any event data (it cuts before it measures). Base64 with
junk, HTML with unclosed tags or a million attributes, a 50 MB header or 300,000
headers cost about as much as plain text of the same size.

Decisions:

- Nothing here raises on a bad message (a last safety net logs a warning and
  returns the fields empty, so an event is never lost): unknown charsets fall back to UTF-8,
  then windows-1252; bad base64 is decoded as far as it goes; 8-bit header bytes
  are read as UTF-8, else windows-1252. Every string returned is valid Unicode
  (no lone surrogates) so any JSON encoder accepts it.
- Absent values: `sender`, `sender_name`, `subject` are "" and `date`,
  `message_id` are None. `sender`, `to` and `cc` are lower-case addresses.
- `headers` maps each field name, spelled as in its first occurrence, to its
  unfolded, RFC 2047-decoded value; the values of a repeated field (Received...)
  are joined with a newline, in message order. Names match case-insensitively.
- `text`: the first text/plain part that is not an attachment, else the text of
  the first text/html part, with line ends as "\\n" and surrounding blank space
  stripped. A multipart cut short by TOP still gives the text it holds.
- `fit_event` cuts `text` first, then drops headers, longest first (characters
  of name and value; ties by name), then shortens `to`, `cc`, `subject`,
  `sender_name`, and finally halves whatever value is largest. Keys are never removed.
"""

from __future__ import annotations

import binascii
from bisect import bisect_right
import codecs
from contextlib import suppress
from datetime import UTC
import email
from email.message import Message
import email.utils
from html import unescape as html_unescape
from itertools import accumulate
import json
import logging
import operator
import quopri
import re
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

_LOGGER = logging.getLogger(__name__)

#: The contract's bound on the JSON of one event.
EVENT_LIMIT: Final = 30_000

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_SPACE_RUN = re.compile(r"[ \t]*\n[ \t]*")
_SPACES = re.compile(r" {2,}")
_BLANK_LINES = re.compile(r"\n{3,}")
_HORIZONTAL_SPACE = re.compile(r"[ \t\f\v\r\u00a0]+")
# Every byte that is not base64, deleted in one C pass (a regex made a match object per byte).
_NOT_BASE64: Final = bytes(
    set(range(256)) - set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
)
# One token of HTML markup: a comment, a declaration or processing instruction, or a tag
# (group 1: its name, with "/" for an end tag). Linear on any input: possessive loops
# whose classes do not overlap, an unclosed comment or tag ends at the end of the text,
# and `<` ends a tag, so no start position rescans the rest of the document.
_MARKUP = re.compile(
    r"""<!--(?:[^-]++|-(?!->))*+(?:-->)?"""
    r"""|<[!?][^<>]*+>?"""
    r"""|<(/?[A-Za-z][^\s/<>]*+)(?:[^<>"']++|"[^"]*+"|'[^']*+')*+>?"""
)
# Labels mail software uses for windows-1252 text; decoding them as latin-1 would give C1 controls.
_WINDOWS_1252_ALIASES: Final = frozenset(
    {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii", "iso_8859-1"}
)
_BLOCK_TAGS: Final = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "footer",
        "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol",
        "p", "pre", "section", "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip
_HIDDEN_TAGS: Final = frozenset({"head", "script", "style", "template", "title"})
_RAW_TEXT_TAGS: Final = frozenset({"script", "style"})
_RAW_TEXT_END: Final = {
    name: re.compile(rf"</{name}[^<>]*+>?", re.IGNORECASE) for name in _RAW_TEXT_TAGS
}


# -- public API ---------------------------------------------------------------------------


def top_lines_for(text_length: int) -> int:
    """How many body lines to ask TOP for so the text of `text_length` characters is there.

    Lines hold at most 76 characters after base64 or quoted-printable; encodings
    and HTML markup inflate text by 2-5 times, and MIME part headers take ~20
    lines: 50 + text_length / 10 lines leave room for about 8 times the text.
    """
    if text_length <= 0:
        return 0
    return 50 + text_length // 10


def event_data(raw: bytes, *, uid: str, size: int, text_length: int) -> dict[str, Any]:
    """The new-message event data of `raw` (a whole message or a TOP answer)."""
    try:
        message = _parse(raw)
        data = _envelope(message)
        if text_length > 0:
            plain, html = _bodies(message)
            text = plain if plain is not None else (_html_to_text(html) if html else "")
            data["text"] = text[:text_length]
    except Exception:
        # The stdlib parser has had crash bugs on hostile input; an event is never lost to one.
        _LOGGER.warning(
            "Could not read message %s; announcing it without details", uid, exc_info=True
        )
        data = _empty_envelope()
        if text_length > 0:
            data["text"] = ""
    data["uid"] = _clean(uid)
    data["size"] = size
    return {
        key: data[key]
        for key in (
            "uid",
            "sender",
            "sender_name",
            "to",
            "cc",
            "subject",
            "date",
            "message_id",
            "size",
            "headers",
            "text",
        )
        if key in data
    }


def full_message(raw: bytes) -> dict[str, Any]:
    """The fetch_message answer for a whole message (`uid` is added by the caller)."""
    try:
        message = _parse(raw)
        data = _envelope(message)
        plain, html = _bodies(message)
        data["text"] = plain if plain is not None else (_html_to_text(html) if html else "")
        data["html"] = html
        data["attachments"] = [
            {"filename": name, "content_type": content_type, "size": size}
            for name, content_type, size in _attachments(message)
        ]
    except Exception:
        # As in event_data: a hostile message gives an empty answer, not an error.
        _LOGGER.warning("Could not read a fetched message", exc_info=True)
        data = _empty_envelope() | {"text": "", "html": None, "attachments": []}
    return data


def _empty_envelope() -> dict[str, Any]:
    return {
        "sender": "",
        "sender_name": "",
        "to": [],
        "cc": [],
        "subject": "",
        "date": None,
        "message_id": None,
        "headers": {},
    }


def json_size(data: Any) -> int:
    """Bytes of the JSON of `data`: the larger of ASCII-escaped and raw UTF-8 output."""
    escaped = len(json.dumps(data))
    return max(escaped, len(json.dumps(data, ensure_ascii=False).encode("utf-8", "replace")))


def fit_event(data: dict[str, Any], limit: int = EVENT_LIMIT) -> dict[str, Any]:
    """`data` cut so its JSON takes at most `limit` bytes; a new dict, keys all kept.

    Any size of input costs time linear in it, and JSON is only ever produced of
    data already cut near `limit` (see `_precut`): 300,000 headers or one 50 MB
    header fit in milliseconds.
    """
    if _rough_length(data) <= 2 * limit:
        # The usual event: small enough to measure as it is (at most ~24x limit of JSON).
        fitted = dict(data)
        if json_size(fitted) <= limit:
            return fitted
    fitted = _precut(data, limit)
    if json_size(fitted) <= limit:
        return fitted
    if isinstance(fitted.get("text"), str):
        _shorten_str(fitted, "text", limit)
        if json_size(fitted) <= limit:
            return fitted
    if isinstance(fitted.get("headers"), dict):
        _drop_headers(fitted, limit)
        if json_size(fitted) <= limit:
            return fitted
    for key in ("to", "cc", "subject", "sender_name"):
        value = fitted.get(key)
        if isinstance(value, list):
            _shorten_list(fitted, key, limit)
        elif isinstance(value, str):
            _shorten_str(fitted, key, limit)
        if json_size(fitted) <= limit:
            return fitted
    _halve_largest(fitted, limit)
    return fitted


# -- parsing ----------------------------------------------------------------------------


def _parse(raw: bytes) -> Message:
    # compat32 never raises on defects: a message cut by TOP or broken by its sender still parses.
    return email.message_from_bytes(raw)


def _raw_headers(message: Message) -> dict[str, list[str]]:
    """Raw values by lower-case name; compat32's get() would wrap 8-bit values in a Header."""
    found: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        found.setdefault(name.strip().lower(), []).append(str(value))
    return found


def _envelope(message: Message) -> dict[str, Any]:
    """The fields common to events and fetch_message answers."""
    raw = _raw_headers(message)

    def first(name: str) -> str | None:
        values = raw.get(name)
        return values[0] if values else None

    sender_name, sender = "", ""
    for field in ("from", "sender"):
        found = _addresses(raw.get(field))
        if found:
            sender_name, sender = found[0]
            break
    return {
        "sender": sender,
        "sender_name": sender_name,
        "to": [address for _, address in _addresses(raw.get("to"))],
        "cc": [address for _, address in _addresses(raw.get("cc"))],
        "subject": _header_text(first("subject")),
        "date": _iso_date(first("date")),
        "message_id": _header_text(first("message-id")) or None,
        "headers": _headers(message),
    }


def _headers(message: Message) -> dict[str, str]:
    headers: dict[str, str] = {}
    spelled: dict[str, str] = {}
    for raw_name, value in message.raw_items():
        name = _clean(raw_name.strip())
        key = spelled.setdefault(name.lower(), name)
        text = _header_text(value)
        headers[key] = f"{headers[key]}\n{text}" if key in headers else text
    return headers


def _header_str(value: str | None) -> str:
    """A raw header value as text: unfolded, 8-bit bytes decoded."""
    if value is None:
        return ""
    text = _FOLD.sub("", value)
    if any("\udc80" <= char <= "\udcff" for char in text):
        raw = text.encode("ascii", "surrogateescape")
        text = _decode_bytes(raw, None)
    return text


def _header_text(value: str | None) -> str:
    """A header value as the user reads it: unfolded and RFC 2047-decoded."""
    return _clean(decode_words(_header_str(value)).strip())


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words in `text`; broken ones stay as they are."""
    if "=?" not in text:
        return text
    out: list[str] = []
    run: bytearray = bytearray()
    run_charset: str | None = None
    position = 0

    def flush() -> None:
        nonlocal run_charset
        if run_charset is not None:
            out.append(_decode_bytes(bytes(run), run_charset))
            run.clear()
            run_charset = None

    for match in _ENCODED_WORD.finditer(text):
        between = text[position : match.start()]
        word = _decode_word(match.group(2), match.group(3))
        if word is None:
            continue
        # Blank space between two encoded words is not part of the text (RFC 2047 6.2).
        if between and (run_charset is None or between.strip(" \t")):
            flush()
            out.append(between)
        charset = match.group(1).split("*", 1)[0].lower()
        if charset != run_charset:
            flush()
            run_charset = charset
        run += word
        position = match.end()
    flush()
    out.append(text[position:])
    return "".join(out)


def _decode_word(encoding: str, payload: str) -> bytes | None:
    data = payload.encode("ascii", "replace")
    if encoding in "Bb":
        return _b64decode(data)
    with suppress(ValueError, binascii.Error):
        return quopri.decodestring(data.replace(b"_", b" "), header=True)
    return None


def _b64decode(data: bytes) -> bytes:
    """Decode as much base64 as there is: stray characters dropped, padding mended."""
    data = data.split(b"=", 1)[0].translate(None, _NOT_BASE64)
    data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data
    data += b"=" * (-len(data) % 4)
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        return b""


def _decode_bytes(raw: bytes, charset: str | None) -> str:
    """Text of `raw` in `charset`, with UTF-8 then windows-1252 for unknown or absent ones."""
    name = (charset or "").strip().strip('"').lower()
    if name in _WINDOWS_1252_ALIASES:
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    if name:
        try:
            codec = codecs.lookup(name)
        except (LookupError, ValueError):  # ValueError: a NUL in the charset name
            codec = None
        if codec is not None and getattr(codec, "_is_text_encoding", True):
            with suppress(UnicodeError, LookupError, ValueError):
                return raw.decode(codec.name, "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")


def _clean(text: str) -> str:
    """`text` without lone surrogates, which no JSON encoder accepts."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _addresses(values: list[str] | None) -> list[tuple[str, str]]:
    """(display name, lower-case address) pairs of address headers; unparsable ones skipped."""
    if not values:
        return []
    fields = [_header_str(value) for value in values]
    pairs = email.utils.getaddresses(fields)
    if not any(address for _, address in pairs):
        # The strict parser gives up on the whole field for one bad item; the lax one does not.
        pairs = email.utils.getaddresses(fields, strict=False)
    result: list[tuple[str, str]] = []
    for name, raw_address in pairs:
        address = _clean(raw_address.strip()).lower()
        if address:
            result.append((_clean(decode_words(name).strip()), address))
    return result


def _iso_date(value: str | None) -> str | None:
    text = _header_str(value).strip()
    if not text:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        # "-0000" means the zone is unknown; UTC is the honest reading.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


# -- bodies -------------------------------------------------------------------------------


def _leaves(message: Message) -> Iterator[Message]:
    """Every non-multipart part; an attached message is one leaf, not opened."""
    if message.get_content_maintype() == "multipart":
        payload = message.get_payload()
        if isinstance(payload, list):
            for part in payload:
                if isinstance(part, Message):
                    yield from _leaves(part)
        return
    yield message


def _raw_first(part: Message, name: str) -> str:
    """The first raw value of a header of `part`, or ""."""
    return next((str(value) for key, value in part.raw_items() if key.lower() == name), "")


def _is_attachment(part: Message) -> bool:
    disposition = _raw_first(part, "content-disposition").split(";", 1)[0].strip().lower()
    if disposition == "attachment":
        return True
    return part.get_content_maintype() != "text" or _filename(part) is not None


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except (ValueError, LookupError, TypeError):
        name = None
    if name is None:
        return None
    # RFC 2231 names arrive decoded; RFC 2047 in a name is not standard, but common.
    return _clean(decode_words(_header_str(name)).strip())


def _payload(part: Message) -> bytes:
    """The decoded body of a leaf part; what is there of it when it is cut or broken."""
    payload = part.get_payload()
    if not isinstance(payload, str):
        return b""
    try:
        data = payload.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        # The parser put real characters in a body it could not split; keep them as UTF-8.
        data = payload.encode("utf-8", "surrogateescape")
    encoding = _raw_first(part, "content-transfer-encoding").strip().lower()
    if encoding == "base64":
        return _b64decode(data)
    if encoding == "quoted-printable":
        with suppress(ValueError, binascii.Error):
            return quopri.decodestring(data)
    return data


def _part_text(part: Message) -> str:
    text = _decode_bytes(_payload(part), part.get_content_charset())
    return _clean(text.replace("\r\n", "\n").replace("\r", "\n").strip())


def _bodies(message: Message) -> tuple[str | None, str | None]:
    """(first plain text, first HTML) body parts that are not attachments."""
    plain: str | None = None
    html: str | None = None
    for part in _leaves(message):
        content_type = part.get_content_type()
        if content_type not in ("text/plain", "text/html") or _is_attachment(part):
            continue
        if content_type == "text/plain" and plain is None:
            plain = _part_text(part)
        elif content_type == "text/html" and html is None:
            html = _part_text(part)
    return plain, html


def _attachments(message: Message) -> Iterator[tuple[str | None, str, int]]:
    """(filename, content type, decoded bytes) of every attachment, in message order."""
    for part in _leaves(message):
        if not _is_attachment(part):
            continue
        content_type = part.get_content_type()
        inner = part.get_payload()
        if isinstance(inner, list):
            # An attached message: its size is that of the message as it is written out.
            size = 0
            with suppress(ValueError, LookupError, TypeError, UnicodeError):
                size = sum(len(item.as_bytes()) for item in inner if isinstance(item, Message))
        else:
            size = len(_payload(part))
        yield _filename(part), content_type, size


def _html_to_text(html: str) -> str:
    """The text of an HTML document: hidden elements skipped, block elements on their own lines.

    One pass over the markup tokens (html.parser built a list entry per attribute, so one
    tag with a million attributes cost +630 MB); character references decoded per run of
    text.
    """
    chunks: list[str] = []
    hidden = 0
    position = 0
    while (match := _MARKUP.search(html, position)) is not None:
        if not hidden and match.start() > position:
            chunks.append(_html_data(html[position : match.start()]))
        position = match.end()
        if (name := match.group(1)) is None:
            continue
        end = name.startswith("/")
        name = name.lstrip("/").lower()
        if name in _RAW_TEXT_TAGS and not end:
            # Script and style hold text, not markup (a quote or `<` in them is code):
            # skip to their end tag, as browsers do; an unclosed one hides the rest.
            closing = _RAW_TEXT_END[name].search(html, position)
            position = len(html) if closing is None else closing.end()
            continue
        if name in _HIDDEN_TAGS:
            hidden = max(0, hidden - 1) if end else hidden + 1
        elif name in _BLOCK_TAGS and not hidden:
            chunks.append("\n")
    if not hidden and position < len(html):
        chunks.append(_html_data(html[position:]))
    text = _SPACE_RUN.sub("\n", _SPACES.sub(" ", "".join(chunks)))
    return _clean(_BLANK_LINES.sub("\n\n", text).strip())


def _html_data(data: str) -> str:
    with suppress(ValueError):  # a numeric reference too long for int()
        data = html_unescape(data)
    return _HORIZONTAL_SPACE.sub(" ", data.replace("\n", " "))


# -- fitting ------------------------------------------------------------------------------


def _longest_fitting(total: int, fits: Callable[[int], bool]) -> int:
    """The largest n in [0, total] with fits(n), for a `fits` true up to some n and false after."""
    low, high = 0, total
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _shorten_str(data: dict[str, Any], key: str, limit: int) -> None:
    value: str = data[key]

    def fits(n: int) -> bool:
        data[key] = value[:n]
        return json_size(data) <= limit

    data[key] = value[: _longest_fitting(len(value), fits)]


def _shorten_list(data: dict[str, Any], key: str, limit: int) -> None:
    value: list[Any] = data[key]

    def fits(n: int) -> bool:
        data[key] = value[:n]
        return json_size(data) <= limit

    data[key] = value[: _longest_fitting(len(value), fits)]


def _header_length(item: tuple[str, Any]) -> int:
    name, value = item
    return len(name) + (len(value) if isinstance(value, str) else 1)


def _rough_length(data: dict[str, Any]) -> int:
    """Characters of the strings in `data` (and its lists and headers), plus one per item."""
    total = 0
    for value in data.values():
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, list | dict):
            items = value.items() if isinstance(value, dict) else ((item, "") for item in value)
            for key, item in items:
                total += 1 + (len(key) if isinstance(key, str) else 8)
                total += len(item) if isinstance(item, str) else 8
        else:
            total += 8
    return total


def _precut(data: dict[str, Any], limit: int) -> dict[str, Any]:
    """A copy of `data` without what cannot be part of any result that fits `limit`.

    Every character takes at least one byte of JSON, every list item three (with its
    separator) and every header seven: a string is cut to `limit` characters, a list to
    `limit // 3 + 1` items, and headers, taken shortest first (the order in which
    `_drop_headers` keeps them), once their least possible JSON passes `limit`, are
    dropped. Only lengths are computed here: linear, no JSON.
    """
    fitted: dict[str, Any] = {}
    for key, value in data.items():
        cut = value
        if isinstance(value, str):
            cut = value[:limit]
        elif isinstance(value, list):
            cut = [
                item[:limit] if isinstance(item, str) else item for item in value[: limit // 3 + 1]
            ]
        elif key == "headers" and isinstance(value, dict):
            cut = _precut_headers(value, limit)
        fitted[key] = cut
    return fitted


def _precut_headers(headers: dict[str, Any], limit: int) -> dict[str, Any]:
    """The shortest headers whose least possible JSON fits `limit`, in their order."""
    names = list(headers)
    values = list(headers.values())
    if set(map(type, values)) <= {str}:
        # In C: 300,000 headers in a few tens of milliseconds.
        lengths = list(map(operator.add, map(len, names), map(len, values)))
    else:
        lengths = [_header_length(item) for item in headers.items()]
    shortest = sorted(zip(lengths, names, strict=True))
    least = list(accumulate(length + 7 for length, _ in shortest))
    kept = {name for _, name in shortest[: bisect_right(least, limit + 2)]}
    return {
        name: text[:limit] if isinstance(text, str) else text
        for name, text in headers.items()
        if name in kept
    }


def _drop_headers(data: dict[str, Any], limit: int) -> None:
    """Drop the fewest headers, longest first (ties by name), so the data fits, if it can."""
    headers: dict[str, Any] = data["headers"]
    by_length = sorted(headers.items(), key=lambda item: (-_header_length(item), item[0]))

    def fits(kept: int) -> bool:
        keep = {name for name, _ in by_length[len(by_length) - kept :]} if kept else set()
        data["headers"] = {name: value for name, value in headers.items() if name in keep}
        return json_size(data) <= limit

    # Binary search over how many of the shortest headers stay: O(log n) measurements.
    kept = _longest_fitting(len(by_length), fits)
    fits(kept)


def _halve_largest(data: dict[str, Any], limit: int) -> None:
    """Halve the largest string or list value until the data fits: the last resort."""
    while json_size(data) > limit:
        sizes = {
            key: json_size(value)
            for key, value in data.items()
            if isinstance(value, (str, list, dict)) and value
        }
        if not sizes:
            return
        key = max(sizes, key=lambda name: (sizes[name], name))
        value = data[key]
        if isinstance(value, dict):
            data[key] = dict(list(value.items())[: len(value) // 2])
        else:
            data[key] = value[: len(value) // 2]
