"""The README's own-cluster lines, as written, on two Ray nodes of this machine: a head and a worker, each with
its own home (so the worker has the head's token only by the README's copy line, whose transport, scp, becomes a
local cp). Then the README's pipeline line on the joined cluster, and docs/sweeps.md's opt-out lines."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from local_cluster import _cmdline, _kill
from mer_search.cli import main

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.ray]


def _readme_cluster_lines() -> list[tuple[str, str]]:
    """(command, where) for each line of the README's block run here; `where` is head or worker."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- run verbatim by tests/test_cluster_lines.py[^>]*-->\n```bash\n(.*?)```", text, re.S)
    assert block, "README: the own-cluster block is gone or no longer marked"
    lines = []
    for line in block.group(1).splitlines():
        command, _, comment = line.partition("#")
        lines.append((command.strip(), "worker" if "worker" in comment else "head"))
    return lines


@pytest.fixture
def two_homes(tmp_path):
    """A head and a worker home; every Ray process started during the test is killed after it."""
    if socket.socket().connect_ex(("127.0.0.1", 6379)) == 0:
        pytest.skip("port 6379 is taken on this machine (the README's lines use it)")
    before = {p.pid for p in psutil.process_iter()}
    current = Path("/tmp/ray/ray_current_cluster")        # `ray start --head` writes it; ray.init() reads it
    kept = current.read_bytes() if current.exists() else None
    homes = {k: tmp_path / k for k in ("head", "worker")}
    for h in homes.values():
        h.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(RAY_USAGE_STATS_ENABLED="0", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    yield homes, env
    _kill([p for p in psutil.process_iter() if p.pid not in before and p.pid != os.getpid()
           and "ray" in " ".join(_cmdline(p)).lower()])
    if kept is None:            # left behind, it would send a later ray.init() to this dead cluster
        current.unlink(missing_ok=True)
    else:
        current.write_bytes(kept)


def _run(command: str, home: Path, env: dict, cwd: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-ec", command], env={**env, "HOME": str(home)}, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def _alive_nodes(home: Path, env: dict, cwd: Path) -> int:
    r = _run(f"{sys.executable} -c \"import ray; ray.init(address='auto', log_to_driver=False); "
             f"print('nodes', sum(n['Alive'] for n in ray.nodes()))\"", home, env, cwd)
    assert r.returncode == 0, r.stderr[-2000:]
    return int(re.search(r"nodes (\d+)", r.stdout).group(1))


def test_the_readme_cluster_lines_join_a_worker_with_the_token_and_run_the_study(two_homes, tmp_path):
    import pandas as pd

    homes, env = two_homes
    lines = _readme_cluster_lines()
    assert [w for _, w in lines] == ["head", "head", "worker", "worker", "head"]
    r = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "MELD.Raw"), "--dialogues", "8", "--seed", "0"])
    assert r.exit_code == 0, r.output
    # first, what the issue saw: the worker line without the token fails with Ray's auth error
    for command, where in lines[:2]:
        r = _run(command, homes["head"], env, tmp_path)
        assert r.returncode == 0, (command, r.stderr[-2000:])
    bare = _run(lines[3][0].replace("HEAD_IP", "127.0.0.1"), homes["worker"], env, tmp_path, timeout=120)
    assert bare.returncode != 0 and "AuthenticationError" in bare.stderr + bare.stdout
    copy, join = lines[2][0], lines[3][0]
    assert "scp HEAD_IP:.ray/auth_token ~/.ray/" in copy
    r = _run(copy.replace("scp HEAD_IP:", f"cp {homes['head']}/"), homes["worker"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    r = _run(join.replace("HEAD_IP", "127.0.0.1"), homes["worker"], env, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _alive_nodes(homes["head"], env, tmp_path) == 2
    study = lines[4][0]
    assert study == "mer-search pipeline --corpus MELD.Raw --out runs/meld --address auto"
    r = _run(study, homes["head"], {**env, "MER_SEARCH_BUDGET": "tiny"}, tmp_path, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "runs" / "meld"
    assert "best (chosen on dev)" in (out / "summary.md").read_text()
    nodes = set()
    for trials in (out / "sweeps").glob("*/trials.parquet"):
        nodes |= set(pd.read_parquet(trials).node_id)
    assert len(nodes) == 2, nodes          # trials ran on the head and on the worker


def test_the_opt_out_lines_join_without_a_token(two_homes, tmp_path):
    """docs/sweeps.md's lines for a trusted network: no token, no RAY_AUTH_MODE."""
    homes, env = two_homes
    text = (REPO / "docs" / "sweeps.md").read_text()
    head, worker = "ray start --head --port=6379", "ray start --address=HEAD_IP:6379"
    assert f"(`{head}`, then\n`{worker}`)" in text
    assert _run(head, homes["head"], env, tmp_path).returncode == 0
    r = _run(worker.replace("HEAD_IP", "127.0.0.1"), homes["worker"], env, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _alive_nodes(homes["head"], env, tmp_path) == 2
