"""`mer-search features`: a trained model's per-utterance vectors, the input of two-stage context and fusion.

A feature dir holds {split}.npy (row i is row i of the prepared split's table), {split}_logp.npy (the
model's log-probabilities for the same rows: what a residual fusion starts from), keys.parquet (split,
dialogue_id, utterance_id, row: the same keys as the prepared tables) and manifest.json, written last
(with the model's dev weighted F1 where dev is prepared).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from data_prep.atomic import write_json_atomic, write_npy_atomic
from mer_search.data import Corpus
from mer_search.dirs import read_json
from mer_search.errors import ConfigError
from mer_search.experiment import make_batches, parse
from mer_search.models import build_model
from mer_search.train import load_checkpoint, predict, score


class FeatureDir:
    MANIFEST = "manifest.json"     # written last: its presence marks the extraction finished
    KEYS = "keys.parquet"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def vectors(self, split: str) -> Path:
        return self.path / f"{split}.npy"

    def logp(self, split: str) -> Path:
        return self.path / f"{split}_logp.npy"

    def dev_score(self, metric: str = "dev_wf1") -> float:
        """The dev score of the model these features came from (a residual fusion leads with the higher):
        weighted F1, or the dataset's micro F1 (dev_microf1) where its schema scores that."""
        manifest = read_json(self.manifest)
        if not (isinstance(manifest, dict) and metric in manifest):
            raise ConfigError(f"{self.path}: no {metric} in its manifest (extracted before dev was prepared, or "
                              f"by an older version): run `mer-search features` again")
        return float(manifest[metric])

    @property
    def keys(self) -> Path:
        return self.path / self.KEYS

    @property
    def manifest(self) -> Path:
        return self.path / self.MANIFEST

    def write_split(self, split: str, res: dict, n: int) -> None:
        """A model's outputs on a split's `n` rows (`train.predict` with features): vectors and log-probabilities,
        uniform for rows the model skipped."""
        vectors = np.zeros((n, res["features"].shape[1]), np.float32)
        vectors[res["row"]] = res["features"]
        write_npy_atomic(self.vectors(split), vectors)
        classes = res["logits"].shape[1]
        logp = np.full((n, classes), -np.log(classes), np.float32)
        logp[res["row"]] = torch.log_softmax(torch.from_numpy(res["logits"]), -1).numpy()
        write_npy_atomic(self.logp(split), logp)

    def finished(self) -> bool:
        manifest = read_json(self.manifest)
        return isinstance(manifest, dict) and "dim" in manifest and self.logp("train").exists()   # older: again


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
    keys, scores = [], {}
    for split in splits or corpus.splits:
        res = predict(model, make_batches(corpus, split, model_cfg, data, False, 0), with_features=True)
        d.write_split(split, res, len(corpus.table(split)))
        scores.update(score(res, split))
        table = corpus.table(split)[["dialogue_id", "utterance_id"]]
        keys.append(table.assign(split=split, row=lambda t: range(len(t))))
    pd.concat(keys, ignore_index=True)[["split", "dialogue_id", "utterance_id", "row"]].to_parquet(d.keys, index=False)
    write_json_atomic(d.manifest, {"checkpoint": str(Path(checkpoint).resolve()), "model": model_cfg["name"],
                                   "dim": int(res["features"].shape[1]), "prepared": data.prepared,
                                   "vocab_hash": corpus.vocab_hash,
                                   **{k: v for k, v in scores.items() if k.endswith(("_wf1", "_microf1"))}})
    return d.path
