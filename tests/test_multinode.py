"""Real Ray nodes on this machine: a head and worker nodes, each its own `ray start` with its own resources.
A sweep given --address spreads its trials over the nodes; a worker node killed mid-sweep costs no trial."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import psutil
import pytest

pytestmark = pytest.mark.ray

SPACE = """# mer-search sweep {path} --prepared PREPARED --address HEAD
search: {{metric: dev_wf1, mode: max, max_epochs: {epochs}, grace_period: {epochs}, reduction_factor: 2,
         num_samples: {trials}, sampler: random}}
fixed: {{model.name: speech_lstm, data.batch_size: 4, data.max_frames: 300}}
params:
  model.hidden: {{type: int, low: 16, high: 48}}
  train.lr: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """`ray start` processes on 127.0.0.1; stopped by killing exactly the processes they started."""

    def __init__(self, workers: int, tmp):
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.before = {p.pid for p in psutil.process_iter()}
        self._start(["--head", f"--port={self.port}", "--num-cpus=0", "--include-dashboard=false",
                     f"--temp-dir={tmp}"])
        self.workers = []
        for i in range(workers):
            known = self._raylets()
            self._start([f"--address={self.address}", "--num-cpus=1"])
            self.workers.append(next(iter(self._raylets() - known)))

    def _start(self, args):
        subprocess.run(["ray", "start", *args, "--disable-usage-stats"], env=self.env, check=True,
                       capture_output=True, timeout=120, executable=os.path.join(os.path.dirname(sys.executable), "ray"))

    def _raylets(self) -> set[int]:
        return {p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "raylet" and p.pid not in self.before}

    def node_of(self, raylet_pid: int) -> str:
        cmd = psutil.Process(raylet_pid).cmdline()
        return next(a.split("=", 1)[1] for a in cmd if a.startswith("--node_id="))

    def kill_worker(self, raylet_pid: int) -> None:
        """What a dead machine looks like: its raylet and everything under it, gone at once."""
        proc = psutil.Process(raylet_pid)
        family = [proc, *proc.children(recursive=True)]
        for p in family:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(family, timeout=10)

    def stop(self) -> None:
        mine = [p for p in psutil.process_iter() if p.pid not in self.before and p.pid != os.getpid()
                and "ray" in " ".join(_cmdline(p)).lower()]
        for p in mine:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(mine, timeout=15)


def _cmdline(p):
    try:
        return p.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


@pytest.fixture()
def cluster(tmp_path_factory):
    c = LocalCluster(workers=3, tmp=tmp_path_factory.mktemp("ray"))
    try:
        yield c
    finally:
        c.stop()


def _sweep_cmd(space, prepared, out, address):
    return [sys.executable, "-m", "mer_search.cli", "sweep", str(space), "--prepared", str(prepared), "--out",
            str(out), "--address", address, "--wandb", "disabled"]


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
