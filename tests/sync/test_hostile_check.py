"""A check against whatever a server sends: success or a typed POP3 error, never a stall.

Hypothesis draws the server's answers (honest ones, numbers and ids outside the
RFCs, garbage, large bodies) and the hostile server (tests/servers/hostile.py)
sends them byte for byte to a real client, driven by the planner exactly as the
coordinator drives it. For every draw: the check either returns an outcome or
raises a `POP3Error`; no callback holds the event loop's thread for 50 ms of CPU
(as tests/pop3/test_trust.py measures it: wall clock would count the other
processes of a shared machine); and the memory allocated at once stays under the
check's budget.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from typing import TYPE_CHECKING

from hypothesis import HealthCheck, example, given, settings, strategies as st

from custom_components.pop3_mail.pop3 import POP3Error, Security, connect
from custom_components.pop3_mail.sync import state as mailbox_state
from custom_components.pop3_mail.sync.state import MailboxState
from tests.pop3.test_trust import loop_stall_while
from tests.servers.hostile import Close, Expect, HostileServer, Send, Step, login_script

if TYPE_CHECKING:
    from custom_components.pop3_mail.sync.check import CheckOutcome

#: What one check may hold at once (issue 9): 128 MiB.
BUDGET = 128 * 2**20
#: The longest the loop's thread may be kept busy by one callback.
MAX_STALL = 0.05

NUMBERS = st.sampled_from(
    [
        *(b"0", b"1", b"2", b"3", b"-1", b"00", b"18446744073709551615", b"18446744073709551616"),
        *(b"100000000", b"1" + b"0" * 20, b"1" + b"0" * 300, b"x", b""),
    ]
)
UIDS = st.sampled_from([b"u1", b"u2", b"u3", b"u" * 70, b"u" * 71, b"caf\xc3\xa9", b""])
GARBAGE = st.binary(max_size=64).map(lambda data: data.replace(b"\n", b" ") + b"\r\n")
HEADERS = st.sampled_from(
    [
        b"From: alerts@alarm.example\r\nSubject: hi\r\n\r\n",
        b"Subject: =?utf-8?b?" + b"!" * 200 + b"?=\r\n\r\n",
        b"X: " + b"y" * 5000 + b"\r\n\r\n",
        b"\n" * 300_000,
        (b"H: v\r\n" * 20_000) + b"\r\n",
        b"..\r\n" * 10,
    ]
)


@st.composite
def answers(draw: st.DrawFn) -> bytes:
    """One answer of the server, to whatever command it was sent after."""
    kind = draw(st.sampled_from(["status", "pair", "list", "top", "garbage", "err"]))
    match kind:
        case "status":
            return b"+OK " + draw(NUMBERS) + b" " + draw(NUMBERS) + b"\r\n"
        case "pair":
            return b"+OK " + draw(NUMBERS) + b" " + draw(UIDS) + b"\r\n"
        case "list":
            lines = draw(st.lists(st.tuples(NUMBERS, st.one_of(NUMBERS, UIDS)), max_size=5))
            return b"+OK\r\n" + b"".join(n + b" " + v + b"\r\n" for n, v in lines) + b".\r\n"
        case "top":
            return b"+OK\r\n" + draw(HEADERS) + b".\r\n"
        case "err":
            return b"-ERR [SYS/TEMP] " + draw(GARBAGE)
        case _:
            return draw(GARBAGE)


async def run_check(host: str, port: int, state: MailboxState) -> CheckOutcome | None:
    """One check, driven as the coordinator drives it; None when it failed with a POP3Error."""
    try:
        return await _check(host, port, state)
    except POP3Error:
        # Typed: the coordinator turns it into a translated failure with backoff.
        return None


async def _check(host: str, port: int, state: MailboxState) -> CheckOutcome:
    async with connect(
        host,
        port,
        security=Security.NONE,
        username="alice",
        password="secret",
        command_timeout=2.0,
    ) as session:
        checker = mailbox_state.new_check(state, top_lines=0)
        requests = checker.first_requests()
        whole = session.max_response_bytes
        while requests:
            # As the coordinator: rounds of TOPs under the check's cap, so the budget holds.
            session.max_response_bytes = checker.answer_limit or whole
            requests = checker.feed(await session.pipeline(requests))
        return checker.outcome()


def known_state(known: int) -> MailboxState:
    """A mailbox whose earlier checks saw `known` messages (0: a first check)."""
    if known == 0:
        return MailboxState()
    return MailboxState(initialised=True, known_uids=tuple(f"u{n}" for n in range(1, known + 1)))


async def one_check(state: MailboxState, replies: list[bytes]) -> float:
    """Run a check against `replies`; return the longest hold of the loop."""
    script: list[Step] = [*login_script()]
    for reply in replies:
        script += [Expect(rb".*"), Send(reply)]
    script.append(Close())
    async with HostileServer(script) as server:
        _, stall, _ = await loop_stall_while(run_check(server.host, server.port, state))
    return stall


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(known=st.integers(0, 3), replies=st.lists(answers(), max_size=8))
# The cases, replayed every run: a STAT count the old planner turned into a
# list on the loop (10^7: 2 s there), numbers past 2^64, a 2 MB bare-LF TOP.
@example(known=1, replies=[b"+OK 10000000 10\r\n", b"+OK 1 u1\r\n"])
@example(known=1, replies=[b"+OK 2 " + b"1" + b"0" * 20 + b"\r\n", b"+OK 1 u1\r\n"])
@example(known=0, replies=[b"+OK 18446744073709551616 10\r\n", b"+OK\r\n.\r\n"])
@example(
    known=1,
    replies=[
        b"+OK 2 40\r\n",
        b"+OK 1 u1\r\n",
        b"+OK 2 40\r\n",
        b"+OK\r\n" + b"\n" * 2_000_000 + b".\r\n",
        b"+OK\r\n",
    ],
)
def test_a_check_succeeds_or_fails_typed_without_stalls(
    socket_enabled: None, known: int, replies: list[bytes]
) -> None:
    """Whatever the server answers: an outcome or a POP3Error, no 50 ms stall, bounded memory."""
    tracemalloc.start()
    try:
        stall = asyncio.run(one_check(known_state(known), replies))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stall < MAX_STALL
    assert peak < BUDGET
