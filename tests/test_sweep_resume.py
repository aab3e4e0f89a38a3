"""A sweep whose driver is SIGKILLed mid-run, then `--resume`d: every planned trial ends exactly once,
finished trials are kept, and ASHA's rung records survive (Ray's Tuner.restore alone loses them)."""

import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from helpers import SPACE, assert_each_trial_once, kill_tree, rung_records, sweep_study
from mer_search.core.dirs import SweepDir

pytestmark = pytest.mark.ray


@pytest.mark.slow     # a SIGKILLed driver; the default run stops and resumes one in tests/test_pipeline_smoke.py
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
        while len(rung_records(out)) < 5 and proc.poll() is None and time.time() - t0 < 240:
            time.sleep(0.05)
    finally:
        kill_tree(proc)
    before = rung_records(out)
    assert len(before) >= 5 and not (out / "trials.parquet").exists(), "the driver must die mid-sweep"
    # a kill while Tune copied its callback states to the storage leaves that file torn (seen in CI): the
    # resume drops it, and the callbacks rebuild what they need (which trials had ended, from their statuses)
    (saved,) = (out / "tune").glob("callback-states-*.pkl")
    saved.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])

    r = subprocess.run([sys.executable, "-m", "mer_search.cli", "sweep", "--resume", str(out)], env=env,
                       capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{saved.name}: torn by the driver's kill; removed" in r.stderr
    table = pd.read_parquet(out / "trials.parquet")
    assert_each_trial_once(table, 8)
    # ASHA's records from before the kill are all still there, unchanged
    after = rung_records(out)
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


def test_a_second_driver_on_a_running_sweep_is_refused_and_the_first_finishes(prepared, tmp_path):
    """Two drivers on one sweep dir (say a resume typed twice): the second exits 1 naming the first, which
    runs its whole budget, every trial and epoch once. (A SIGKILLed driver frees the dir: the test above.)"""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    space = tmp_path / "tiny.yaml"
    space.write_text("search: {max_epochs: 3, grace_period: 3, num_samples: 4, sampler: random}\n"
                     "fixed: {model.name: text_mlp, data.batch_size: 16}\n"
                     "params:\n  train.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n")
    out = tmp_path / "sweep"
    first = subprocess.Popen([sys.executable, "-m", "mer_search.cli", "sweep", str(space), "--prepared",
                              str(prepared), "--out", str(out), "--wandb", "disabled"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if SweepDir(out).holds_sweep() or first.poll() is not None:
                break
            time.sleep(0.1)
        second = subprocess.run([sys.executable, "-m", "mer_search.cli", "sweep", "--resume", str(out)], env=env,
                                capture_output=True, text=True, timeout=300)
        _, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            kill_tree(first)
    assert second.returncode == 1 and f"in use by pid {first.pid} on " in second.stderr, second.stderr[-2000:]
    assert first.returncode == 0, err[-3000:]
    assert_each_trial_once(SweepDir(out).trials(), 4)
