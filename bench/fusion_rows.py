"""The pipeline's table on spoken corpora: do the fusion rows reach the best single-modality row on dev?

    RAY_AUTH_MODE=disabled python bench/fusion_rows.py --out runs/fusion_rows [--budget small]
        [--sizes 120,250] [--meld-text ../shared/meld --meld-dialogues 300]

For each corpus (`mer-search synth` at each size; with --meld-text, real MELD dialogues spoken by the
synthetic voices: `synth --text-from`), runs `mer-search pipeline` (resumable: a corpus whose pipeline
finished is only read back) and prints its rows, dev weighted F1 mean +- std over the budget's seeds,
with the check the design promises: every fusion row >= the best single-modality row's dev - 0.005
(single: text, text + context, speech, speech + context; the floor and majority rows are not inputs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SINGLE = ("text", "text_context", "speech", "speech_context")
FUSED = ("fusion", "fusion_context")
ROWS = (*SINGLE, *FUSED, "speech_floor")
SLACK = 0.005


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "mer_search.cli", *args], check=True, cwd=REPO)


def corpus(out: Path, name: str, dialogues: int, seed: int, text_from: str | None) -> Path:
    raw = out / name / "raw"
    if not (raw / "synth_truth.json").exists():
        cli("synth", "--out", str(raw), "--dialogues", str(dialogues), "--seed", str(seed),
            *(["--text-from", text_from] if text_from else []))
    return raw


def rows(pipe: Path) -> dict[str, dict]:
    out = {}
    for stage in ROWS:
        path = pipe / "final" / stage / "summary.json"
        if path.exists():
            s = json.loads(path.read_text())
            out[stage] = {split: s.get(f"{split}_wf1") for split in ("dev", "test")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "fusion_rows")
    ap.add_argument("--budget", default="small")
    ap.add_argument("--sizes", default="120,250", help="synthetic corpora, in dialogues")
    ap.add_argument("--meld-text", help="MELD's CSV folder: also a corpus of real MELD dialogues, spoken")
    ap.add_argument("--meld-dialogues", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    corpora = [(f"synth{n}", int(n), None) for n in args.sizes.split(",") if n]
    if args.meld_text:
        corpora.append((f"meldtext{args.meld_dialogues}", args.meld_dialogues, args.meld_text))
    failed = []
    for name, dialogues, text_from in corpora:
        raw = corpus(args.out, name, dialogues, 0, text_from)
        pipe = args.out / name / "pipe"
        t0 = time.time()
        cli("pipeline", "--meld-root", str(raw), "--out", str(pipe), "--budget", args.budget, "--workers",
            str(args.workers), "--wandb", "disabled")
        r = rows(pipe)
        best_single = max(r[s]["dev"]["mean"] for s in SINGLE if s in r)
        print(f"\n## {name} ({dialogues} dialogues; pipeline --budget {args.budget}: {time.time() - t0:.0f} s "
              f"this run)\n\n| row | dev wF1 | test wF1 | fusion check |\n|---|---|---|---|")
        for stage, scores in r.items():
            cells = [f"{scores[s]['mean']:.3f} +- {scores[s]['std']:.3f}" if scores[s] else "-" for s in ("dev", "test")]
            check = ""
            if stage in FUSED:
                ok = scores["dev"]["mean"] >= best_single - SLACK
                check = f"{'ok' if ok else 'BELOW'} ({scores['dev']['mean'] - best_single:+.3f} vs best single)"
                if not ok:
                    failed.append(f"{name}: {stage}")
            print(f"| {stage} | {cells[0]} | {cells[1]} | {check} |")
    print("\nevery fusion row at or above the best single row - 0.005" if not failed else f"\nBELOW: {failed}")


if __name__ == "__main__":
    main()
