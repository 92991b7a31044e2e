"""Hostile byte streams against the sans-I/O core: typed answers or typed errors, bounded memory.

The streams are built from what attackers send: numbers past 2^64, message 0,
repeated numbers, UIDs too long or 8-bit, bare LF runs, terminators in odd
places, challenges outside AUTH, NUL bytes, and runs of one byte long enough to
cross the size caps. Whatever comes, the core either yields `Reply` events or
raises `POP3ProtocolError` / `POP3ConnectionError`, and what it holds while
parsing (unparsed input, the body so far, the listing so far) stays within its
caps. (Measured from the core's own figures: tracemalloc, tried first, upsets
coverage's sys.monitoring on Python 3.14 for the tests that run after it.)
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from custom_components.pop3_mail.pop3 import (
    Dele,
    POP3ConnectionError,
    POP3ProtocolError,
    Retr,
    Sizes,
    Stat,
    Top,
    Uidl,
)
from custom_components.pop3_mail.pop3.protocol import (
    NEED_DATA,
    Capa,
    Command,
    Pass,
    POP3Protocol,
    Reply,
)

LIMIT = 64 * 1024
COMMANDS: list[Command] = [Stat(), Sizes(), Sizes(1), Uidl(), Uidl(1), Top(1, 0), Retr(1), Capa()]
ATOMS = st.sampled_from(
    [
        b"+OK",
        b"-ERR",
        b" ",
        b"\r\n",
        b"\n",
        b"\r",
        b".",
        b"..",
        b"\n.\n",
        b"\r\n.\r\n",
        b"0 ",
        b"1 ",
        b"18446744073709551615",
        b"18446744073709551616",
        b"9" * 30,
        b"u" * 71,
        b"\xff\xfe",
        b"\x00",
        b"+ ",
        b"[IN-USE]",
        b"uid-1",
    ]
)
RUN = st.tuples(st.sampled_from([b"\n", b"x", b"1 a\r\n", b".\r\n"]), st.integers(1, 40_000)).map(
    lambda pair: pair[0] * pair[1]
)
STREAM = st.lists(ATOMS | RUN | st.binary(max_size=16), max_size=60).map(b"".join)


def logged_in() -> POP3Protocol:
    proto = POP3Protocol(max_response_bytes=LIMIT, max_listing=1000)
    proto.receive_data(b"+OK hi\r\n")
    proto.next_event()
    proto.send(Pass("secret"))
    proto.receive_data(b"+OK in\r\n")
    proto.next_event()
    return proto


def feed(proto: POP3Protocol, data: bytes, chunk: int, *, eof: bool) -> tuple[str, int]:
    """Feed `data` in `chunk`-byte pieces; return how it ended and the most the core held.

    Events are not kept, so what is held is the core's alone.
    """
    most = 0
    try:
        for start in range(0, len(data), chunk):
            proto.receive_data(data[start : start + chunk])
            most = max(most, proto.held_bytes)
            while (event := proto.next_event()) is not NEED_DATA:
                assert isinstance(event, Reply)
                most = max(most, proto.held_bytes)
            most = max(most, proto.held_bytes)
            assert len(proto._listing) <= proto.max_listing
        if eof:
            proto.receive_data(b"")
            proto.next_event()
    except POP3ProtocolError:
        return "protocol error", most
    except POP3ConnectionError:
        return "closed", most
    return "ok", most


@settings(max_examples=150, deadline=None)
@given(
    commands=st.lists(st.sampled_from([*COMMANDS, Dele(1)]), min_size=1, max_size=8),
    data=STREAM,
    chunk=st.sampled_from([1, 7, 512, 4096, 65536]),
    eof=st.booleans(),
)
def test_hostile_streams_give_typed_results_in_bounded_memory(
    commands: list[Command], data: bytes, chunk: int, eof: bool
) -> None:
    """Never another exception; the core never holds more than its caps allow."""
    proto = logged_in()
    for command in commands:
        proto.send(command)
    outcome, most = feed(proto, data, chunk, eof=eof)
    assert outcome in {"ok", "protocol error", "closed"}
    # The unparsed input (one chunk, plus a held partial line within the cap) and the
    # body so far (within the cap, doubled at most when bare LF become CRLF).
    assert most <= chunk + 3 * LIMIT


@settings(max_examples=50, deadline=None)
@given(size=st.integers(LIMIT + 1, 4 * LIMIT), piece=st.sampled_from([b"\n", b"x", b"1 a\r\n"]))
def test_an_answer_past_the_cap_is_refused_for_every_command(size: int, piece: bytes) -> None:
    """Whatever the content, more than the cap in one answer is a protocol error."""
    for command in (Top(1, 0), Uidl(), Sizes(), Capa()):
        proto = logged_in()
        proto.send(command)
        data = b"+OK\r\n" + (piece * (size // len(piece) + 1))[:size] + b".\r\n"
        assert feed(proto, data, 4096, eof=False)[0] == "protocol error", command
