"""The crash test's rules (tests/crash/verdict.py) against hand-made histories.

The crash test itself runs Home Assistant for minutes (scripts/crash_test, in CI);
these tests make sure its verdict catches each way the contract can be broken, and
lets pass the one repeat the contract allows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.crash.driver import state_file_problems
from tests.crash.verdict import Announcement, RunEnd, judge, tracebacks_of_integration

if TYPE_CHECKING:
    from pathlib import Path

ENTRY = "01ENTRY"


def said(run: int, check: int, *numbers: int, t: float = 0.0) -> list[Announcement]:
    """Announcements of messages `numbers` (uid u<n>, Message-ID <n@x>) in one check."""
    return [Announcement(run, check, t, f"u{n}", f"<{n}@x>") for n in numbers]


def delivered(*numbers: int) -> list[str]:
    return [f"<{n}@x>" for n in numbers]


def killed(run: int, t: float = 0.0) -> RunEnd:
    return RunEnd(run, killed=True, t=t, mode="announce")


def stopped(run: int) -> RunEnd:
    return RunEnd(run, killed=False, t=0.0, mode="stop")


def test_every_message_once_is_clean() -> None:
    verdict = judge(
        delivered(1, 2, 3),
        [*said(1, 0, 1), *said(1, 1, 2), *said(2, 0, 3)],
        [killed(1), stopped(2)],
    )
    assert verdict.ok, verdict.violations
    assert verdict.summary() == "delivered 3, announced 3, missing 0, duplicates 0, kills 1"


def test_a_message_never_announced_is_missing() -> None:
    verdict = judge(delivered(1, 2), said(1, 0, 1), [stopped(1)])
    assert not verdict.ok
    assert verdict.missing == 1
    assert "<2@x>" in verdict.violations[0]


def test_the_last_check_before_a_kill_may_be_repeated_by_the_next_start() -> None:
    verdict = judge(
        delivered(1, 2, 3),
        [*said(1, 0, 1), *said(1, 1, 2, 3, t=10.0), *said(2, 0, 2, 3), *said(2, 1)],
        [killed(1, t=10.004), stopped(2)],
    )
    assert verdict.ok, verdict.violations
    assert verdict.duplicates == 2
    assert verdict.summary() == "delivered 3, announced 3, missing 0, duplicates 2, kills 1"
    assert [(r.message_id, r.before_kill_ms) for r in verdict.repeats] == [
        ("<2@x>", 4.0),
        ("<3@x>", 4.0),
    ]
    assert verdict.last_batch_before_kill == [(1, 4.0, True)]


def test_repeats_across_several_kills_in_a_row() -> None:
    # Killed again right after repeating: the next start repeats once more.
    verdict = judge(
        delivered(1),
        [*said(1, 2, 1), *said(2, 0, 1), *said(4, 0, 1)],
        [killed(1), killed(2), killed(3), stopped(4)],
    )
    assert verdict.ok, verdict.violations
    assert verdict.duplicates == 2


def test_a_start_killed_while_repeating_leaves_the_rest_to_the_next() -> None:
    verdict = judge(
        delivered(1, 2, 3),
        [*said(1, 1, 1, 2, 3), *said(2, 0, 1), *said(3, 0, 1, 2, 3)],
        [killed(1), killed(2), stopped(3)],
    )
    assert verdict.ok, verdict.violations
    assert verdict.duplicates == 4


def test_an_earlier_check_of_a_killed_run_must_not_be_repeated() -> None:
    verdict = judge(
        delivered(1, 2),
        [*said(1, 0, 1), *said(1, 1, 2), *said(2, 0, 1)],
        [killed(1), stopped(2)],
    )
    assert not verdict.ok
    assert "before the last announcing check" in verdict.violations[0]


def test_nothing_is_repeated_after_a_clean_stop() -> None:
    verdict = judge(delivered(1), [*said(1, 0, 1), *said(2, 0, 1)], [stopped(1), stopped(2)])
    assert not verdict.ok
    assert "after a clean stop" in verdict.violations[0]


def test_nothing_is_announced_twice_within_one_run() -> None:
    verdict = judge(delivered(1), [*said(1, 0, 1), *said(1, 1, 1)], [killed(1)])
    assert not verdict.ok
    assert "announced again within one run" in verdict.violations[0]


def test_the_repeat_comes_with_the_next_start_not_later() -> None:
    verdict = judge(
        delivered(1, 2),
        [*said(1, 0, 1), *said(2, 0, 2), *said(3, 0, 1)],
        [killed(1), killed(2), stopped(3)],
    )
    assert not verdict.ok
    assert "later start than the next one" in verdict.violations[0]


def test_a_start_between_that_checked_twice_should_have_repeated() -> None:
    verdict = judge(
        delivered(1, 2, 3),
        [*said(1, 0, 1), *said(2, 0, 2), *said(2, 1, 3), *said(3, 0, 1)],
        [killed(1), killed(2), stopped(3)],
    )
    assert not verdict.ok
    assert "later start than the next one" in verdict.violations[0]


def test_the_repeat_comes_with_the_first_check_of_the_next_start() -> None:
    verdict = judge(
        delivered(1, 2),
        [*said(1, 0, 1), *said(2, 0, 2), *said(2, 1, 1)],
        [killed(1), stopped(2)],
    )
    assert not verdict.ok
    assert "after the first announcing check of the next start" in verdict.violations[0]


def test_a_message_keeps_its_uid_and_a_uid_its_message() -> None:
    other_uid = Announcement(2, 0, 0.0, "u9", "<1@x>")
    verdict = judge(delivered(1), [*said(1, 0, 1), other_uid], [killed(1), stopped(2)])
    assert any("several uids" in v for v in verdict.violations)
    shared_uid = Announcement(1, 0, 0.0, "u1", "<2@x>")
    verdict = judge(delivered(1, 2), [*said(1, 0, 1), shared_uid], [stopped(1)])
    assert any("several messages" in v for v in verdict.violations)


def test_mail_never_delivered_is_a_violation() -> None:
    verdict = judge(delivered(1), said(1, 0, 1, 2), [stopped(1)])
    assert any("never delivered" in v for v in verdict.violations)


def test_problems_found_elsewhere_fail_the_verdict() -> None:
    verdict = judge(delivered(1), said(1, 0, 1), [stopped(1)], problems=["state file broken"])
    assert verdict.violations == ["state file broken"]


LOG = """\
2026-12-02 19:23:36.897 WARNING (MainThread) [homeassistant.bootstrap] Skipping pip
2026-12-02 19:23:37.445 ERROR (MainThread) [homeassistant.setup] Setup failed for 'x'
Traceback (most recent call last):
  File "/venv/homeassistant/components/x/__init__.py", line 1, in <module>
ModuleNotFoundError: No module named 'x_lib'
2026-12-02 19:23:38.000 ERROR (MainThread) [homeassistant.config_entries] Error setting up entry
Traceback (most recent call last):
  File "/tmp/config/custom_components/pop3_mail/coordinator.py", line 9, in _async_setup
ValueError: broken
2026-12-02 19:23:39.000 ERROR (MainThread) [custom_components.pop3_mail.coordinator] Oops
Traceback (most recent call last):
  File "/venv/asyncio/tasks.py", line 1, in run
RuntimeError: inside
2026-12-02 19:23:40.000 ERROR (MainThread) [custom_components.pop3_mail] Check failed: timeout
"""


def test_tracebacks_of_the_integration_are_found_and_others_are_not() -> None:
    found = tracebacks_of_integration(LOG)
    assert len(found) == 2
    assert "ValueError: broken" in found[0]
    assert "RuntimeError: inside" in found[1]
    assert tracebacks_of_integration(LOG.split("2026-12-02 19:23:38", maxsplit=1)[0]) == []


def test_state_files_must_exist_and_be_store_documents(tmp_path: Path) -> None:
    assert state_file_problems(tmp_path, ENTRY) == [f"pop3_mail.{ENTRY} is missing"]
    state = tmp_path / f"pop3_mail.{ENTRY}"
    state.write_text('{"version": 1, "minor_version": 1, "key": "k", "data": {}}')
    (tmp_path / "tmpab12cd").write_text("{half")  # a write in progress is not state
    assert state_file_problems(tmp_path, ENTRY) == []
    state.write_text('{"version": 1, "key": "k", "da')
    (tmp_path / f"pop3_mail.{ENTRY}.journal").write_text("[]")
    problems = state_file_problems(tmp_path, ENTRY)
    assert len(problems) == 2
    assert "is not valid JSON" in problems[0]
    assert "not a Store document" in problems[1]


def test_one_line_per_broken_rule_not_per_message() -> None:
    verdict = judge(
        delivered(1, 2, 3),
        [*said(1, 0, 1, 2), *said(1, 1, 3), *said(2, 0, 1, 2)],
        [killed(1), stopped(2)],
    )
    assert len(verdict.violations) == 1
    assert verdict.violations[0].startswith("2 messages announced again though")
    assert "<1@x>, <2@x>" in verdict.violations[0]
