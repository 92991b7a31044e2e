"""The crash test's verdict: pure functions over what the run recorded.

Inputs are the Message-IDs delivered to Dovecot, the announcements the probe wrote
(one `Announcement` per `pop3_mail_new_message` event, tagged with the Home Assistant
run and the check that announced it), how each run ended, and the problems found
in state files and logs. The contract (../shared/CONTRACT.md) allows exactly one
kind of repeat: if Home Assistant dies in the instant between announcing a check's
messages and saving that fact, the next start announces that check's messages again
with the same uid. So a message may be announced more than once only when every
announcement but the last was in the last announcing check of a run that was
killed, and the next one came in the first announcing check of the next run that
announced anything (or of a later one, when the runs between were killed in their
first announcing check, while repeating it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
import itertools
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence


@dataclass(frozen=True, slots=True)
class Announcement:
    """One `pop3_mail_new_message` event as the probe recorded it."""

    run: int
    check: int  # the probe's check counter in that run; 0 is the check of the entry's setup
    t: float  # time.monotonic() in Home Assistant (the same clock as the driver's on Linux)
    uid: str
    message_id: str


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How one Home Assistant run ended."""

    run: int
    killed: bool  # SIGKILL; False for a clean stop (SIGTERM and waiting)
    t: float  # time.monotonic() of the kill, or of the stop request
    mode: str = ""  # what triggered the kill (login, announce, instant, random, timeout)


@dataclass(frozen=True, slots=True)
class Repeat:
    """A message announced again after a kill: how long before the kill it was announced."""

    message_id: str
    run: int
    before_kill_ms: float


@dataclass(slots=True)
class Verdict:
    """The figures and every broken rule."""

    delivered: int = 0
    announced: int = 0  # distinct Message-IDs announced
    announcements: int = 0  # events, repeats included
    missing: int = 0
    duplicates: int = 0  # announcements beyond the first of each message
    kills: int = 0
    violations: list[str] = field(default_factory=list)
    repeats: list[Repeat] = field(default_factory=list)
    #: For each killed run that announced something: ms from its last announcement to the
    #: kill, and whether that check's messages were announced again.
    last_batch_before_kill: list[tuple[int, float, bool]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every rule held."""
        return not self.violations

    def summary(self) -> str:
        """The last line the crash test prints."""
        return (
            f"delivered {self.delivered}, announced {self.announced}, missing {self.missing}, "
            f"duplicates {self.duplicates}, kills {self.kills}"
        )


MAX_LISTED = 10


def judge(
    delivered: Sequence[str],
    announcements: Sequence[Announcement],
    ends: Sequence[RunEnd],
    *,
    problems: Iterable[str] = (),
) -> Verdict:
    """Compare what was delivered with what was announced, and apply the contract.

    `announcements` are in the order the probe wrote them; `problems` are violations
    found elsewhere (an invalid state file, a traceback, Home Assistant exiting on its
    own), passed through into the verdict.
    """
    verdict = Verdict(
        delivered=len(delivered),
        announcements=len(announcements),
        kills=sum(end.killed for end in ends),
    )
    verdict.violations.extend(problems)
    ended = {end.run: end for end in ends}

    by_message: dict[str, list[Announcement]] = defaultdict(list)
    for announcement in announcements:
        by_message[announcement.message_id].append(announcement)
    verdict.announced = len(by_message)

    delivered_set = set(delivered)
    missing = [message_id for message_id in delivered if message_id not in by_message]
    verdict.missing = len(missing)
    if missing:
        verdict.violations.append(
            f"{len(missing)} delivered messages never announced: " + _listed(missing)
        )
    forged = [message_id for message_id in by_message if message_id not in delivered_set]
    if forged:
        verdict.violations.append(
            f"{len(forged)} announced messages were never delivered: " + _listed(forged)
        )

    verdict.violations.extend(_uid_mismatches(by_message))

    checks_of_run = _checks_of_runs(announcements)
    runs_announcing = sorted(checks_of_run)
    # One line per way of breaking the rule (and pair of runs), not one per message.
    broken: dict[str, list[str]] = defaultdict(list)
    for message_id, chain in by_message.items():
        verdict.duplicates += len(chain) - 1
        for first, again in itertools.pairwise(chain):
            problem = _repeat_problem(first, again, ended, checks_of_run, runs_announcing)
            if problem:
                broken[problem].append(message_id)
            else:
                kill = ended[first.run].t
                verdict.repeats.append(
                    Repeat(message_id, first.run, round((kill - first.t) * 1000, 1))
                )

    verdict.violations.extend(
        f"{len(messages)} messages announced again {problem}: {_listed(messages)}"
        for problem, messages in broken.items()
    )
    repeated_runs = {repeat.run for repeat in verdict.repeats}
    for run, checks in sorted(checks_of_run.items()):
        end = ended.get(run)
        if end is None or not end.killed:
            continue
        last = max(announcement.t for announcement in checks[max(checks)])
        verdict.last_batch_before_kill.append(
            (run, round((end.t - last) * 1000, 1), run in repeated_runs)
        )
    return verdict


def _repeat_problem(
    first: Announcement,
    again: Announcement,
    ended: Mapping[int, RunEnd],
    checks_of_run: Mapping[int, Mapping[int, list[Announcement]]],
    runs_announcing: Sequence[int],
) -> str | None:
    """Why announcing `again` after `first` breaks the contract, or None when it is allowed."""
    where = f"run {first.run} check {first.check}, then run {again.run} check {again.check}"
    if again.run == first.run:
        return f"within one run ({where})"
    end = ended.get(first.run)
    if end is None or not end.killed:
        return f"again after a clean stop ({where})"
    if first.check != max(checks_of_run[first.run]):
        return (
            f"though first announced before the last announcing check of the killed run ({where})"
        )
    # A start killed while it repeated the check (announcing nothing else) leaves the rest of
    # that check to the start after it.
    repeated = {a.message_id for a in checks_of_run[first.run][first.check]}
    skipped = [run for run in runs_announcing if first.run < run < again.run]
    if any(
        (end := ended.get(run)) is None
        or not end.killed
        or not {a.message_id for check in checks_of_run[run].values() for a in check} <= repeated
        for run in skipped
    ):
        return f"by a later start than the next one that announced anything ({where})"
    if again.check != min(checks_of_run[again.run]):
        return f"after the first announcing check of the next start ({where})"
    return None


def _uid_mismatches(by_message: Mapping[str, Sequence[Announcement]]) -> list[str]:
    """One Message-ID must keep one uid, and one uid must name one Message-ID."""
    problems = []
    messages_of_uid: dict[str, set[str]] = defaultdict(set)
    for message_id, chain in by_message.items():
        uids = {announcement.uid for announcement in chain}
        if len(uids) > 1:
            problems.append(f"{message_id} announced under several uids: {sorted(uids)}")
        for uid in uids:
            messages_of_uid[uid].add(message_id)
    problems.extend(
        f"uid {uid} announced for several messages: {_listed(sorted(messages))}"
        for uid, messages in messages_of_uid.items()
        if len(messages) > 1
    )
    return problems


def _checks_of_runs(
    announcements: Iterable[Announcement],
) -> dict[int, dict[int, list[Announcement]]]:
    """run -> check -> its announcements, for the runs that announced anything."""
    runs: dict[int, dict[int, list[Announcement]]] = defaultdict(lambda: defaultdict(list))
    for announcement in announcements:
        runs[announcement.run][announcement.check].append(announcement)
    return runs


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


# A record of Home Assistant's log starts with its time stamp; a traceback follows its record.
_RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[.,]\d+ ")
_RECORD_LOGGER = re.compile(r"^\S+ \S+ [A-Z]+ \([^)]*\) \[([^\]]+)\]")
OUR_LOGGER = "custom_components.pop3_mail"
OUR_PATH = "custom_components/pop3_mail/"


def tracebacks_of_integration(log: str) -> list[str]:
    """The records of Home Assistant's log with a traceback from the integration.

    A traceback counts when its record was logged by the integration's logger, or
    when one of its frames is in the integration's code (Home Assistant logs errors
    of a platform or a setup under its own loggers).
    """
    found = []
    for record in _records(log):
        if "Traceback (most recent call last)" not in record:
            continue
        match = _RECORD_LOGGER.match(record)
        logger = match.group(1) if match else ""
        if logger == OUR_LOGGER or logger.startswith(OUR_LOGGER + ".") or OUR_PATH in record:
            found.append(record)
    return found


def _records(log: str) -> list[str]:
    records: list[list[str]] = [[]]
    for line in log.splitlines():
        if _RECORD_START.match(line) and records[-1]:
            records.append([])
        records[-1].append(line)
    return ["\n".join(lines) for lines in records if lines]
