"""A sweep whose driver is SIGKILLed mid-run, then `--resume`d: every planned trial ends exactly once,
finished trials are kept, and ASHA's rung records survive (Ray's Tuner.restore alone loses them)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import psutil
import pytest

pytestmark = pytest.mark.ray

SPACE = """# mer-search sweep {path} --prepared PREPARED
search: {{metric: dev_wf1, mode: max, max_epochs: 4, grace_period: 1, reduction_factor: 2, num_samples: 8,
         sampler: tpe}}
fixed: {{model.name: speech_lstm, data.batch_size: 4, data.max_frames: 300}}
params:
  model.hidden: {{type: int, low: 16, high: 48}}
  model.dropout: {{type: float, low: 0.0, high: 0.5}}
  train.lr: {{type: float, low: 1.0e-4, high: 3.0e-2, log: true}}
"""


def sweep_study(where):
    """A sweep's Optuna study: its default journal file in a sweep dir, or a storage URL."""
    from mer_search.search.state import study_storage

    storage = study_storage(str(where / "optuna.journal") if isinstance(where, Path) else where)
    return optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)


def _rung_records(out):
    try:
        saved = json.loads((out / "asha_rungs.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {(float(m), tid): v for bracket in saved["brackets"] for m, rec in bracket for tid, v in rec.items()}


def assert_each_trial_once(table, trials: int) -> None:
    """Every planned trial exactly once, each with epochs 1..n and no repeats, none failed."""
    assert table.trial_id.nunique() == trials
    for tid, g in table.groupby("trial_id"):
        assert g.training_iteration.tolist() == list(range(1, len(g) + 1)), tid
        assert g.error.eq("").all(), tid


def _kill_tree(proc):
    """SIGKILL the driver and everything it started (Ray's helpers ignore SIGTERM and outlive the driver)."""
    family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    for pid in family:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    psutil.wait_procs([p for p in map(_proc, family) if p], timeout=10)


def _proc(pid):
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def test_driver_sigkill_then_resume_accounts_for_every_trial(prepared, tmp_path):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    space = tmp_path / "tiny.yaml"
    space.write_text(SPACE.format(path=space))
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "mer_search.cli", "sweep", str(space), "--prepared", str(prepared),
           "--out", str(out), "--wandb", "disabled", "--seed", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    try:
        while len(_rung_records(out)) < 5 and proc.poll() is None and time.time() - t0 < 240:
            time.sleep(0.05)
    finally:
        _kill_tree(proc)
    before = _rung_records(out)
    assert len(before) >= 5 and not (out / "trials.parquet").exists(), "the driver must die mid-sweep"

    r = subprocess.run([sys.executable, "-m", "mer_search.cli", "sweep", "--resume", str(out)], env=env,
                       capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    table = pd.read_parquet(out / "trials.parquet")
    assert_each_trial_once(table, 8)
    # ASHA's records from before the kill are all still there, unchanged
    after = _rung_records(out)
    assert all(after.get(k) == v for k, v in before.items())
    assert len(after) > len(before)
    epochs = table.groupby("trial_id").training_iteration.max()
    assert epochs.max() == 4 and (epochs < 4).any(), epochs.tolist()
    # the Optuna study: one finished record per trial; suggestions lost with the driver are marked, not counted
    study = sweep_study(out)
    states = pd.Series([t.state.name for t in study.trials])
    assert (states == "COMPLETE").sum() == 8, states.value_counts().to_dict()
    assert not (states == "RUNNING").any()
    assert "8 trials" in r.stdout
