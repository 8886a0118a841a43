"""The README's settings table and its commands match the code, so they cannot drift apart."""

from __future__ import annotations

import re

from benchmarks.cli import build_parser as benchmark_parser
from fitiq_rt.cli import build_parser
from fitiq_rt.config import ENV_FIELDS
from tests.servers import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def test_the_settings_table_lists_every_variable_and_no_other() -> None:
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| FITIQ_")]
    listed = {name for row in rows for name in re.findall(r"FITIQ_[A-Z_]+", row.split("|")[1])}
    assert listed == set(ENV_FIELDS)


def test_every_fitiq_rt_command_in_the_readme_parses() -> None:
    text = re.sub(r'"\$\([^)]*\)"', "TOKEN", README)  # a command substitution is one argument
    commands = re.findall(r"\.venv/bin/fitiq-rt ([a-z]+[^\n&|;`#\\]*)", text)
    assert len(commands) >= 3, commands
    parser = build_parser()
    for command in commands:
        parser.parse_args(command.split())


def test_the_benchmark_examples_parse() -> None:
    text = (REPO_ROOT / "benchmarks" / "README.md").read_text()
    examples = re.findall(r"^python -m benchmarks ([a-z]+[^\n#]*)", text, flags=re.MULTILINE)
    assert examples
    parser = benchmark_parser()
    for example in examples:
        parser.parse_args(example.replace("\\", " ").split())
