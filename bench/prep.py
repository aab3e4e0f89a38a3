"""Data preparation throughput, measured side by side in one run.

    python bench/prep.py [--dialogues 120] [--repeats 3] [--meld-dir ../shared/meld]

Prints audio clips/s for prepare and for a decode-only pass over the same clips
(the ceiling: PyAV decoding alone) at 1 and 2 workers, the ratios the targets
are stated in, and the text preparation time for the real train + dev CSVs.
Runs alternate (decode, prepare, decode, ...) so machine noise hits both alike;
medians are reported.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep import meld  # noqa: E402
from data_prep.schema import load_schema, read_split  # noqa: E402
from data_prep.audio import AudioParams  # noqa: E402
from data_prep.parallel import run_tasks  # noqa: E402
from data_prep.prepare import PrepareOptions, prepare  # noqa: E402
from data_prep.shards import ShardTask, decode_only  # noqa: E402
from data_prep.synth import SynthConfig, synthesize  # noqa: E402


def decode_tasks(corpus: Path, shard_size: int) -> list[ShardTask]:
    tasks = []
    schema = load_schema("meld")
    for split in schema.files:
        df = read_split(schema, corpus, split)
        idx = meld.index_clips(corpus / schema.clip_dirs[split], split)
        items = [(d, u, str(idx.paths[(d, u)]) if (d, u) in idx.paths else None)
                 for d, u in zip(df.dialogue_id, df.utterance_id)]
        tasks += [ShardTask("", split, i // shard_size, asdict(AudioParams()), items[i:i + shard_size])
                  for i in range(0, len(items), shard_size)]
    return tasks


def time_decode(tasks, workers) -> tuple[float, int]:
    t0 = time.perf_counter()
    clips = sum(r["clips"] for r in run_tasks(decode_only, tasks, workers))
    return time.perf_counter() - t0, clips


def time_prepare(corpus, workers, shard_size, scratch: Path) -> float:
    out = scratch / f"prep_w{workers}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    prepare(PrepareOptions(meld_root=corpus, out=out, workers=workers, shard_size=shard_size))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dialogues", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shard-size", type=int, default=64)
    ap.add_argument("--meld-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "meld")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # quirks are expected here; keep the table readable
    scratch = Path(tempfile.mkdtemp(prefix="bench_prep_"))
    try:
        corpus = scratch / "corpus"
        t0 = time.perf_counter()
        synthesize(corpus, SynthConfig(dialogues=args.dialogues, seed=0))
        tasks = decode_tasks(corpus, args.shard_size)
        n_clips = sum(1 for t in tasks for it in t.items if it[2])
        print(f"corpus: {args.dialogues} dialogues, {n_clips} clips (synthesized in {time.perf_counter() - t0:.1f} s), "
              f"{os.cpu_count()} CPUs")
        rows = {}
        for workers in (1, 2):
            dec, prep = [], []
            for _ in range(args.repeats):
                secs, clips = time_decode(tasks, workers)
                dec.append(clips / secs)
                prep.append(n_clips / time_prepare(corpus, workers, args.shard_size, scratch))
            rows[workers] = (statistics.median(dec), statistics.median(prep))
            d, p = rows[workers]
            print(f"workers={workers}: decode-only {d:7.1f} clips/s | prepare {p:7.1f} clips/s | "
                  f"prepare/decode {p / d:.2f}x")
        print(f"prepare 2 workers / 1 worker: {rows[2][1] / rows[1][1]:.2f}x "
              f"(decode-only: {rows[2][0] / rows[1][0]:.2f}x)")
        if (args.meld_dir / "train_sent_emo.csv").exists():
            times = []
            for _ in range(args.repeats):
                out = scratch / "text"
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.perf_counter()
                m = prepare(PrepareOptions(meld_root=args.meld_dir, out=out, splits=("train", "dev"), text_only=True))
                times.append(time.perf_counter() - t0)
            rows_n = sum(s["rows"] for s in m["splits"].values())
            print(f"text prep, real MELD train + dev ({rows_n} rows): {statistics.median(times):.2f} s "
                  f"(median of {args.repeats})")
        else:
            print(f"text prep: skipped, no MELD CSVs in {args.meld_dir}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
