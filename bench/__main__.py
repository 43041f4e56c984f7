"""`python -m bench`: run the suite, print the table, write bench/results.json."""

from bench.suite import main

raise SystemExit(main())
