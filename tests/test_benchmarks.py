"""The benchmark scripts still run against the code they measure (a smoke run, not a timing).

They reach into the client, the sync planner and the coordinator; a rename there must fail
here rather than leave the published figures unreproducible. Small mailboxes only: whether
the targets are met is the scripts' own verdict (exit 1 at sizes where a target cannot hold).
"""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.servers.dovecot import DovecotServer

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args, "--no-save", "--ordinary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_bench_check_runs(dovecot: DovecotServer) -> None:
    """The check benchmark measures all three clients (dovecot: its presence is required)."""
    result = _run("benchmarks.bench_check", "--sizes", "1000", "--repeat", "1")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 1), result.stderr
    for row in ("| 1,000    | ours", "| 1,000    | poplib", "| 1,000    | floor", "| pipelined"):
        assert row in result.stdout


def test_bench_state_runs(dovecot: DovecotServer) -> None:
    """The state benchmark runs and meets its limits at a small size.

    Its verdict is on medians: three runs, so one scheduler hiccup of a shared CI machine
    (one run's stall) is not taken for the code's cost, while a real regression still fails.
    """
    result = _run("benchmarks.bench_state", "--size", "2000", "--repeat", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Overall: PASS" in result.stdout


def test_bench_watches_runs() -> None:
    """The watches benchmark runs (pure CPU work: no server) and meets its limits when small."""
    result = _run("benchmarks.bench_watches", "--size", "500", "--repeat", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| state on disk (JSON)" in result.stdout
    assert "Overall: PASS" in result.stdout


def test_bench_disk_runs() -> None:
    """The disk benchmark writes nothing for an unchanged day, through the real store."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_disk",
            "--size",
            "500",
            "--checks",
            "60",
            "--no-save",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| unchanged " in result.stdout
    assert "| 0 B (0 writes)" in result.stdout


def test_bench_hostile_runs() -> None:
    """The hostile-corpus benchmark runs every case (this tree only, tiny inputs)."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_hostile", "--scale", "0.001", "--no-before"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for case in ("bare_lf_top", "stat_1e8", "base64_junk", "unclosed_html", "headers_300k"):
        assert f"| {case} | " in result.stdout
    assert "(cut)" not in result.stdout
