"""Benchmarks of pop3_mail: scripts that print ratios against baselines measured in the same run.

Run from the repository root:

    .venv/bin/python -m benchmarks.bench_check [--sizes 1000,10000,100000] [--repeat 5]
    .venv/bin/python -m benchmarks.bench_state [--size 100000] [--repeat 5]

Each script starts its own Dovecot (tests/servers/dovecot.py) on 127.0.0.1, prints a
markdown table with PASS/FAIL per target, writes it into benchmarks/results.md
(its own section) and stops the server.
"""
