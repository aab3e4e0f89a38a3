"""A full disk at every point of a final training: no stage marker is trusted that was not written whole,
and the rerun on a disk with room finishes the run with each seed once.

Mounts a small tmpfs (needs root; skips otherwise) for each of a range of sizes, runs
`mer-search train` (2 seeds, text_mlp, synthetic corpus) into it until the disk fills, copies what it left
to a disk with room, and reruns the same command there.

    sudo .venv/bin/python bench/disk_full.py [--sizes 8,16,32,...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mer_search.core.dirs import RunDir  # noqa: E402


def mount(path: Path, kib: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def train(config: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mer_search.cli", "train", str(config), "--seeds", "2",
                           "--out", str(out), "--wandb", "disabled"], capture_output=True, text=True, timeout=600)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="8,16,32,64,128,256,384,512,640,768,1024,2048",
                   help="tmpfs sizes in KiB; the run needs ~1 MiB at its peak")
    args = p.parse_args()
    from synthetic import prepared_corpus

    tmp = Path(tempfile.mkdtemp(prefix="disk_full_"))
    prepared = prepared_corpus(tmp, dialogues=12, seed=3, text_only=True)
    config = tmp / "c.yaml"
    config.write_text(f"data: {{prepared: {prepared}, batch_size: 16}}\nmodel: {{name: text_mlp, emb_dim: 16}}\n"
                      f"train: {{epochs: 2}}\n")
    rows = []
    for kib in map(int, args.sizes.split(",")):
        small = tmp / f"small_{kib}"
        if not mount(small, kib):
            raise SystemExit("cannot mount a tmpfs here (needs root): nothing measured")
        try:
            first = train(config, small / "run")
            left = tmp / f"left_{kib}"
            if (small / "run").exists():
                shutil.copytree(small / "run", left, symlinks=True)
        finally:
            subprocess.run(["umount", str(small)], check=True)
        trusted = RunDir(left).finished() if left.exists() else False
        temps = sorted(p.name for p in left.rglob(".*.tmp*")) if left.exists() else []
        rerun = train(config, left)
        summary = json.loads(RunDir(left).summary.read_text()) if RunDir(left).finished() else {}
        seeds = [m["seed"] for m in summary.get("per_seed", [])]
        error = (first.stderr.strip().splitlines() or [""])[-1][:90]
        rows.append({"KiB": kib, "first exit": first.returncode, "marker trusted": trusted,
                     "temps left": len(temps), "rerun exit": rerun.returncode, "seeds": seeds, "error": error})
        print(rows[-1], flush=True)
    full = [r for r in rows if r["first exit"] != 0]
    bad = [r for r in full if r["marker trusted"]]
    ok = [r for r in rows if r["rerun exit"] == 0 and r["seeds"] == [0, 1]]
    print(f"\n{len(full)} of {len(rows)} sizes filled the disk mid-run; a marker trusted after a failed run: "
          f"{len(bad)} (must be 0); reruns that finished with seeds [0, 1] once each: {len(ok)}/{len(rows)}")


if __name__ == "__main__":
    main()
