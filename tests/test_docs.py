"""docs/ stays true: the CLI reference is what `--help` prints, for every command and flag."""

import re
from pathlib import Path

import click

from mer_search.cli import main
from mer_search.cli_reference import render

REPO = Path(__file__).resolve().parents[1]
# --workers defaults to min(2, this machine's CPUs): the one machine-dependent line
MACHINE = re.compile(r"(--workers INTEGER RANGE.*\[default: )\d+")


def _same_on_any_machine(text: str) -> str:
    return MACHINE.sub(r"\1N", text)


def test_docs_cli_is_the_generated_reference():
    assert _same_on_any_machine((REPO / "docs" / "cli.md").read_text()) == _same_on_any_machine(render()), \
        "docs/cli.md is stale: run `python -m mer_search.cli_reference > docs/cli.md`"


def test_every_command_and_flag_is_in_the_reference():
    text = (REPO / "docs" / "cli.md").read_text()
    seen = 0

    def walk(command: click.Command, path: list[str]) -> None:
        nonlocal seen
        assert f"## `{' '.join(path)}`" in text, path
        for param in command.params:
            for flag in param.opts + param.secondary_opts:
                if flag.startswith("-"):
                    assert flag in text, (path, flag)
                    seen += 1
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    walk(main, ["mer-search"])
    assert seen > 100
