"""A pipeline run on a GPU, per step: wall seconds, GPU utilization and memory (sampled by nvidia-smi), and for
each sweep how many trials ran at once.

    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -l 1 > smi.csv &
    START=$(date +%s.%N); mer-search pipeline ... --out OUT; kill %1
    python bench/gpu_report.py OUT --smi smi.csv --start $START

Steps run one after another, so each one's start is the pipeline's start plus the seconds of the steps before it
(OUT/timings.json; a step skipped took none). Trials at once: the most Tune trials whose spans (from each trial's
result.json: its last report's timestamp, less the trial's total time, to that timestamp) overlap; a trial that
ends in the second another starts counts as ended first.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path


def smi_samples(path: Path) -> list[tuple[float, float, float]]:
    """(unix time, utilization %, memory MiB) per nvidia-smi line."""
    out = []
    for line in path.read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3:
            continue
        try:
            t = datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
            out.append((t, float(parts[1]), float(parts[2])))
        except ValueError:
            continue
    return out


def trials_at_once(sweep: Path) -> tuple[int, int]:
    """(trials, the most running at one time) from Tune's per-trial result.json files."""
    spans = []
    for result in sweep.glob("**/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if rows:      # timestamps are whole seconds; the trial's training time is not
            last = rows[-1]
            spans.append((last["timestamp"] - last["time_total_s"], last["timestamp"]))
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return len(spans), most


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pipeline", type=Path)
    ap.add_argument("--smi", type=Path)
    ap.add_argument("--start", type=float, required=True, help="the pipeline's start (unix seconds)")
    args = ap.parse_args()
    timings = json.loads((args.pipeline / "timings.json").read_text())
    samples = smi_samples(args.smi) if args.smi and args.smi.exists() else []
    print("| step | seconds | GPU util mean / max % | GPU memory max MiB | trials (most at once) |")
    print("|---|---|---|---|---|")
    t = args.start
    for step, seconds in timings.items():
        inside = [s for s in samples if t <= s[0] < t + seconds]
        util = f"{sum(s[1] for s in inside) / len(inside):.0f} / {max(s[1] for s in inside):.0f}" if inside else "-"
        mem = f"{max(s[2] for s in inside):,.0f}" if inside else "-"
        trials = ""
        if step.startswith("sweep "):
            n, most = trials_at_once(args.pipeline / "sweeps" / step.split(" ", 1)[1])
            trials = f"{n} ({most})"
        print(f"| {step} | {seconds:.1f} | {util} | {mem} | {trials} |")
        t += seconds
    total = sum(timings.values())
    print(f"| all steps | {total:.1f} ({total / 60:.1f} min) | | | |")


if __name__ == "__main__":
    main()
