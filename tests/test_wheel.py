"""A normal (non-editable) install works from any directory: the wheel carries the spaces and the shipped
configs, and `mer-search` finds them by name outside the repository."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.e2e, pytest.mark.ray]


def _source_copy(dest: Path) -> Path:
    """The files git would ship (tracked, or new and not ignored), so the build leaves the checkout alone."""
    names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    for name in names:
        src = REPO / name
        if not src.exists() and not src.is_symlink():
            continue                      # deleted in the work tree, not yet committed
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            (dest / name).symlink_to(os.readlink(src))
        elif src.is_file():
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed (no deps: it reuses this environment's packages
    through a .pth file, so nothing is downloaded); returns its bin dir."""
    root = tmp_path_factory.mktemp("wheel")
    src = _source_copy(root / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(root / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (root / "dist").glob("mer_search-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=300)
    py = root / "venv" / "bin" / "python"
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True,
                          capture_output=True, text=True).stdout.strip()
    (Path(site) / "reuse_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    return root / "venv" / "bin"


def _run(bin_dir: Path, args: list[str], cwd: Path, timeout: int = 400) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PATH=f"{bin_dir}{os.pathsep}{env['PATH']}")
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow     # builds a wheel into a fresh venv
def test_the_wheel_finds_its_spaces_from_any_directory(installed, prepared, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = _run(installed, ["python", "-c", "import mer_search; print(mer_search.__file__)"], elsewhere)
    assert Path(r.stdout.strip()).is_relative_to(installed.parent), r.stdout    # the wheel, not the checkout
    r = _run(installed, ["mer-search", "spaces", "validate"], elsewhere)
    shipped = sorted(p.stem for p in (REPO / "mer_search" / "spaces").glob("*.yaml"))
    assert r.returncode == 0 and r.stdout.count("ok    ") == len(shipped) == 18, r.stdout + r.stderr
    r = _run(installed, ["mer-search", "spaces", "show", "text_mlp"], elsewhere)
    assert r.returncode == 0 and "model.emb_dim: int" in r.stdout
    r = _run(installed, ["mer-search", "sweep", "text_mlp", "--prepared", str(prepared), "--out", "s",
                         "--num-samples", "2", "--max-epochs", "1", "--wandb", "disabled"], elsewhere)
    assert r.returncode == 0, r.stderr[-3000:]
    table = pd.read_parquet(elsewhere / "s" / "trials.parquet")
    assert table.trial_id.nunique() == 2 and table.dev_wf1.notna().all()
    (elsewhere / "spaces").mkdir()                         # a ./spaces/ beside the user wins over the shipped one
    (elsewhere / "spaces" / "text_mlp.yaml").write_text("search: {num_samples: 3}\nfixed: {model.name: text_mlp}\n"
                                                        "params: {}\n")
    r = _run(installed, ["mer-search", "spaces", "show", "text_mlp"], elsewhere)
    assert r.returncode == 0 and "num_samples=3" in r.stdout and "emb_dim" not in r.stdout
