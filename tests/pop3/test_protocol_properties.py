"""Property tests of the sans-I/O core: any bytes, any chunking, dot-stuffing round trips."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from custom_components.pop3_mail.pop3 import (
    Dele,
    List,
    POP3ConnectionError,
    POP3ProtocolError,
    Retr,
    Stat,
    Top,
    Uidl,
)
from custom_components.pop3_mail.pop3.protocol import (
    NEED_DATA,
    Capa,
    Command,
    Event,
    Pass,
    POP3Protocol,
    Reply,
)

COMMANDS: list[Command] = [
    Stat(),
    List(),
    List(1),
    Uidl(),
    Uidl(1),
    Top(1, 0),
    Retr(1),
    Dele(1),
    Capa(),
]

# Bytes that look like POP3 often enough to reach every parser branch.
POP3ISH = st.lists(
    st.sampled_from(
        [b"+OK", b"-ERR", b" ", b"\r\n", b"\n", b".", b"..", b"1", b"2 ", b"[IN-USE]", b"+ "]
    )
    | st.binary(max_size=12),
    max_size=40,
).map(b"".join)


def run(
    commands: list[Command], chunks: list[bytes], *, eof: bool, limit: int = 64
) -> tuple[list[Event], str]:
    """Feed `chunks` after sending `commands`; return the events and how it ended."""
    proto = POP3Protocol(max_response_bytes=limit)
    # Requests are only allowed once logged in: get there first.
    proto.receive_data(b"+OK hi\r\n")
    proto.next_event()
    proto.send(Pass("secret"))
    proto.receive_data(b"+OK in\r\n")
    proto.next_event()
    for command in commands:
        proto.send(command)
    events: list[Event] = []
    feeds = [*chunks, b""] if eof else chunks
    try:
        for chunk in feeds:
            proto.receive_data(chunk)
            # Each event consumes an answer: more loops than answers would be a hang.
            for _ in range(len(commands) + 2):
                event = proto.next_event()
                if event is NEED_DATA:
                    break
                events.append(event)
            else:
                raise AssertionError("next_event() never asked for data")
    except POP3ProtocolError:
        return events, "protocol error"
    except POP3ConnectionError:
        assert eof
        return events, "closed"
    return events, "need data"


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` cut at the given offsets (no empty chunk: that would mean end of stream)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    return [piece for piece in pieces if piece]


@settings(max_examples=500, deadline=None)
@given(
    commands=st.lists(st.sampled_from(COMMANDS), max_size=6),
    data=POP3ISH,
    cuts=st.lists(st.integers(min_value=0), max_size=8),
    eof=st.booleans(),
)
def test_any_bytes_parse_or_fail_cleanly_whatever_the_chunking(
    commands: list[Command], data: bytes, cuts: list[int], eof: bool
) -> None:
    """Any input gives answers or POP3ProtocolError (never another exception nor a hang),
    and cutting it into other chunks changes nothing."""
    whole = run(commands, [data] if data else [], eof=eof)
    assert run(commands, split(data, cuts), eof=eof) == whole


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=1, max_size=200), eof=st.booleans())
def test_random_binary(data: bytes, eof: bool) -> None:
    """Plain random bytes (with every command pending) never escape as another exception."""
    run(COMMANDS, [data], eof=eof, limit=2**20)


LINE = st.binary(max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b)


def stuff(lines: list[bytes], eol: bytes = b"\r\n") -> bytes:
    """What a server sends for these lines: RFC 1939 dot-stuffing (without the terminator)."""
    return b"".join((b"." + line if line.startswith(b".") else line) + eol for line in lines)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(LINE, max_size=20),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
    eol=st.sampled_from([b"\r\n", b"\n"]),
)
def test_dot_stuffing_round_trips(lines: list[bytes], cuts: list[int], eol: bytes) -> None:
    """stuff(x) parsed gives back x (with CRLF), however the bytes arrive, even with bare LF."""
    wire = b"+OK message follows" + eol + stuff(lines, eol) + b"." + eol
    events, end = run([Retr(1)], split(wire, cuts), eof=False, limit=2**20)
    assert end == "need data"
    message = b"".join(line + b"\r\n" for line in lines)
    assert events == [Reply(Retr(1), ok=True, text="message follows", value=message)]
