"""The README's settings table and its commands match the code, so they cannot drift apart."""

from __future__ import annotations

import re

import attrs
import pytest

from benchmarks.cli import build_parser as benchmark_parser
from fitiq_rt.cli import build_parser, main
from fitiq_rt.config import SETTINGS, Settings, settings_markdown
from tests.servers import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def test_the_settings_table_is_the_generated_one_for_every_variable() -> None:
    assert len(SETTINGS) == len(attrs.fields(Settings))  # every field is a declared setting
    assert all(info.meaning for info in SETTINGS.values())
    assert settings_markdown() in README, "regenerate it: python -m fitiq_rt.config"


def test_serve_help_gives_each_flag_its_meaning_and_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    flat = " ".join(capsys.readouterr().out.split())
    for variable, info in SETTINGS.items():
        assert f"{info.meaning} (env {variable}; default {info.shown_default})" in flat, variable


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


def test_the_documented_numeric_defaults_are_the_real_ones() -> None:
    defaults = {field.name: field.default for field in attrs.fields(Settings)}
    for variable, info in SETTINGS.items():
        real = defaults[info.field]
        if isinstance(real, int | float) and not isinstance(real, bool):
            assert float(info.shown_default.split()[0]) == real, variable
