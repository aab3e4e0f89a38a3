"""`mer-search features`: a trained model's per-utterance vectors, the input of two-stage context and fusion.

A feature dir holds {split}.npy (row i is row i of the prepared split's table), keys.parquet (split,
dialogue_id, utterance_id, row: the same keys as the prepared tables) and manifest.json, written last.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data_prep.atomic import write_json_atomic, write_npy_atomic
from mer_search.data import Corpus
from mer_search.dirs import read_json
from mer_search.errors import ConfigError
from mer_search.experiment import make_batches, parse
from mer_search.models import build_model
from mer_search.train import load_checkpoint, predict


class FeatureDir:
    MANIFEST = "manifest.json"     # written last: its presence marks the extraction finished
    KEYS = "keys.parquet"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def vectors(self, split: str) -> Path:
        return self.path / f"{split}.npy"

    @property
    def keys(self) -> Path:
        return self.path / self.KEYS

    @property
    def manifest(self) -> Path:
        return self.path / self.MANIFEST

    def finished(self) -> bool:
        manifest = read_json(self.manifest)
        return isinstance(manifest, dict) and "dim" in manifest


def extract_features(checkpoint: str | Path, out: str | Path, splits: tuple[str, ...] | None = None) -> Path:
    """Per-utterance vectors of a trained model for every prepared split, row-aligned with the tables."""
    ck = load_checkpoint(checkpoint)
    data, model_cfg, _ = parse(ck["config"])
    corpus = Corpus(data.prepared)
    if ck["vocab_hash"] != corpus.vocab_hash:
        raise ConfigError(f"{checkpoint}: trained on another vocabulary than {data.prepared}")
    model = build_model(model_cfg)
    model.load_state_dict(ck["state_dict"])
    d = FeatureDir(out)
    d.path.mkdir(parents=True, exist_ok=True)
    keys = []
    for split in splits or corpus.splits:
        res = predict(model, make_batches(corpus, split, model_cfg, data, False, 0), with_features=True)
        vectors = np.zeros((len(corpus.table(split)), res["features"].shape[1]), np.float32)
        vectors[res["row"]] = res["features"]
        write_npy_atomic(d.vectors(split), vectors)
        table = corpus.table(split)[["dialogue_id", "utterance_id"]]
        keys.append(table.assign(split=split, row=lambda t: range(len(t))))
    pd.concat(keys, ignore_index=True)[["split", "dialogue_id", "utterance_id", "row"]].to_parquet(d.keys, index=False)
    write_json_atomic(d.manifest, {"checkpoint": str(checkpoint), "model": model_cfg["name"],
                                   "dim": int(vectors.shape[1]), "prepared": data.prepared,
                                   "vocab_hash": corpus.vocab_hash})
    return d.path
