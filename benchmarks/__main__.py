"""Entry point: `python -m benchmarks SCENARIO ...` (see benchmarks/README.md)."""

from .cli import main

raise SystemExit(main())
