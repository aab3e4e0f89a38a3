"""No pickle anywhere data or configs are read or written."""

import re
from pathlib import Path

import numpy as np
import pytest

from data_prep.reader import ShardReader

REPO = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("data_prep", "mer_search", "bench") for p in (REPO / d).rglob("*.py")]


def test_shard_reader_refuses_pickled_arrays(tmp_path):
    shard = tmp_path / "audio" / "dev" / "shard_00000.npy"
    shard.parent.mkdir(parents=True)
    np.save(shard, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle|Python objects"):
        ShardReader(tmp_path).get("dev", 0, 0, 1)


def test_prepared_shards_load_without_pickle(prepared):
    shards = list((prepared / "audio").rglob("*.npy"))
    assert shards
    for npy in shards:
        arr = np.load(npy, mmap_mode="r", allow_pickle=False)
        assert arr.dtype == np.float32 and arr.ndim == 2


@pytest.mark.parametrize("pattern", [r"^\s*import pickle", r"^\s*from pickle", r"allow_pickle\s*=\s*True",
                                     # yaml.load only with config_io's SafeLoader subclass (tested below)
                                     r"yaml\.(unsafe_)?load\((?![^)]*Loader=Loader\))", r"(?<![.\w])eval\(",
                                     r"weights_only\s*=\s*False"])
def test_sources_use_no_unsafe_loading(pattern):
    hits = [f"{p.relative_to(REPO)}:{i}" for p in SOURCES for i, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(pattern, line)]
    assert not hits, hits
    assert len(SOURCES) > 5


@pytest.mark.parametrize("order", ["C", "F"])
def test_npy_writer_round_trips_any_memory_order(tmp_path, order):
    from data_prep.atomic import write_npy_atomic

    a = np.asarray(np.random.default_rng(0).standard_normal((7, 5)), dtype=np.float32, order=order)
    nbytes, digest = write_npy_atomic(tmp_path / "a.npy", a)
    b = np.load(tmp_path / "a.npy", allow_pickle=False)
    np.testing.assert_array_equal(a, b)
    import hashlib

    data = (tmp_path / "a.npy").read_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest()) == (nbytes, digest)
