"""The layout's rules, checked on the source: imports run down the layers only and never in a circle, every
artifact's file names are spelled by its owner alone (sweep, run, feature, prepared and pipeline dirs), only
`Sweep` shuts Ray down, and the architecture page's tree names every module."""

import ast
import re
from pathlib import Path

import pytest

import mer_search
from data_prep.reader import PreparedDir
from mer_search.core.dirs import FeatureDir, RunDir, SweepDir
from mer_search.pipeline.layout import PipelineDir

REPO = Path(__file__).resolve().parents[1]
# the layers come from the layout: data_prep beneath everything, then mer_search's subpackages in the order
# mer_search.LAYERS gives; the package itself (its namespace API) sits above them all
TOP = len(mer_search.LAYERS) + 1

# the package's own namespace offers the common jobs (`mer_search.load(bundle).predict(df)`): imported inside
# the functions that offer them, so `import mer_search` stays light
PUBLIC_API = {("mer_search", "mer_search.serving.predict"), ("mer_search", "mer_search.search.sweep"),
              ("mer_search", "mer_search.search.space"), ("mer_search", "mer_search.pipeline")}


def layer(module: str, layers=mer_search.LAYERS) -> int:
    """0 for data_prep; 1 + the index of a module's subpackage in mer_search.LAYERS; a module of mer_search
    outside every layer package is an error naming it."""
    parts = module.split(".")
    if parts[0] == "data_prep":
        return 0
    if module == "mer_search":
        return len(layers) + 1
    if len(parts) >= 2 and parts[1] in layers:
        return 1 + layers.index(parts[1])
    raise AssertionError(f"{module} is in no layer: put it in one of mer_search's layer packages "
                         f"({', '.join(layers)}), or add a package to mer_search.LAYERS")


def modules(root: Path = REPO, packages=("mer_search", "data_prep")):
    for path in sorted(p for package in packages for p in root.glob(f"{package}/**/*.py")):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        yield name.removesuffix(".__init__"), path


def imports(path: Path, root: Path = REPO):
    """The modules a file imports, at its top or inside functions; not those under `if TYPE_CHECKING:`, which
    only annotations read."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                   for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            package = root.joinpath(*node.module.split("."))
            for alias in node.names:       # `from mer_search import models`: the module it names
                sub = package / alias.name
                if alias.name.startswith("__"):
                    continue               # `from mer_search import __version__`: metadata, not code
                yield f"{node.module}.{alias.name}" if sub.is_dir() or sub.with_suffix(".py").exists() \
                    else node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def test_layers_come_from_the_package_layout():
    assert mer_search.LAYERS == ("core", "data", "models", "training", "serving", "search", "pipeline", "cli")
    assert layer("data_prep.prepare") == 0 and layer("mer_search.core.dirs") == 1
    assert layer("mer_search.models.speech") < layer("mer_search.training.train") < layer("mer_search.search.sweep")
    assert layer("mer_search.cli") == layer("mer_search.cli.options") == TOP - 1
    packages = sorted(p.name for p in (REPO / "mer_search").iterdir() if (p / "__init__.py").is_file())
    assert packages == sorted(mer_search.LAYERS)                       # every package is a layer, and back
    flat = sorted(p.name for p in (REPO / "mer_search").glob("*.py") if p.name != "__init__.py")
    assert flat == [], f"modules outside every layer package: {flat}"
    with pytest.raises(AssertionError, match="in no layer"):
        layer("mer_search.somewhere_new")                              # a flat module, planted


def test_an_upward_import_is_named(tmp_path):
    """A planted core module that imports from training: the walk reports it."""
    path = tmp_path / "planted.py"
    path.write_text("from mer_search.core.dirs import RunDir\n\ndef f():\n    from mer_search.training.train import fit\n")
    assert [t for t in imports(path) if layer(t) > layer("mer_search.core.planted")] == ["mer_search.training.train"]


def test_no_import_runs_from_a_lower_layer_to_a_higher_one():
    upward = []
    checked = 0
    for name, path in modules():
        for target in imports(path):
            if target.split(".")[0] not in ("mer_search", "data_prep"):
                continue
            checked += 1
            if layer(target) > layer(name) and (name, target) not in PUBLIC_API:
                upward.append(f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})")
    assert checked > 150          # the walk saw the project's imports
    assert upward == []


def import_cycles(root: Path = REPO, packages=("mer_search", "data_prep"), allowed=PUBLIC_API) -> list[list[str]]:
    """Every circle of imports between the project's modules (imports inside functions count: they still tie
    the two modules together), each as the path that closes it, shortest first."""
    names = {name for name, _ in modules(root, packages)}
    graph = {name: sorted({t for t in imports(path, root) if t in names and t != name and (name, t) not in allowed})
             for name, path in modules(root, packages)}
    cycles, seen = [], set()
    for start in sorted(graph):          # breadth first from each module back to itself: its shortest circle
        paths, visited = [[start]], {start}
        while paths:
            path = paths.pop(0)
            for nxt in graph[path[-1]]:
                if nxt == start:
                    key = frozenset(path)
                    if key not in seen:
                        seen.add(key)
                        cycles.append([*path, start])
                    paths = []
                    break
                if nxt not in visited:
                    visited.add(nxt)
                    paths.append([*path, nxt])
    return sorted(cycles, key=len)


def test_no_import_cycles():
    assert [" -> ".join(c) for c in import_cycles()] == []


def test_the_cycle_check_names_a_planted_circle(tmp_path):
    pkg = tmp_path / "planted"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from planted.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from planted.c import g\n")     # inside a function: still a circle
    (pkg / "c.py").write_text("import planted.a\n")
    (pkg / "d.py").write_text("from planted import a\n")                       # into the circle, not part of it
    assert [" -> ".join(c) for c in import_cycles(tmp_path, ("planted",))] == \
        ["planted.a -> planted.b -> planted.c -> planted.a"]


def test_data_prep_knows_nothing_of_mer_search():
    assert [(n, t) for n, p in modules() if n.startswith("data_prep") for t in imports(p)
            if t.startswith("mer_search")] == []


def _strings(path: Path):
    """Every string constant of a module, f-string parts included, except docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


# each on-disk artifact's owner: the class that spells its file names, and the module it lives in
OWNERS = {SweepDir: "mer_search.core.dirs", RunDir: "mer_search.core.dirs", FeatureDir: "mer_search.core.dirs",
          PreparedDir: "data_prep.reader", PipelineDir: "mer_search.pipeline.layout"}
# the same spelling meaning another thing: a Hugging Face tokenizer's own files
OTHER_MEANING = {("mer_search.data.encoders", "vocab.json")}


def file_names(cls) -> set[str]:
    return {v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str) and "." in v}


def misplaced_file_names(owners: dict, mods, other_meaning=frozenset()) -> list[str]:
    """Every string literal, outside the owning modules, that spells an owned file name."""
    where = {}
    for cls, module in owners.items():
        for name in file_names(cls):
            where.setdefault(name, set()).add(module)
    found = []
    for module, path in mods:
        for line, s in _strings(path):
            found += [f"{module}:{line}: {name}" for name, allowed in where.items()
                      if module not in allowed and (module, name) not in other_meaning
                      and re.search(rf"\b{re.escape(name)}\b", s)]
    return found


def test_artifact_file_names_are_spelled_by_their_owners_alone():
    assert {"sweep.json", "trials.parquet", "asha_rungs.json", "status.json", "best.pt", "last.pt",
            "summary.json", "optuna.journal", "manifest.json", "vocab.json", "labels.json", "quirks.csv",
            "dataset.yaml", "summary.md", "timings.json", "keys.parquet"} <= set().union(*map(file_names, OWNERS))
    assert misplaced_file_names(OWNERS, modules(), OTHER_MEANING) == []


def test_the_owner_check_names_a_planted_spelling(tmp_path):
    pkg = tmp_path / "planted"
    pkg.mkdir()
    (pkg / "a.py").write_text('"""writes summary.md"""\n\ndef f(out):\n    return out / "summary.md", out / "vocab.json"\n')
    assert sorted(misplaced_file_names(OWNERS, modules(tmp_path, ("planted",)))) == \
        ["planted.a:4: summary.md", "planted.a:4: vocab.json"]          # the docstring's mention is not one


def test_the_string_check_sees_literals_but_not_docstrings(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('"""reads sweep.json"""\n\ndef f():\n    """and sweep.json"""\n    return p / "sweep.json", f"{x}/best.pt"\n')
    assert sorted(s for _, s in _strings(path)) == ["/best.pt", "sweep.json"]


def test_only_sweep_shuts_ray_down():
    calls = []
    for name, path in modules():
        tree = ast.parse(path.read_text())
        for cls in [None, *[n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]]:
            body = tree if cls is None else cls
            for node in ast.walk(body):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                        node.func.attr == "shutdown" and isinstance(node.func.value, ast.Name) and \
                        node.func.value.id == "ray":
                    calls.append((name, cls.name if cls else None, node.lineno))
    outside = {(n, line) for n, c, line in calls if c is None}
    inside = {(n, line) for n, c, line in calls if c is not None}
    assert {(n, c) for n, c, line in calls if c is not None} == {("mer_search.search.sweep", "Sweep")}
    assert outside == inside          # every call found at module level is one of Sweep's


def test_the_architecture_tree_names_every_module():
    text = (REPO / "docs" / "architecture.md").read_text()
    tree = text[text.index("## The tree"):text.index("## Layers")]
    missing = [str(p.relative_to(REPO)) for _, p in modules()
               if p.name != "__init__.py" and not re.search(rf"(?<![\w.]){re.escape(p.name)}\b", tree)]
    assert missing == []


def test_ruff_is_clean():
    """The lint configuration in pyproject.toml, over the whole tree (ruff comes with the test extras)."""
    import shutil
    import subprocess
    import sys

    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (./install.sh test installs it)")
    r = subprocess.run([ruff, "check", "--no-cache", str(REPO)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
