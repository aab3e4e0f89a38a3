"""Real Ray nodes on this machine: a head and worker nodes, each its own `ray start` with its own resources.
A sweep given --address spreads its trials over the nodes; a worker node killed mid-sweep costs no trial."""

import json
import subprocess
import sys
import time

import pandas as pd
import pytest
from local_cluster import LocalCluster

pytestmark = pytest.mark.ray

SPACE = """# mer-search sweep {path} --prepared PREPARED --address HEAD
search: {{metric: dev_wf1, mode: max, max_epochs: {epochs}, grace_period: {epochs}, reduction_factor: 2,
         num_samples: {trials}, sampler: random}}
fixed: {{model.name: speech_lstm, data.batch_size: 4, data.max_frames: 300}}
params:
  model.hidden: {{type: int, low: 16, high: 48}}
  train.lr: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(workers=3, tmp=tmp_path_factory.mktemp("ray"))
    try:
        yield c
    finally:
        c.stop()


def _sweep_cmd(space, prepared, out, address):
    return [sys.executable, "-m", "mer_search.cli", "sweep", str(space), "--prepared", str(prepared), "--out",
            str(out), "--address", address, "--wandb", "disabled"]


@pytest.mark.slow     # a two-node Ray cluster; the default run prepares through Ray tasks on one node (test_prepare)
def test_prepare_runs_as_ray_tasks_across_nodes(cluster, synth_corpus, prepared, tmp_path):
    """`prepare --address` sends the audio shards to the worker nodes; the result equals a local prepare."""
    import hashlib

    out = tmp_path / "p"
    r = subprocess.run([sys.executable, "-m", "mer_search.cli", "prepare", "--meld-root", str(synth_corpus), "--out",
                        str(out), "--address", cluster.address, "--shard-size", "16", "--no-progress"],
                       env=cluster.env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    ran = next(line for line in r.stderr.splitlines() if "tasks ran on" in line)
    assert int(ran.split(" on ")[1].split()[0]) >= 2, ran
    shards = sorted((prepared / "audio").rglob("shard_*.npy"))
    assert shards
    for npy in shards:
        twin = out / npy.relative_to(prepared)
        assert hashlib.sha256(twin.read_bytes()).digest() == hashlib.sha256(npy.read_bytes()).digest(), npy.name


@pytest.mark.slow     # a two-node Ray cluster and a killed worker
def test_sweep_spreads_over_nodes_and_survives_a_worker_kill(cluster, prepared, tmp_path):
    space = tmp_path / "s.yaml"
    space.write_text(SPACE.format(path=space, epochs=8, trials=6))
    out = tmp_path / "sweep"
    env = {**cluster.env}
    proc = subprocess.Popen(_sweep_cmd(space, prepared, out, cluster.address), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    victim_node, t0 = None, time.time()
    try:
        # wait until some trial has reported from a worker node, then kill that node
        while victim_node is None and proc.poll() is None and time.time() - t0 < 300:
            time.sleep(0.2)
            for result in out.glob("tune/*/result.json"):
                lines = result.read_text().splitlines()
                if lines and json.loads(lines[-1])["training_iteration"] >= 2:
                    victim_node = json.loads(lines[-1])["node_id"]
                    break
        assert victim_node, "no trial reported in time"
        raylet = next(pid for pid in cluster.workers if cluster.node_of(pid) == victim_node)
        cluster.kill_worker(raylet)
        output, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-3000:]
    table = pd.read_parquet(out / "trials.parquet")
    assert table.trial_id.nunique() == 6 and (table.groupby("trial_id").training_iteration.max() == 8).all()
    assert table.error.eq("").all()
    nodes = table.groupby("trial_id").node_id.agg(lambda s: list(dict.fromkeys(s)))
    assert table.node_id.nunique() >= 2, "trials ran on one node only"
    moved = [n for n in nodes if len(n) > 1 and n[0] == victim_node]
    assert moved, f"no trial moved off the killed node: {nodes.to_dict()}"
    # after the kill nothing ran on the dead node, and each moved trial resumed, not restarted:
    # every epoch appears once, in order
    for tid, g in table.groupby("trial_id"):
        assert g.training_iteration.tolist() == list(range(1, 9)), tid
