"""Text extraction and event fitting cost what their input costs, whatever the mail holds.

Measured by memory (deterministic) and by how much JSON `fit_event` produces, not by
the clock: the figures are in `benchmarks/results.md`.
"""

from __future__ import annotations

import tracemalloc
from typing import TYPE_CHECKING, Any

import pytest

from custom_components.pop3_mail.sync import message
from custom_components.pop3_mail.sync.message import EVENT_LIMIT, fit_event, full_message

if TYPE_CHECKING:
    from collections.abc import Callable


def peak_of(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_base64_full_of_junk_costs_about_its_size() -> None:
    junk = b"\xff!@#$%^&*() " * 200_000  # 2.4 MB that is not base64
    raw = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" + junk + b"\r\n"
    # Was ~100 times the input (a regex match object per junk byte).
    assert peak_of(lambda: full_message(raw)) < 16 * len(junk)


@pytest.mark.parametrize(
    "html",
    [
        b"<p>hi</p><p " + b"a=1 " * 250_000,  # one unclosed tag of a million bytes
        b"<p>hi</p><a href=x " + b"x " * 500_000,
        b"<x" * 500_000,
        b"<!--" * 250_000,
        b"<a '" * 250_000,
    ],
    ids=["attributes", "unclosed", "tag_starts", "comment_starts", "quote_starts"],
)
def test_hostile_html_costs_about_its_size(html: bytes) -> None:
    raw = b"Content-Type: text/html\r\n\r\n" + html
    # Was +170 MB for the first (html.parser's list entry per attribute).
    assert peak_of(lambda: full_message(raw)) < 20 * len(html)


def test_html_text_is_still_read() -> None:
    raw = (
        b"Content-Type: text/html\r\n\r\n<html><head><title>t</title><style>p{}</style></head>"
        b"<body><p class='a>b'>Hello &amp; <b title=\"x\">welcome</b></p><!-- hidden -->"
        b"<div>two</div>&#99999999999999999999;<p>unclosed <span"
    )
    assert full_message(raw)["text"] == "Hello & welcome\n\ntwo\n\ufffd\nunclosed"


@pytest.fixture
def json_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every JSON `fit_event` produces."""
    sizes: list[int] = []
    measure = message.json_size

    def recording(data: Any) -> int:
        sizes.append(size := measure(data))
        return size

    monkeypatch.setattr(message, "json_size", recording)
    return sizes


def test_many_headers_fit_with_few_measurements(json_sizes: list[int]) -> None:
    headers = {f"X-H{i}": "v" * (i % 50) for i in range(300_000)}
    fitted = fit_event({"uid": "a", "text": "t", "headers": headers})
    assert message.json_size(fitted) <= EVENT_LIMIT
    # The shortest headers stay: none kept is longer than one dropped.
    kept = max(len(name) + len(value) for name, value in fitted["headers"].items())
    assert all(len(n) + len(v) >= kept for n, v in headers.items() if n not in fitted["headers"])
    # Was one measurement per header (300,000), the last ones of the whole event.
    assert len(json_sizes) < 60
    assert max(json_sizes) < 20 * EVENT_LIMIT


def test_one_huge_header_is_cut_before_it_is_measured(json_sizes: list[int]) -> None:
    fitted = fit_event({"uid": "a", "subject": "s", "headers": {"X-Big": "y" * 50_000_000}})
    assert fitted["headers"] == {}
    assert fitted["subject"] == "s"
    assert max(json_sizes) < 2 * EVENT_LIMIT


def test_script_and_style_are_code_not_markup() -> None:
    raw = (
        b"Content-Type: text/html\r\n\r\n<p>before</p><script>if (a<b) { s = 'it'; }</SCRIPT>"
        b"<p>don't stop</p><style>p:after { content: '<x'; }</style><p>after</p><script>'open"
    )
    assert full_message(raw)["text"] == "before\n\ndon't stop\n\nafter"
