"""A final training beside a second torch process, with and without pinned threads.

`mer-search train` (text_lstm, 2 epochs on the real MELD text) timed alone, then beside
a neighbour that keeps the CPUs busy with torch matmuls (another training, a sweep's
trial): both at torch's default threads (every core each: oversubscribed), and both
pinned to their share (`--threads` and the neighbour's torch.set_num_threads). Printed:
seconds and the ratio to the training alone, measured side by side in one run.

    .venv/bin/python bench/thread_pinning.py --prepared runs/meld
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

NEIGHBOUR = """
import sys, torch
n = int(sys.argv[1])
if n:
    torch.set_num_threads(n)
a = torch.randn(384, 384)
while True:
    for _ in range(50):
        b = a @ a
    a = b / b.norm()
"""


def train_seconds(args, threads: int | None, run: int) -> float:
    cmd = [str(Path(sys.executable).parent / "mer-search"), "train", "text_lstm", "--prepared", args.prepared,
           "--epochs", str(args.epochs), "--out", str(args.out / f"run{run}"), "--wandb", "disabled"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def beside(args, threads: int | None, neighbour_threads: int, run: int) -> float:
    """The training's seconds while a neighbour torch process runs (it starts first and is killed after)."""
    nb = subprocess.Popen([sys.executable, "-c", NEIGHBOUR, str(neighbour_threads)])
    try:
        time.sleep(2)
        return train_seconds(args, threads, run)
    finally:
        nb.kill()
        nb.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepared", default="runs/meld")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("runs/bench_thread_pinning"))
    args = p.parse_args()
    cpus = len(os.sched_getaffinity(0))
    share = max(1, cpus // 2)
    cases = [("alone, default threads", lambda r: train_seconds(args, None, r)),
             (f"beside a neighbour, both at torch's default ({cpus} each)", lambda r: beside(args, None, 0, r)),
             (f"beside a neighbour, training pinned to {share}, neighbour default",
              lambda r: beside(args, share, 0, r)),
             (f"beside a neighbour, both pinned to {share}", lambda r: beside(args, share, share, r))]
    print(f"{cpus} CPUs; mer-search train text_lstm --epochs {args.epochs}; {args.repeats} repeats, interleaved",
          flush=True)
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    run = 0
    for _ in range(args.repeats):
        for name, case in cases:
            times[name].append(case(run))
            run += 1
            print(f"  {name}: {times[name][-1]:.1f} s", flush=True)
    alone = min(times[cases[0][0]])
    print()
    for name, _ in cases:
        best = min(times[name])
        print(f"{name:60s} {best:6.1f} s  {best / alone:5.2f}x alone")


if __name__ == "__main__":
    main()
