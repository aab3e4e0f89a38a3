"""Reading prepared data without PyAV or torch: what training imports. `PreparedDir` owns the prepared dir's
file names: prepare writes through it, everything else reads through it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from data_prep.errors import PrepError

LOGMEL_FLOOR = -30.0     # log-mel below this (digital silence is -100) is floored before statistics
SPLITS = ("train", "dev", "test")


class PreparedDir:
    """What `mer-search prepare` writes: {split}.parquet (a row per utterance), vocab.json, labels.json,
    quirks.csv, dataset.yaml (the schema's text as prepared), audio/{split}/shard_*.npy + .json and
    audio/train_stats.json, functionals/{split}.npy, embeddings/NAME/{split}.npy, and manifest.json, last."""

    MANIFEST = "manifest.json"
    VOCAB = "vocab.json"
    LABELS = "labels.json"
    QUIRKS = "quirks.csv"
    DATASET = "dataset.yaml"
    AUDIO = "audio"
    TRAIN_STATS = "audio/train_stats.json"   # per-band log-mel mean/std over train's clips
    FUNCTIONALS = "functionals"
    EMBEDDINGS = "embeddings"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def table_path(self, split: str) -> Path:
        return self.path / f"{split}.parquet"

    def has_split(self, split: str) -> bool:
        return self.table_path(split).exists()

    def table(self, split: str, columns: list[str] | None = None):
        import pandas as pd

        return pd.read_parquet(self.table_path(split), columns=columns)

    @property
    def manifest_path(self) -> Path:
        return self.path / self.MANIFEST

    def file(self, name: str) -> Path:
        """One of the named files above (PreparedDir.VOCAB ...)."""
        return self.path / name

    def emotion_names(self) -> list[str]:
        """The emotions in label-id order, as prepare wrote them: a model's classes."""
        return json.loads(self.file(self.LABELS).read_text())["emotion"]

    def functionals(self, split: str) -> Path:
        return self.path / self.FUNCTIONALS / f"{split}.npy"

    def embeddings(self, name: str, split: str) -> Path:
        return self.path / self.EMBEDDINGS / name / f"{split}.npy"

    def shard(self, split: str, index: int) -> Path:
        return self.path / self.AUDIO / split / f"shard_{index:05d}.npy"


TRAIN_STATS = PreparedDir.TRAIN_STATS


def private_tmp(name: str) -> Path:
    """DIR/name in this user's own dir under the temp dir (mode 0700), refused when that dir is a link, owned
    by another user or open to others: in a shared /tmp, a planted link or a fake completion marker is not
    trusted."""
    import stat
    import tempfile

    base = Path(tempfile.gettempdir()) / f"mer-search-{os.getuid()}"
    try:
        base.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(base)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PrepError(f"{base}: not a private dir of this user (a link, another owner, or open to others); "
                        f"remove it, or set MER_SEARCH_CACHE to a dir of your own")
    return base / name


def cache_base() -> Path:
    """Where node-local copies and caches go: $MER_SEARCH_CACHE, else this user's private temp dir."""
    given = os.environ.get("MER_SEARCH_CACHE")
    return Path(given) if given else private_tmp("data")


def localize(prepared: Path | str) -> Path:
    """A prepared dir named by a URI (s3://, gs://, file://) is copied once per node into a local cache,
    keyed by the URI and its manifest's hash, and memory-mapped from there; a plain path is returned as is."""
    if "://" not in str(prepared):
        return Path(prepared)
    import fcntl
    import hashlib
    import shutil

    import pyarrow.fs as pafs

    try:
        fs, root = pafs.FileSystem.from_uri(str(prepared))
        with fs.open_input_stream(f"{root.rstrip('/')}/manifest.json") as f:
            manifest = f.read()
    except (OSError, ValueError) as e:
        raise PrepError(f"{prepared}: no readable manifest.json ({str(e).splitlines()[0][:160]}); "
                        f"run `mer-search prepare` and upload its output there") from None
    key = hashlib.sha256(str(prepared).encode() + hashlib.sha256(manifest).digest()).hexdigest()[:16]
    base = cache_base()
    cache = base / key
    if (cache / ".complete").exists():
        return cache
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f"{key}.lock", "w") as lock:       # one copy per node, however many trials start at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cache / ".complete").exists():
            partial = base / f"{key}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            pafs.copy_files(root, str(partial), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
            (partial / ".complete").write_text(str(prepared))
            shutil.rmtree(cache, ignore_errors=True)
            partial.rename(cache)
    return cache


def load_manifest(out: Path | str) -> dict:
    """The manifest of a finished preparation, or a PrepError saying what is wrong."""
    path = localize(out) / PreparedDir.MANIFEST
    if not path.exists():
        raise PrepError(f"{out}: no manifest.json; run `mer-search prepare` first")
    m = json.loads(path.read_text())
    if not m.get("complete"):
        raise PrepError(f"{out}: preparation did not finish; rerun the same `mer-search prepare` command")
    return m


def emotion_names(prepared: Path | str) -> list[str]:
    """The emotions in label-id order, as prepare wrote them (labels.json): a model's classes."""
    return PreparedDir(prepared).emotion_names()


def data_fingerprint(out: Path | str) -> str:
    """What the prepared data is, not when it was made: the manifest without its timing. A rerun of the same
    `prepare` (everything reused) keeps the fingerprint; new data or settings change it."""
    import hashlib

    m = load_manifest(out)
    m.pop("seconds", None)
    return hashlib.sha256(json.dumps(m, sort_keys=True).encode()).hexdigest()


def load_train_stats(prepared_dir: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Per-band (mean, std) of train's floored log-mel, as `prepare` stored them."""
    path = Path(prepared_dir) / TRAIN_STATS
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; rerun the same `mer-search prepare` command (with the train "
                                f"split) to compute the train statistics that norm: train_stats needs")
    stats = json.loads(path.read_text())
    return np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32)


class ShardReader:
    """Reads one utterance's frames from memory-mapped shards; never unpickles anything."""

    def __init__(self, prepared_dir: Path | str):
        self.root = Path(prepared_dir)
        self._maps: dict[tuple[str, int], np.ndarray] = {}

    def shard(self, split: str, index: int) -> np.ndarray:
        key = (split, index)
        if key not in self._maps:
            path = PreparedDir(self.root).shard(split, index)
            self._maps[key] = np.load(path, mmap_mode="r", allow_pickle=False)
        return self._maps[key]

    def get(self, split: str, shard: int, offset: int, length: int) -> np.ndarray:
        """(length, n_mels) view into the shard; only these rows are read from disk."""
        if shard < 0:
            raise KeyError(f"{split}: utterance has no audio (shard -1)")
        return self.shard(split, shard)[offset: offset + length]
