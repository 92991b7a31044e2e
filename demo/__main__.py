"""`python -m demo` is `scripts/demo`."""

from demo.run import main

main()
