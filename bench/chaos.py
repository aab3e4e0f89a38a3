"""Chaos: seeded sweeps on a local multi-node Ray cluster with random worker-node, trial and driver kills.

Each run starts a head (0 CPUs) and 3 worker nodes (1 CPU each) as `ray start` processes,
runs the same deterministic sweep (random sampler, fixed seed, no early stopping, CPU
training seeded per epoch) through the CLI with --address, and injects faults at random
moments (after a random number of reported epochs): a worker node killed (and a fresh one
started in its place), a trial process killed, the driver killed (then `--resume`), a second
driver started on the running sweep (`--resume` of its dir: it must be refused, naming the first), and the
head lost: the driver killed, the whole Ray cluster stopped and started afresh, the local sweep
dir deleted, and the sweep resumed from its --storage URI alone into a new dir.
Prints trials planned / completed / failed after retries / lost (must be 0), and whether
the best result equals the fault-free run's.

    .venv/bin/python bench/chaos.py --runs 3 --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

SPACE = """# .venv/bin/python bench/chaos.py
search: {{metric: dev_wf1, mode: max, max_epochs: {epochs}, grace_period: 1, reduction_factor: 2,
         num_samples: {trials}, sampler: random}}
fixed: {{model.name: speech_lstm, data.batch_size: 4, data.max_frames: 300}}
params:
  model.hidden: {{type: int, low: 16, high: 48}}
  model.dropout: {{type: float, low: 0.0, high: 0.3}}
  train.lr: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
"""


def reported_epochs(store: Path) -> dict[str, tuple[int, int, str]]:
    """trial id -> (epoch, pid, node) of its latest report (read from the sweep's storage)."""
    seen = {}
    for result in store.glob("tune/*/result.json"):
        try:
            lines = result.read_text().splitlines()
            r = json.loads(lines[-1]) if lines else None
        except (OSError, json.JSONDecodeError):
            continue
        if r:
            seen[r["trial_id"]] = (r["training_iteration"], r["pid"], r.get("node_id", ""))
    return seen


def sweep_cmd(space: Path, prepared: Path, out: Path, store: Path, address: str, resume: str | None = None) -> list[str]:
    """resume: None (a new sweep), "dir" (--resume the local sweep dir) or "uri" (--resume the storage URI)."""
    base = [sys.executable, "-m", "mer_search.cli", "sweep"]
    tail = ["--address", address, "--wandb", "disabled"]
    if resume == "dir":
        return base + ["--resume", str(out)] + tail
    if resume == "uri":
        return base + ["--resume", store.as_uri(), "--out", str(out)] + tail
    return base + [str(space), "--prepared", str(prepared), "--out", str(out), "--storage", store.as_uri(),
                   "--scheduler", "none", "--max-failures", "3", "--seed", "7"] + tail


def run(space: Path, prepared: Path, out: Path, tmp: Path, faults: list[tuple[str, int]], rng) -> dict:
    from local_cluster import LocalCluster
    from helpers import kill_tree

    store = out.with_name(out.name + "_storage")
    cluster = LocalCluster(workers=3, tmp=tmp / "c0")
    done_faults, second_refused = [], []

    def start(resume=None):
        return subprocess.Popen(sweep_cmd(space, prepared, out, store, cluster.address, resume), env=cluster.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc = start()
        for kind, after in faults:
            t0 = time.time()
            while proc.poll() is None and time.time() - t0 < 300:
                seen = reported_epochs(store)
                if sum(e for e, _, _ in seen.values()) >= after:
                    break
                time.sleep(0.1)
            if proc.poll() is not None:
                break
            running = [v for v in reported_epochs(store).values()]
            if kind == "node":
                nodes = {cluster.node_of(p): p for p in cluster.workers}
                busy = [nodes[n] for _, _, n in running if n in nodes]
                victim = rng.choice(busy or list(nodes.values()))
                cluster.kill_worker(victim)
                cluster.add_worker()
            elif kind == "trial":
                pid = rng.choice(running)[1]
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
            elif kind == "second":      # a second driver on the same sweep dir, while the first runs
                holds = time.time()
                while proc.poll() is None and time.time() - holds < 120 and _lock_pid(out) != proc.pid:
                    time.sleep(0.1)         # the first has taken the dir (after a restart it may still start)
                r = subprocess.run(sweep_cmd(space, prepared, out, store, cluster.address, "dir"), env=cluster.env,
                                   capture_output=True, text=True, timeout=300)
                refused = r.returncode == 1 and f"in use by pid {proc.pid}" in r.stderr
                second_refused.append(refused)
                if not refused:
                    print(f"  second driver NOT refused (exit {r.returncode}): {r.stderr[-500:]}", flush=True)
            elif kind == "driver":
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                proc = start("dir")
            elif kind == "head":        # the head machine is gone: its driver, its Ray, its disk
                kill_tree(proc)
                cluster.stop()
                shutil.rmtree(out)
                out = out.with_name(out.name + "_new_head")
                cluster = LocalCluster(workers=3, tmp=tmp / f"c{len(done_faults) + 1}")
                proc = start("uri")
            done_faults.append(f"{kind}@{after}")
        rc = proc.wait(timeout=900)
    finally:
        cluster.stop()
    table = pd.read_parquet(out / "trials.parquet") if (out / "trials.parquet").exists() else pd.DataFrame()
    if (store / "tune").exists():
        assert not list(store.glob("*.tmp-*")), "a half-written state file left in the storage"
    return {"rc": rc, "table": table, "faults": done_faults, "second_refused": second_refused}


def _lock_pid(out: Path) -> int | None:
    """The pid the sweep dir's lock file names (data_prep/locks.py), if any."""
    try:
        from data_prep.locks import DirLock

        return json.loads((out / DirLock.NAME).read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None


def summarize(res: dict, planned: int, epochs: int) -> dict:
    t = res["table"]
    if t.empty:
        return {"completed": 0, "failed": 0, "lost": planned, "best": float("nan"), "epochs_in_order": False}
    per = t.groupby("trial_id")
    failed = int(per.error.agg(lambda s: s.astype(bool).any()).sum())
    completed = int(((per.training_iteration.max() == epochs) & ~per.error.agg(lambda s: s.astype(bool).any())).sum())
    in_order = all(g.training_iteration.tolist() == list(range(1, len(g) + 1)) for _, g in per)
    return {"completed": completed, "failed": failed, "lost": planned - t.trial_id.nunique(),
            "best": float(t.dev_wf1.max()), "epochs_in_order": in_order}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from synthetic import prepared_corpus

    tmp = Path(tempfile.mkdtemp(prefix="chaos_"))
    prepared_corpus(tmp, dialogues=12, seed=3, shard_size=16)
    space = tmp / "space.yaml"
    space.write_text(SPACE.format(trials=args.trials, epochs=args.epochs))
    total = args.trials * args.epochs
    base = run(space, tmp / "prepared", tmp / "fault_free", tmp / "ray0", [], random.Random(0))
    ref = summarize(base, args.trials, args.epochs)
    print(f"fault-free: {ref}", flush=True)
    rows = []
    for i in range(args.runs):
        rng = random.Random(args.seed * 1000 + i)
        kinds = ["node", "trial", "driver", "second", "head"]
        rng.shuffle(kinds)
        points = sorted(rng.sample(range(2, total - 4), len(kinds)))
        res = run(space, tmp / "prepared", tmp / f"chaos_{i}", tmp / f"ray{i + 1}", list(zip(kinds, points)), rng)
        s = summarize(res, args.trials, args.epochs)
        rows.append({"run": i, "faults": " ".join(res["faults"]), "exit": res["rc"], "planned": args.trials, **s,
                     "second_driver_refused": all(res["second_refused"]) if res["second_refused"] else None,
                     "best_equals_fault_free": abs(s["best"] - ref["best"]) < 1e-12})
        print(pd.DataFrame([rows[-1]]).to_string(index=False), flush=True)
    df = pd.DataFrame(rows)
    print("\nall runs:")
    print(df.to_string(index=False))
    print(f"\n{len(df)} chaos runs, {args.trials} trials each: lost {int(df.lost.sum())} (must be 0), "
          f"failed after retries {int(df.failed.sum())}, a second driver refused in "
          f"{int((df.second_driver_refused == True).sum())}/{int(df.second_driver_refused.notna().sum())}, "  # noqa: E712
          f"every trial's epochs 1..n once and in order in "
          f"{int(df.epochs_in_order.sum())}/{len(df)}, "
          f"best equal to fault-free in {int(df.best_equals_fault_free.sum())}/{len(df)}")


if __name__ == "__main__":
    main()
