"""The crash test: a real Home Assistant SIGKILLed at random moments while mail arrives.

`scripts/crash_test` runs `python -m tests.crash` (driver.py); verdict.py holds the
pure rules it judges by, and crash_probe/ the test-only custom integration that
records every announcement in Home Assistant.
"""
