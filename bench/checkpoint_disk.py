"""Disk a sweep's checkpoints take: every epoch's kept (`--keep-checkpoints all`, what sweeps did before) against
the bounded default (`best`: the last two + best while a trial runs, its best once it ends), the same sweep
(same space, seed and data) run both ways one after the other. Prints the tune/ dir's size at the end, its
largest size seen while running (sampled every 2 s), checkpoint dirs, trials, best metric and wall time.

    .venv/bin/python bench/checkpoint_disk.py --prepared runs/meld --space spaces/text_any.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd


def tree_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:        # deleted while we walked
                pass
    return total


def run(space: str, prepared: str, out: Path, keep: str, extra: list[str]) -> dict:
    peak, stop = [0], threading.Event()

    def sample():
        while not stop.wait(2.0):
            peak[0] = max(peak[0], tree_bytes(out / "tune"))

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "mer_search.cli", "sweep", space, "--prepared", prepared, "--out",
                        str(out), "--wandb", "disabled", "--keep-checkpoints", keep, *extra],
                       capture_output=True, text=True)
    wall = time.time() - t0
    stop.set()
    watcher.join()
    if r.returncode != 0:
        raise SystemExit(f"sweep --keep-checkpoints {keep} failed:\n{r.stderr[-2000:]}")
    final = tree_bytes(out / "tune")
    table = pd.read_parquet(out / "trials.parquet")
    return {"keep": keep, "trials": int(table.trial_id.nunique()), "epochs": int(len(table)),
            "checkpoints": len(list((out / "tune").glob("*/checkpoint_*"))),
            "final_MB": round(final / 2**20, 1), "peak_MB": round(max(peak[0], final) / 2**20, 1),
            "best_dev_wf1": round(float(table.dev_wf1.max()), 4), "wall_s": round(wall)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", default="runs/meld")
    ap.add_argument("--space", default="spaces/text_any.yaml")
    ap.add_argument("--num-samples", type=int)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    extra = ["--seed", str(args.seed)] + (["--num-samples", str(args.num_samples)] if args.num_samples else [])
    tmp = Path(tempfile.mkdtemp(prefix="ckpt_disk_"))
    rows = [run(args.space, args.prepared, tmp / keep, keep, extra) for keep in ("all", "best")]
    for row in rows:
        print(json.dumps(row), flush=True)
    a, b = rows
    print(f"bounded / all: final {b['final_MB'] / a['final_MB']:.3f}x ({a['final_MB']} MB -> {b['final_MB']} MB), "
          f"peak {b['peak_MB'] / a['peak_MB']:.3f}x; {a['checkpoints']} -> {b['checkpoints']} checkpoint dirs")


if __name__ == "__main__":
    main()
