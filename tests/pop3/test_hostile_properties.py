"""Hostile byte streams against the sans-I/O core: typed answers or typed errors, bounded memory.

The streams are built from what attackers send: numbers past 2^64, message 0,
repeated numbers, UIDs too long or 8-bit, bare LF runs, terminators in odd
places, challenges outside AUTH, NUL bytes, and runs of one byte long enough to
cross the size caps. Whatever comes, the core either yields `Reply` events or
raises `POP3ProtocolError` / `POP3ConnectionError`, and the memory it allocates
while parsing stays within a fixed multiple of its per-answer cap.
"""

from __future__ import annotations

import tracemalloc

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


def feed(proto: POP3Protocol, data: bytes, chunk: int, *, eof: bool) -> str:
    """Feed `data` in `chunk`-byte pieces; return how it ended. Events are not kept."""
    try:
        for start in range(0, len(data), chunk):
            proto.receive_data(data[start : start + chunk])
            while (event := proto.next_event()) is not NEED_DATA:
                assert isinstance(event, Reply)
        if eof:
            proto.receive_data(b"")
            proto.next_event()
    except POP3ProtocolError:
        return "protocol error"
    except POP3ConnectionError:
        return "closed"
    return "ok"


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
    """Never another exception; parsing allocates at most a fixed multiple of the cap."""
    proto = logged_in()
    for command in commands:
        proto.send(command)
    tracemalloc.start()
    try:
        outcome = feed(proto, data, chunk, eof=eof)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome in {"ok", "protocol error", "closed"}
    # Input chunk + held partial line (<= cap) + body pieces and their join (2x cap after
    # bare LF doubles) + a listing of at most 1,000 entries: 8x the cap is ample.
    assert peak < 8 * LIMIT + chunk


@settings(max_examples=50, deadline=None)
@given(size=st.integers(LIMIT + 1, 4 * LIMIT), piece=st.sampled_from([b"\n", b"x", b"1 a\r\n"]))
def test_an_answer_past_the_cap_is_refused_for_every_command(size: int, piece: bytes) -> None:
    """Whatever the content, more than the cap in one answer is a protocol error."""
    for command in (Top(1, 0), Uidl(), Sizes(), Capa()):
        proto = logged_in()
        proto.send(command)
        data = b"+OK\r\n" + (piece * (size // len(piece) + 1))[:size] + b".\r\n"
        assert feed(proto, data, 4096, eof=False) == "protocol error", command
