"""GPU path check: CUDA training with mixed precision for each model family, against the CPU.

    python bench/gpu_check.py --prepared DIR [--epochs 2]

For each model: train on CUDA (AMP on), then 1 epoch on the CPU; print epoch
seconds on each, dev weighted F1, and whether the CUDA checkpoint reloads on
the CPU (weights_only=True) and predicts the same labels.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from mer_search.training.config import parse  # noqa: E402
from mer_search.training.inputs import make_batches  # noqa: E402
from mer_search.training.experiment import run  # noqa: E402
from mer_search.data.corpus import Corpus  # noqa: E402
from mer_search.models import build_model  # noqa: E402
from mer_search.training.train import NullReporter, load_checkpoint, predict  # noqa: E402

MODELS = [
    {"name": "text_mlp", "emb_dim": 64, "hidden": [128, 128]},
    {"name": "text_lstm", "emb_dim": 32, "hidden": 32},
    {"name": "text_transformer", "emb_dim": 64, "layers": 2, "heads": 8},
    {"name": "speech_cnn2d", "channels": 20},
    {"name": "speech_cnn1d", "channels": 64},
    {"name": "speech_lstm", "hidden": 64},
    {"name": "context", "hidden": 64, "utterance": {"name": "text_mlp", "emb_dim": 32, "hidden": [64]}},
    {"name": "fusion", "kind": "attention", "dim": 32, "head": "context", "context": {"hidden": 32},
     "text_model": {"name": "text_mlp", "emb_dim": 32, "hidden": [64]},
     "speech_model": {"name": "speech_cnn1d", "channels": 32}},
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--prepared", required=True)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", default="/tmp/gpu_check")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: nothing to check")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    print("| model | cuda s/epoch | cpu s/epoch | cuda dev wF1 | reload on cpu: same labels |")
    print("|---|---|---|---|---|")
    failures = 0
    for model in MODELS:
        cfg = {"data": {"prepared": args.prepared, "batch_size": 16 if model["name"] == "context" else 32},
               "model": model, "train": {"epochs": args.epochs, "device": "cuda", "amp": True, "patience": 0}}
        if model["name"] in ("context",) or model.get("head") == "context":
            cfg["data"]["batch_size"] = 8
        out = Path(args.out) / model["name"]
        t0 = time.perf_counter()
        m = run(cfg, out / "cuda", seed=0, reporter=NullReporter())
        cuda_s = (time.perf_counter() - t0) / args.epochs
        hist = json.loads((out / "cuda" / "history.json").read_text())
        cpu_cfg = {**cfg, "train": {**cfg["train"], "device": "cpu", "epochs": 1}}
        t0 = time.perf_counter()
        run(cpu_cfg, out / "cpu", seed=0, reporter=NullReporter())
        cpu_s = time.perf_counter() - t0
        ck = load_checkpoint(out / "cuda" / "best.pt")
        data, model_cfg, _ = parse(ck["config"])
        net = build_model(model_cfg)
        net.load_state_dict(ck["state_dict"])
        assert all(not t.is_cuda for t in ck["state_dict"].values())
        corpus = Corpus(data.prepared)
        cpu_pred = predict(net, make_batches(corpus, "dev", model_cfg, data, False, 0))["logits"].argmax(1)
        gpu_pred = predict(net.cuda(), make_batches(corpus, "dev", model_cfg, data, False, 0))["logits"].argmax(1)
        agree = float((cpu_pred == gpu_pred).mean())
        ok = torch.isfinite(torch.tensor(hist[-1]["train_loss"])) and agree > 0.97
        failures += not ok
        print(f"| {model['name']} | {cuda_s:.2f} | {cpu_s:.2f} | {m['dev_wf1']:.3f} | {agree:.3f} |", flush=True)
    print("all ok" if not failures else f"{failures} model(s) failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
