"""Reading prepared data without PyAV or torch: what training imports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from data_prep.errors import PrepError


def load_manifest(out: Path | str) -> dict:
    """The manifest of a finished preparation, or a PrepError saying what is wrong."""
    path = Path(out) / "manifest.json"
    if not path.exists():
        raise PrepError(f"{out}: no manifest.json; run `mer-search prepare` first")
    m = json.loads(path.read_text())
    if not m.get("complete"):
        raise PrepError(f"{out}: preparation did not finish; rerun the same `mer-search prepare` command")
    return m


class ShardReader:
    """Reads one utterance's frames from memory-mapped shards; never unpickles anything."""

    def __init__(self, prepared_dir: Path | str):
        self.root = Path(prepared_dir)
        self._maps: dict[tuple[str, int], np.ndarray] = {}

    def shard(self, split: str, index: int) -> np.ndarray:
        key = (split, index)
        if key not in self._maps:
            path = self.root / "audio" / split / f"shard_{index:05d}.npy"
            self._maps[key] = np.load(path, mmap_mode="r", allow_pickle=False)
        return self._maps[key]

    def get(self, split: str, shard: int, offset: int, length: int) -> np.ndarray:
        """(length, n_mels) view into the shard; only these rows are read from disk."""
        if shard < 0:
            raise KeyError(f"{split}: utterance has no audio (shard -1)")
        return self.shard(split, shard)[offset: offset + length]
