"""`python -m tests.crash`: see tests/crash/driver.py."""

from tests.crash.driver import main

raise SystemExit(main())
