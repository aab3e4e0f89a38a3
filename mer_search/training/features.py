"""`mer-search features`: a trained model's per-utterance vectors, the input of two-stage context and fusion
(what a feature dir holds: `dirs.FeatureDir`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from data_prep.atomic import write_json_atomic
from mer_search.data.corpus import Corpus
from mer_search.core.dirs import FeatureDir
from mer_search.core.errors import ConfigError
from mer_search.training.config import parse
from mer_search.training.inputs import make_batches
from mer_search.models import build_model
from mer_search.training.train import load_checkpoint, pick_device, predict, score


def trained_model(checkpoint: str | Path):
    """A trained checkpoint's model on this machine's device (a GPU where there is one: encoding every split takes
    minutes on CPUs for a fine-tuned encoder), with its data and model settings and the corpus it was trained on;
    returns (model, data, model_cfg, corpus)."""
    ck = load_checkpoint(checkpoint)
    data, model_cfg, _ = parse(ck["config"], str(checkpoint))
    corpus = Corpus(data.prepared)
    if ck["vocab_hash"] != corpus.vocab_hash:
        raise ConfigError(f"{checkpoint}: trained on another vocabulary than {data.prepared}")
    model = build_model(model_cfg)
    model.load_state_dict(ck["state_dict"])
    return model.to(pick_device("auto")), data, model_cfg, corpus


def extract_features(checkpoint: str | Path, out: str | Path, splits: tuple[str, ...] | None = None) -> Path:
    """Per-utterance vectors of a trained model for every prepared split, row-aligned with the tables."""
    model, data, model_cfg, corpus = trained_model(checkpoint)
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
