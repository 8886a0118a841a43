"""Entry point: `python -m benchmarks SCENARIO ...` (see benchmarks/README.md)."""

import sys

try:
    from .cli import main
except ModuleNotFoundError as missing:  # the run-only install lacks the harness's clients
    print(
        f"benchmarks: needs the dev install (no module {missing.name!r}): "
        ".venv/bin/pip install -e '.[dev]'",
        file=sys.stderr,
    )
    raise SystemExit(2) from None

raise SystemExit(main())
