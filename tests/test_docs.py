"""docs/ stays true: the CLI reference is what `--help` prints, for every command and flag."""

import re
from pathlib import Path

import click
import pytest

from mer_search.cli import main
from mer_search.cli.reference import render

REPO = Path(__file__).resolve().parents[1]
# --workers defaults to min(2, this machine's CPUs): the one machine-dependent line
MACHINE = re.compile(r"(--workers INTEGER RANGE.*\[default: )\d+")


def _same_on_any_machine(text: str) -> str:
    return MACHINE.sub(r"\1N", text)


def test_docs_cli_is_the_generated_reference():
    assert _same_on_any_machine((REPO / "docs" / "cli.md").read_text()) == _same_on_any_machine(render()), \
        "docs/cli.md is stale: run `python -m mer_search.cli.reference > docs/cli.md`"


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


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation but - and _ dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _headings(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)          # not the comments in code blocks
    return {_slug(m) for m in re.findall(r"^#+ (.*)$", text, flags=re.M)}


def test_every_link_in_the_readme_and_docs_reaches_a_file_and_heading():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    checked = 0
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            assert path.exists(), f"{page.name}: link to {target}: no such file"
            if anchor:
                assert anchor in _headings(path), f"{page.name}: link to {target}: no such heading"
            checked += 1
    assert checked > 20


def test_every_figure_in_the_budget_table_cites_its_measurement():
    text = (REPO / "README.md").read_text()
    table = text[text.index("## Budgets, in minutes"):].split("\n\n")[2]
    rows = [r for r in table.splitlines()[2:]]
    assert [r.split("|")[1].strip() for r in rows] == ["tiny", "small", "medium", "large"]
    cited = 0
    for row in rows:
        for cell in row.split("|")[3:-1]:
            if re.search(r"\d", cell):
                assert "bench/RESULTS.md#" in cell, f"a figure without its source: {cell.strip()}"
                cited += 1
            else:
                assert cell.strip() == "not measured", cell
    assert cited >= 4


def test_the_readme_reads_in_the_order_a_newcomer_needs():
    text = (REPO / "README.md").read_text()
    sections = re.findall(r"^## (.*)$", text, flags=re.M)
    assert sections == ["What it measured", "Install and demo", "Real MELD in three commands", "Budgets, in minutes",
                        "Labelling new dialogues", "Your own GPUs, and a Ray cluster", "Extending", "The report",
                        "Documentation"]
    assert len(text.splitlines()) <= 230
    # the test command CI runs is the one the README gives
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci.endswith('.venv/bin/python -m pytest -m "not slow"') and '.venv/bin/python -m pytest -m "not slow"' in text


def test_nothing_cites_a_file_outside_the_repository():
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    cites = [f for f in files if f.endswith((".md", ".py", ".yaml", ".toml", ".sh", ".txt"))
             and re.search(r"DEVELOPERS\.md|DESIGN\.md", (REPO / f).read_text(errors="replace"))]
    assert cites == []


def test_the_example_space_in_docs_sweeps_is_a_valid_space(tmp_path):
    from mer_search.search.space import load_space, validate

    text = (REPO / "docs" / "sweeps.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", text, flags=re.S).group(1)
    path = tmp_path / "text_lstm.yaml"
    path.write_text(example)
    validate(load_space(path))
    assert example.splitlines()[0] == "# mer-search sweep spaces/text_lstm.yaml --prepared runs/meld"


def test_docs_models_names_every_shipped_config_and_registered_model():
    from mer_search.models import REGISTRY, _load_all

    _load_all()                             # importing the families registers them

    text = (REPO / "docs" / "models.md").read_text()
    configs = [p.stem for p in (REPO / "mer_search" / "configs").glob("*.yaml")]
    assert len(configs) >= 14 and [c for c in configs if f"`{c}`" not in text] == []
    assert len(REGISTRY) >= 12 and [m for m in REGISTRY if f"`{m}`" not in text] == []


def test_the_example_schema_in_docs_data_is_the_shipped_one():
    import yaml

    text = (REPO / "docs" / "data.md").read_text()
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, flags=re.S).group(1))
    assert example == yaml.safe_load((REPO / "data_prep" / "datasets" / "emorynlp.yaml").read_text())
