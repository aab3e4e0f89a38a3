"""Move an encoder folder to a lent GPU machine in pieces that fit its 64 MiB carry, and put it back together.

    python bench/gpu_carry.py pack FOLDER OUT --parts 2      # here: OUT/part1 (with the small files), OUT/part2 ...
    python bench/gpu_carry.py unpack OUT/part1 OUT/part2 --to FOLDER     # there: a loadable folder again

Weight matrices travel as int8 with one fp32 scale per row (symmetric), everything else as fp16; unpacking
widens them to fp32. The model that arrives is the original rounded to 8 bits per weight: right for timing
and a close stand-in for quality (a rounded start, then fine-tuned), not the published weights bit for bit.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"


def pack(folder: Path, out: Path, parts: int) -> None:
    tensors = load_file(str(folder / WEIGHTS))
    packed: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        if t.is_floating_point() and t.dim() == 2:
            scale = (t.float().abs().amax(dim=1, keepdim=True) / 127).clamp(min=1e-12)
            packed[f"{name}::q"] = torch.round(t.float() / scale).to(torch.int8)
            packed[f"{name}::scale"] = scale.squeeze(1)
        else:
            packed[f"{name}::h" if t.is_floating_point() else name] = t.half() if t.is_floating_point() else t
    # the largest tensors first, each into the lightest part so far
    bins: list[dict] = [{} for _ in range(parts)]
    sizes = [0] * parts
    for name in sorted(packed, key=lambda n: -packed[n].numel() * packed[n].element_size()):
        i = sizes.index(min(sizes))
        bins[i][name] = packed[name].contiguous()
        sizes[i] += packed[name].numel() * packed[name].element_size()
    for i, b in enumerate(bins, 1):
        d = out / f"part{i}"
        d.mkdir(parents=True, exist_ok=True)
        save_file(b, str(d / f"weights{i}.safetensors"))
    shutil.copytree(folder, out / "part1" / "files", ignore=shutil.ignore_patterns(WEIGHTS, "*.zip", "*.bin"),
                    dirs_exist_ok=True)
    print({f"part{i + 1}": f"{s / 2**20:.1f} MiB" for i, s in enumerate(sizes)})


def unpack(dirs: list[Path], to: Path) -> None:
    packed: dict[str, torch.Tensor] = {}
    for d in dirs:
        for f in d.glob("weights*.safetensors"):
            packed.update(load_file(str(f)))
    tensors = {}
    for name, t in packed.items():
        if name.endswith("::q"):
            base = name[:-3]
            tensors[base] = t.float() * packed[f"{base}::scale"].unsqueeze(1)
        elif name.endswith("::h"):
            tensors[name[:-3]] = t.float()
        elif not name.endswith("::scale"):
            tensors[name] = t
    shutil.copytree(dirs[0] / "files", to, dirs_exist_ok=True)
    save_file(tensors, str(to / WEIGHTS))
    print(f"{to}: {len(tensors)} tensors, {sum(t.numel() for t in tensors.values()) / 1e6:.1f}M values")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("folder", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--parts", type=int, default=1)
    u = sub.add_parser("unpack")
    u.add_argument("dirs", type=Path, nargs="+")
    u.add_argument("--to", type=Path, required=True)
    a = ap.parse_args()
    pack(a.folder, a.out, a.parts) if a.cmd == "pack" else unpack(a.dirs, a.to)


if __name__ == "__main__":
    main()
