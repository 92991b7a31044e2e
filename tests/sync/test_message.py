"""Tests of what the user sees of a message: decoding, bodies, attachments, the 30,000-byte cut."""

from __future__ import annotations

import base64
from contextlib import contextmanager
import copy
import json
import logging
from typing import TYPE_CHECKING, Any

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.pop3_mail.sync import message as message_module
from custom_components.pop3_mail.sync.message import (
    EVENT_LIMIT,
    decode_words,
    event_data,
    fit_event,
    full_message,
    json_size,
    top_lines_for,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

CONTRACT_KEYS = [
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
]


def message(*headers: str, body: str = "Hello\r\n", raw_body: bytes | None = None) -> bytes:
    head = "".join(f"{header}\r\n" for header in headers).encode()
    return head + b"\r\n" + (raw_body if raw_body is not None else body.encode())


def data_of(raw: bytes, text_length: int = 0) -> dict[str, Any]:
    return event_data(raw, uid="uid-1", size=len(raw), text_length=text_length)


def strict_json(data: Any) -> bytes:
    """What Home Assistant's encoder would do: fails on lone surrogates."""
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


# -- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("=?utf-8?q?caf=C3=A9_au_lait?=", "café au lait"),
        ("=?UTF-8?B?w6lsw6h2ZQ==?=", "élève"),
        ("=?iso-8859-1?q?Fran=E7ois?=", "François"),
        ("=?ISO-8859-1?B?RnJhbudvaXM=?=", "François"),
        ("=?windows-1252?q?=80_5?=", "€ 5"),
        # Labelled latin-1 but written by Windows: the euro sign survives.
        ("=?iso-8859-1?q?=80?=", "€"),
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
        ("=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab"),
        ("=?utf-8?q?a?= plain =?utf-8?q?b?=", "a plain b"),
        ("before =?utf-8?q?x?= after", "before x after"),
        # A character split across two encoded words.
        ("=?utf-8?B?4pw=?= =?utf-8?B?kw==?=", "✓"),
        ("=?utf-8*en?q?hello?=", "hello"),
        ("=?koi8-r?b?8NLJ18XU?=", "Привет"),
        ("=?x-unknown-charset?q?caf=C3=A9?=", "café"),
        ("=?x-unknown-charset?q?caf=E9?=", "café"),
        ("=?utf-8?B?w6lsw6h2ZQ?=", "élève"),  # padding missing
        ("=?utf-8?B?w6ls!!w6h2ZQ==?=", "élève"),  # stray characters
        ("=?utf-8?B?!!!?=", ""),
        ("=?utf-8?B?w6lsw6h2Z?=", "élèv"),  # cut short
        ("=?zlib_codec?q?abc?=", "abc"),  # a codec that is not a text encoding
        ("=?utf-8?x?abc?=", "=?utf-8?x?abc?="),  # not an encoded word: left alone
        ("no words here", "no words here"),
    ],
)
def test_rfc2047(encoded: str, decoded: str) -> None:
    assert data_of(message(f"Subject: {encoded}"))["subject"] == decoded


def test_decode_words_keeps_broken_words() -> None:
    assert decode_words("=?utf-8?q?unterminated") == "=?utf-8?q?unterminated"


def test_nul_in_charset_name_falls_back() -> None:
    """Found by hypothesis: codecs.lookup raises ValueError (not LookupError) for a NUL."""
    with no_safety_net():
        data = data_of(b"Subject: =?\x00utf-8?B?w6k=?=\r\n\r\nHello\r\n")
    assert data["subject"] == "é"


@pytest.mark.parametrize(
    ("raw_subject", "decoded"),
    [
        ("café ✓".encode(), "café ✓"),
        ("café".encode("latin-1"), "café"),
        (b"price \x80 5", "price € 5"),
    ],
)
def test_eight_bit_headers(raw_subject: bytes, decoded: str) -> None:
    raw = b"From: a@example.com\r\nSubject: " + raw_subject + b"\r\n\r\nbody\r\n"
    data = data_of(raw)
    assert data["subject"] == decoded
    assert data["headers"]["Subject"] == decoded
    strict_json(data)


def test_addresses_with_names() -> None:
    raw = message(
        'From: "Doe, Jane" <Jane.Doe@Example.COM>',
        "To: bob@example.com, =?utf-8?q?J=C3=BCrgen?= <JUERGEN@example.de>",
        "Cc: Team: one@example.com, two@example.com;",
    )
    data = data_of(raw)
    assert data["sender"] == "jane.doe@example.com"
    assert data["sender_name"] == "Doe, Jane"
    assert data["to"] == ["bob@example.com", "juergen@example.de"]
    assert data["cc"] == ["one@example.com", "two@example.com"]


def test_encoded_display_name() -> None:
    data = data_of(message("From: =?utf-8?B?SsO8cmdlbg==?= <j@example.com>"))
    assert data["sender_name"] == "Jürgen"
    assert data["sender"] == "j@example.com"


def test_sender_falls_back_to_sender_header_and_to_empty() -> None:
    assert data_of(message("Sender: list@example.com"))["sender"] == "list@example.com"
    data = data_of(message("Subject: nobody"))
    assert (data["sender"], data["sender_name"], data["to"], data["cc"]) == ("", "", [], [])


def test_broken_address_lists_keep_what_they_can() -> None:
    data = data_of(message("From: <<>>", "To: good@example.com, <<bad>>, other@example.com"))
    assert data["sender"] == ""
    assert "good@example.com" in data["to"]
    strict_json(data)


@pytest.mark.parametrize(
    ("header", "iso"),
    [
        ("Date: Tue, 01 Jul 2025 10:00:00 +0200", "2025-07-01T10:00:00+02:00"),
        ("Date: 1 Jul 2025 10:00:00 GMT", "2025-07-01T10:00:00+00:00"),
        ("Date: Tue, 01 Jul 2025 10:00:00 -0000", "2025-07-01T10:00:00+00:00"),
        ("Date: Tue, 01 Jul 25 10:00:00 +0000", "2025-07-01T10:00:00+00:00"),
        ("Date: yesterday", None),
        ("Date: Tue, 45 Jul 2025 10:00:00 +0000", None),
        ("Date: Tue, 01 Jul 2025 99:00:00 +0000", None),
        ("Date:", None),
        ("X-No-Date: 1", None),
    ],
)
def test_dates(header: str, iso: str | None) -> None:
    assert data_of(message(header))["date"] == iso


def test_headers_are_decoded_unfolded_and_repeated_ones_joined() -> None:
    raw = message(
        "Received: from a by b;\r\n\tTue, 1 Jul 2025",
        "Subject: =?utf-8?q?caf=C3=A9?=",
        "received: from c by d",
        "X-Spam-Flag: YES",
        "Message-ID: <id@example.com>",
    )
    data = data_of(raw)
    assert data["headers"] == {
        "Received": "from a by b;\tTue, 1 Jul 2025\nfrom c by d",
        "Subject": "café",
        "X-Spam-Flag": "YES",
        "Message-ID": "<id@example.com>",
    }
    assert data["message_id"] == "<id@example.com>"


def test_event_has_the_contract_keys_and_text_only_when_asked() -> None:
    raw = message("From: a@example.com", "Subject: hi")
    assert list(data_of(raw)) == CONTRACT_KEYS
    data = data_of(raw, text_length=3)
    assert list(data) == [*CONTRACT_KEYS, "text"]
    assert data["text"] == "Hel"
    assert data["uid"] == "uid-1"
    assert data["size"] == len(raw)
    assert data_of(raw)["message_id"] is None


# -- bodies ---------------------------------------------------------------------------------

ALTERNATIVE = message(
    "From: a@example.com",
    "MIME-Version: 1.0",
    'Content-Type: multipart/alternative; boundary="b1"',
    body=(
        "This is a MIME message.\r\n"
        "--b1\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n"
        "<p>Hi <b>HTML</b></p>\r\n"
        "--b1\r\n"
        "Content-Type: text/plain; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        "Gr=FC=DFe aus K=F6ln, a long line that is soft=\r\n"
        " broken\r\n"
        "--b1--\r\n"
    ),
)


def test_multipart_alternative_prefers_plain_text() -> None:
    text = data_of(ALTERNATIVE, text_length=500)["text"]
    assert text == "Grüße aus Köln, a long line that is soft broken"


def test_html_only_gives_its_text() -> None:
    html = (
        "<html><head><title>T</title><style>p {color: red}</style></head><body>"
        "<h1>Title</h1><p>One &amp; two&nbsp;three</p><script>alert(1)</script>"
        "<ul><li>first</li><li>second</li></ul>caf&eacute;<br>end</body></html>"
    )
    raw = message("Content-Type: text/html; charset=utf-8", body=html)
    assert data_of(raw, text_length=500)["text"] == (
        "Title\n\nOne & two three\n\nfirst\n\nsecond\n\ncafé\nend"
    )


def test_base64_body_and_unknown_charset() -> None:
    encoded = base64.encodebytes("Grüße ✓".encode()).decode()
    raw = message(
        "Content-Type: text/plain; charset=x-made-up",
        "Content-Transfer-Encoding: base64",
        body=encoded,
    )
    assert data_of(raw, text_length=100)["text"] == "Grüße ✓"


def test_top_cut_inside_a_multipart_keeps_the_text_it_has() -> None:
    text = "A fairly long first paragraph of the message. " * 20
    encoded = base64.encodebytes(text.encode()).decode().replace("\n", "\r\n")
    full = message(
        "From: a@example.com",
        'Content-Type: multipart/mixed; boundary="outer"',
        body=(
            "--outer\r\n"
            'Content-Type: multipart/alternative; boundary="inner"\r\n\r\n'
            "--inner\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
            f"{encoded}"
            "--inner\r\n"
            "Content-Type: text/html\r\n\r\n<p>x</p>\r\n"
            "--inner--\r\n--outer--\r\n"
        ),
    )
    head, _, body = full.partition(b"\r\n\r\n")
    lines = body.split(b"\r\n")
    for kept in (8, 10, 12):  # the TOP answer for `kept` body lines; text starts at line 8
        top = head + b"\r\n\r\n" + b"".join(line + b"\r\n" for line in lines[:kept])
        got = data_of(top, text_length=5000)["text"]
        assert got
        assert text.startswith(got)
    assert data_of(full, text_length=5000)["text"] == text.strip()
    # Cut before the first boundary: no text, and no error.
    assert data_of(head + b"\r\n\r\n", text_length=100)["text"] == ""


def test_broken_base64_body_gives_what_decodes() -> None:
    raw = message(
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        body="SGVsbG8g!!d29y\r\nbGQ",
    )
    assert data_of(raw, text_length=100)["text"].startswith("Hello wor")


# -- fetch_message -------------------------------------------------------------------------

WITH_ATTACHMENTS = message(
    "From: Alice <alice@example.com>",
    "To: bob@example.com",
    "Subject: files",
    'Content-Type: multipart/mixed; boundary="m"',
    body=(
        "--m\r\n"
        "Content-Type: multipart/alternative; boundary=a\r\n\r\n"
        "--a\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        "--a\r\nContent-Type: text/html\r\n\r\n<p>see <i>attached</i></p>\r\n"
        "--a--\r\n"
        "--m\r\n"
        "Content-Type: application/pdf\r\n"
        "Content-Disposition: attachment; filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{base64.b64encode(bytes(range(256)) * 4).decode()}\r\n"
        "--m\r\n"
        "Content-Type: text/plain; name*0*=UTF-8''%C3%A9t%C3%A9; name*1=\".txt\"\r\n"
        "Content-Disposition: attachment\r\n\r\n"
        "summer\r\n"
        "--m\r\n"
        'Content-Type: image/png; name="=?utf-8?q?b=C3=A9b=C3=A9.png?="\r\n'
        "Content-Disposition: inline\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        "iVBORw0KGgo=\r\n"
        "--m\r\n"
        "Content-Type: message/rfc822\r\n\r\n"
        "From: inner@example.com\r\nSubject: inner\r\n\r\ninner body\r\n"
        "--m--\r\n"
    ),
)


def test_full_message_with_attachments() -> None:
    data = full_message(WITH_ATTACHMENTS)
    assert data["sender"] == "alice@example.com"
    assert data["sender_name"] == "Alice"
    assert data["subject"] == "files"
    assert data["text"] == "see attached"
    assert data["html"] == "<p>see <i>attached</i></p>"
    attachments = data["attachments"]
    assert attachments[:3] == [
        {"filename": "naïve résumé.pdf", "content_type": "application/pdf", "size": 1024},
        {"filename": "été.txt", "content_type": "text/plain", "size": len(b"summer")},
        {"filename": "bébé.png", "content_type": "image/png", "size": 8},
    ]
    assert attachments[3]["content_type"] == "message/rfc822"
    assert attachments[3]["size"] > 0
    assert "uid" not in data
    strict_json(data)


def test_full_message_html_only_and_plain_only() -> None:
    html = full_message(message("Content-Type: text/html", body="<p>only <b>html</b></p>"))
    assert (html["text"], html["html"]) == ("only html", "<p>only <b>html</b></p>")
    plain = full_message(message("Subject: x", body="just text\r\n"))
    assert (plain["text"], plain["html"], plain["attachments"]) == ("just text", None, [])


# -- never raise ---------------------------------------------------------------------------


class Recorder(logging.Handler):
    """Collects the module's log records: the safety net must not be what keeps us alive."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def no_safety_net() -> Iterator[None]:
    recorder = Recorder()
    logger = logging.getLogger(message_module.__name__)
    logger.addHandler(recorder)
    try:
        yield
    finally:
        logger.removeHandler(recorder)
    assert recorder.records == []


def test_safety_net_keeps_the_event(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(raw: bytes) -> None:
        raise IndexError("stdlib bug")

    monkeypatch.setattr(message_module, "_parse", explode)
    data = event_data(b"Subject: x\r\n\r\n", uid="u9", size=5, text_length=10)
    assert data["uid"] == "u9"
    assert data["size"] == 5
    assert data["text"] == ""
    assert list(data) == [*CONTRACT_KEYS, "text"]
    assert full_message(b"x")["attachments"] == []


SAMPLES = [ALTERNATIVE, WITH_ATTACHMENTS, message("Subject: =?utf-8?B?w6k=?=")]


@settings(max_examples=300, deadline=None)
@given(
    sample=st.sampled_from(SAMPLES),
    cut=st.integers(0, 5000),
    noise=st.lists(st.tuples(st.integers(0, 5000), st.binary(min_size=1, max_size=8)), max_size=6),
)
def test_damaged_messages_never_raise(
    sample: bytes, cut: int, noise: list[tuple[int, bytes]]
) -> None:
    raw = bytearray(sample[:cut])
    for position, junk in noise:
        raw[position % (len(raw) + 1) : position % (len(raw) + 1)] = junk
    with no_safety_net():
        for text_length in (0, 200):
            strict_json(event_data(bytes(raw), uid="u", size=len(raw), text_length=text_length))
        strict_json(full_message(bytes(raw)))


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=2000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    with no_safety_net():
        strict_json(event_data(raw, uid="u", size=len(raw), text_length=100))
        strict_json(full_message(raw))


# -- fit_event ---------------------------------------------------------------------------------


def event(**changes: Any) -> dict[str, Any]:
    data = data_of(ALTERNATIVE, text_length=8000)
    data |= {"entry_id": "01J0ENTRY", "device_id": "abc123", "mailbox": "me@example.com"}
    data |= changes
    return data


def assert_fits(data: dict[str, Any], limit: int = EVENT_LIMIT) -> None:
    assert len(json.dumps(data).encode()) <= limit
    assert len(strict_json(data)) <= limit
    assert len(json.dumps(data, separators=(",", ":")).encode()) <= limit


def test_small_event_is_unchanged() -> None:
    data = event()
    assert fit_event(data) == data


def test_huge_text_is_cut_first() -> None:
    data = event(text="✓ emoji 🎉 and text " * 3000)
    original = copy.deepcopy(data)
    fitted = fit_event(data)
    assert data == original  # the input is not changed
    assert_fits(fitted)
    assert fitted["headers"] == data["headers"]
    assert data["text"].startswith(fitted["text"])
    # Cut no more than needed: one more character would not fit.
    longer = fitted | {"text": data["text"][: len(fitted["text"]) + 1]}
    assert json_size(longer) > EVENT_LIMIT


def test_huge_headers_are_dropped_largest_first() -> None:
    headers = {f"X-Filler-{i:03d}": "y" * 400 for i in range(100)}
    headers |= {"X-Huge": "z" * 20_000, "Subject": "hello", "X-Spam-Flag": "YES"}
    data = event(text="short", headers=headers)
    fitted = fit_event(data)
    assert_fits(fitted)
    assert fitted["text"] == ""
    assert "X-Huge" not in fitted["headers"]
    assert fitted["headers"]["Subject"] == "hello"
    assert fitted["headers"]["X-Spam-Flag"] == "YES"
    assert fit_event(data) == fitted  # deterministic


def test_huge_subject_and_recipients_are_cut_last() -> None:
    data = event(
        subject="S" * 50_000,
        to=[f"user{i}@example.com" for i in range(5000)],
        cc=["c@example.com"] * 10,
        headers={"Subject": "S" * 40_000},
    )
    fitted = fit_event(data)
    assert_fits(fitted)
    assert set(fitted) == set(data)
    assert fitted["uid"] == data["uid"]
    assert fitted["sender"] == data["sender"]
    assert fitted["subject"].startswith("SSS")
    assert fitted["headers"] == {}


def test_even_absurd_values_fit() -> None:
    data = event(sender="a" * 40_000 + "@example.com", message_id="<" + "m" * 40_000 + ">")
    fitted = fit_event(data)
    assert_fits(fitted)
    assert set(fitted) == set(data)


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(max_size=10_000),
    subject=st.text(max_size=40_000),
    headers=st.dictionaries(st.text(min_size=1, max_size=40), st.text(max_size=5000), max_size=30),
    to=st.lists(st.text(max_size=200), max_size=200),
    limit=st.sampled_from([EVENT_LIMIT, 2000]),
)
def test_fit_event_always_fits(
    text: str, subject: str, headers: dict[str, str], to: list[str], limit: int
) -> None:
    data = event(text=text, subject=subject, headers=headers, to=to)
    fitted = fit_event(data, limit=limit)
    assert json_size(fitted) <= limit
    assert set(fitted) == set(data)
    assert fitted["uid"] == data["uid"]


def test_top_lines_for() -> None:
    assert top_lines_for(0) == 0
    assert top_lines_for(-5) == 0
    assert top_lines_for(100) > 0
    assert top_lines_for(8000) > top_lines_for(100)
    # Enough lines for the text even when every line is short.
    assert top_lines_for(8000) * 10 >= 8000
