"""A prepare killed with SIGKILL at any moment, then run again, ends complete and consistent."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from data_prep.atomic import sha256_file

pytestmark = pytest.mark.e2e      # real prepare processes, killed and rerun


def _cmd(corpus, out):
    return [sys.executable, "-m", "mer_search.cli", "prepare", "--meld-root", str(corpus), "--out", str(out),
            "--shard-size", "2", "--no-progress"]


def _kill_when(cmd, ready, timeout=120):
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    try:
        while not ready() and proc.poll() is None and time.time() - t0 < timeout:
            time.sleep(0.02)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # it had already finished
            pass
        proc.wait()
    return proc.returncode


def _check_consistent(out, corpus):
    m = json.loads((out / "manifest.json").read_text())
    assert m["complete"] is True
    for split in ("train", "dev", "test"):
        df = pd.read_parquet(out / f"{split}.parquet")
        csv = pd.read_csv(corpus / f"{split}_sent_emo.csv")
        assert sorted(zip(df.dialogue_id, df.utterance_id)) == sorted(zip(csv.Dialogue_ID, csv.Utterance_ID))
        for shard, g in df[df.shard >= 0].groupby("shard"):
            frames = np.load(out / "audio" / split / f"shard_{shard:05d}.npy", mmap_mode="r", allow_pickle=False)
            assert (g.offset + g.length).max() == frames.shape[0]
    for name, info in m["files"].items():
        assert sha256_file(out / name) == info["sha256"], name
    assert not list(out.rglob(".*.tmp*")), "temporary files left behind"


def _shards(out):
    return sorted((out / "audio").rglob("shard_*.json")) if (out / "audio").exists() else []


# one kill point in the default run; the other two in the slow tier
@pytest.mark.parametrize("when", [pytest.param("start", marks=pytest.mark.slow), "after_3_shards",
                                  pytest.param("after_12_shards", marks=pytest.mark.slow)])
def test_sigkill_then_rerun_is_complete(synth_corpus, tmp_path, when):
    out = tmp_path / "out"
    need = {"start": 0, "after_3_shards": 3, "after_12_shards": 12}[when]
    ready = (lambda: (out / "manifest.json").exists()) if need == 0 else (lambda: len(_shards(out)) >= need)
    rc = _kill_when(_cmd(synth_corpus, out), ready)
    assert rc == -signal.SIGKILL, "prepare finished before it could be killed"
    m = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else {}
    assert not m.get("complete"), "a killed run must not look complete"
    survivors = {p.with_suffix(".npy"): p.with_suffix(".npy").stat().st_mtime_ns for p in _shards(out)}
    assert len(survivors) >= need
    done = subprocess.run(_cmd(synth_corpus, out), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{len(survivors)} already done" in done.stderr
    _check_consistent(out, synth_corpus)
    for npy, mtime in survivors.items():
        assert npy.stat().st_mtime_ns == mtime, f"{npy.name} was recomputed"


@pytest.mark.slow
def test_repeated_random_kills(synth_corpus, tmp_path):
    rng = np.random.default_rng(0)
    out = tmp_path / "out"
    for _ in range(8):
        deadline = time.time() + rng.uniform(0.5, 6.0)
        _kill_when(_cmd(synth_corpus, out), lambda: time.time() > deadline)
    done = subprocess.run(_cmd(synth_corpus, out), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    _check_consistent(out, synth_corpus)
