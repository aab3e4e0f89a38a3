"""Speech, text and fusion on the synthetic corpus: dev weighted F1, mean +- std over seeds.

    python bench/synth_speech.py [--dialogues 100] [--seeds 3]

There is no MELD audio on this machine, so speech models are shown on the
generated corpus (emotion sets pitch, loudness and syllable rate). The majority
class (always "neutral") is the floor to beat. Fusion runs two-stage over the
features of the seed-0 text_mlp and speech_cnn1d models.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

from mer_search.experiment import extract_features, run_seeds  # noqa: E402
from mer_search.train import NullReporter  # noqa: E402

SPEECH = [("speech_cnn2d", {"name": "speech_cnn2d", "channels": 20, "dropout": 0.1}, 1e-2),
          ("speech_cnn1d", {"name": "speech_cnn1d", "channels": 64, "dropout": 0.3}, 3e-3),
          ("speech_lstm", {"name": "speech_lstm", "hidden": 64, "layers": 2, "dropout": 0.3}, 3e-3),
          ("speech_functionals", {"name": "speech_functionals", "hidden": [128], "dropout": 0.3}, 3e-3)]
TEXT = ("text_mlp", {"name": "text_mlp", "emb_dim": 32, "hidden": [64], "dropout": 0.3}, 1e-2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dialogues", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    from data_prep.audio import AudioParams
    from data_prep.prepare import PrepareOptions, prepare
    from data_prep.synth import SynthConfig, synthesize

    scratch = Path(tempfile.mkdtemp(prefix="synth_speech_"))
    synthesize(scratch / "raw", SynthConfig(dialogues=args.dialogues, seed=0))
    prepared = scratch / "prepared"
    prepare(PrepareOptions(meld_root=scratch / "raw", out=prepared, workers=2, audio=AudioParams(functionals="egemaps")))
    dev = pd.read_parquet(prepared / "dev.parquet")
    base = f1_score(dev.emotion, np.zeros(len(dev), int), average="weighted")
    print(f"corpus: {args.dialogues} dialogues, dev {len(dev)} utterances; majority class dev wF1 {base:.4f}")
    print("| model | dev wF1 (mean +- std) | dev acc |")
    print("|---|---|---|")

    def row(name, cfg):
        s = run_seeds(cfg, scratch / name, args.seeds, reporter=NullReporter())
        print(f"| {name} | {s['dev_wf1']['mean']:.4f} +- {s['dev_wf1']['std']:.4f} | "
              f"{s['dev_acc']['mean']:.4f} +- {s['dev_acc']['std']:.4f} |", flush=True)
        return s

    def cfg(model, lr, **data):
        return {"data": {"prepared": str(prepared), "batch_size": 16, **data}, "model": model,
                "train": {"epochs": args.epochs, "lr": lr, "patience": 6}}

    for name, model, lr in SPEECH:
        row(name, cfg(model, lr, time_masks=1, freq_masks=1))
    row(TEXT[0], cfg(TEXT[1], TEXT[2]))
    dirs = {"features_text": str(extract_features(scratch / "text_mlp" / "seed_0" / "best.pt", scratch / "f_text")),
            "features_speech": str(extract_features(scratch / "speech_cnn1d" / "seed_0" / "best.pt",
                                                    scratch / "f_speech"))}
    for kind in ("concat", "gated", "attention", "late"):
        row(f"fusion_{kind} (text_mlp + speech_cnn1d features)",
            cfg({"name": "fusion", "kind": kind, "dim": 32}, 3e-3, feature_dirs=dirs))
    print(f"scratch: {scratch}")


if __name__ == "__main__":
    main()
