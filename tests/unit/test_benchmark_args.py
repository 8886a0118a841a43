"""The benchmark CLI refuses nonsense counts and names what a run-only install lacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.cli import build_parser
from tests.servers import REPO_ROOT


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["churn", "--sessions", "-5"], "argument --sessions: must be 1 or more, got -5"),
        (["e2e", "--rate", "0"], "argument --rate: must be more than 0, got 0"),
        (["idle", "--hold", "-1"], "argument --hold: must be 0 or more, got -1"),
        (["compare", "--churn-sessions", "x"], "argument --churn-sessions: 'x' is not an integer"),
        (["wslib", "--rounds", "0"], "argument --rounds: must be 1 or more, got 0"),
        (["instructions", "--requests", "0"], "argument --requests: must be 1 or more, got 0"),
        (
            ["instructions", "--kinds", "404,put"],
            "argument --kinds: takes 404, post, delivered (comma-separated), got '404,put'",
        ),
    ],
)
def test_bad_counts_are_refused_with_the_option_named(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().endswith(message)


def test_a_run_only_install_is_told_which_install_the_harness_needs() -> None:
    code = (
        "import sys, runpy; sys.modules['httpx'] = None; sys.argv = ['benchmarks', 'churn'];"
        "runpy.run_module('benchmarks', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "benchmarks: needs the dev install (no module 'httpx'): .venv/bin/pip install -e '.[dev]'"
    )
