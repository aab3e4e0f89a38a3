"""Training speed per model on this CPU: utterances/s and the share of step time spent waiting for data.

    python bench/train_speed.py [--text-prepared runs/meld] [--speech-prepared DIR] [--epochs 1]

Text models train on real MELD (prepared text-only); speech models on a
synthetic corpus (generated and prepared here when --speech-prepared is not
given: there is no MELD audio on this machine). "wait" is the time the loop
spends getting the next batch (collation, mmap reads, augmentation) over the
whole training loop; batches are built one ahead in a thread.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from mer_search.training.experiment import run  # noqa: E402
from mer_search.training.train import NullReporter  # noqa: E402

TEXT = [{"name": "text_mlp", "emb_dim": 64, "hidden": [128, 128], "dropout": 0.5},
        {"name": "text_lstm", "emb_dim": 32, "hidden": 32, "layers": 2},
        {"name": "text_transformer", "emb_dim": 64, "layers": 2, "heads": 8},
        {"name": "text_pretrained", "hidden": [256]}]
SPEECH = [{"name": "speech_cnn2d", "channels": 20},
          {"name": "speech_cnn1d", "channels": 64},
          {"name": "speech_lstm", "hidden": 64, "layers": 2}]


def speech_corpus(scratch: Path) -> Path:
    from synthetic import prepared_corpus

    return prepared_corpus(scratch, dialogues=100, workers=2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text-prepared", default="runs/meld")
    ap.add_argument("--speech-prepared")
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print("| model | data | batch | utterances/s (train) | data wait share |")
    print("|---|---|---|---|---|")
    scratch = Path(tempfile.mkdtemp(prefix="train_speed_"))
    jobs = [(m, args.text_prepared, "MELD train (real text)", 32) for m in TEXT]
    speech = args.speech_prepared or None
    for m in SPEECH:
        if speech is None:
            speech = str(speech_corpus(scratch))
        jobs.append((m, speech, "synthetic speech", 16))
    for model, prepared, label, batch in jobs:
        cfg = {"data": {"prepared": prepared, "batch_size": batch}, "model": model,
               "train": {"epochs": args.epochs, "patience": 0, "device": "cpu"}}
        out = scratch / model["name"]
        run(cfg, out, seed=0, reporter=NullReporter())
        hist = json.loads((out / "history.json").read_text())
        ups = sum(h["train_utt_per_s"] for h in hist) / len(hist)
        wait = sum(h["data_wait_share"] for h in hist) / len(hist)
        print(f"| {model['name']} | {label} | {batch} | {ups:,.0f} | {wait:.1%} |", flush=True)


if __name__ == "__main__":
    main()
