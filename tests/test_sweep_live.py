"""A sweep watched live and lost: W&B runs readable while it runs, a driver SIGKILL and `--resume` (one run per
trial, each epoch logged once), a lost head resumed from its --storage URI alone, and bounded checkpoints."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers import SPACE, assert_each_trial_once, kill_tree, rung_records, sweep_study

pytestmark = pytest.mark.ray
WANDB = str(Path(sys.executable).parent / "wandb")


def _wandb_records(run_dir: Path) -> tuple[str, list[int]]:
    """(run id, the history steps in order) of one offline run, read with W&B's own `wandb leet inspect`. The
    id comes from the dir name (offline-run-<time>-<id>): a driver killed as it opened a run leaves a log with
    no run record yet."""
    out = subprocess.run([WANDB, "leet", "inspect", "--json", str(run_dir)], capture_output=True, text=True,
                         timeout=60).stdout
    steps = [int(rec["history"]["item"]["_step"]) for rec in map(json.loads, out.splitlines())
             if rec["type"] == "history"]
    return run_dir.name.split("-", 3)[-1], steps


def _dashboard(url: str, path: str) -> dict:
    """GET an optuna-dashboard API path through its WSGI app (what `optuna-dashboard URL` serves)."""
    import io

    from optuna_dashboard import wsgi

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "test",
               "SERVER_PORT": "80", "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr}
    status = []
    body = b"".join(wsgi(url)(environ, lambda s, headers, *exc: status.append(s)))
    assert status[0].startswith("200"), (path, status, body[:300])
    return json.loads(body)


def _dashboard_trials(out: Path) -> list[dict]:
    """The sweep's study as optuna-dashboard loads it: each trial's state, intermediate values, user attrs."""
    url = str(out / "optuna.journal")         # optuna-dashboard opens a journal file by its path
    studies = _dashboard(url, "/api/studies")["study_summaries"]
    if not studies:           # the sweep has created the file, not yet the study
        return []
    (study,) = studies
    return _dashboard(url, f"/api/studies/{study['study_id']}")["trials"]


def _checkpoints(tune_dir: Path) -> dict[str, int]:
    """trial id -> checkpoint dirs it has now."""
    return {d.name.split("_")[1]: len(list(d.glob("checkpoint_*"))) for d in tune_dir.glob("trainable_*")}


def _sweep(args, env):
    return subprocess.Popen([sys.executable, "-m", "mer_search.cli", "sweep", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def env():
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.mark.slow     # a driver killed in a subprocess; the default run stops and resumes one in tests/test_pipeline_smoke.py
def test_live_wandb_and_bounded_checkpoints_through_a_driver_kill(prepared, tmp_path, env):
    space = tmp_path / "tiny.yaml"
    space.write_text(SPACE.format(path=space))
    out = tmp_path / "sweep"
    proc = _sweep([str(space), "--prepared", str(prepared), "--out", str(out), "--wandb", "offline", "--seed", "2"],
                  env)
    live, board, t0 = None, None, time.time()
    try:
        while len(rung_records(out)) < 5 and proc.poll() is None and time.time() - t0 < 240:
            if board is None and (out / "optuna.journal").exists():
                trials = _dashboard_trials(out)       # a second process reading the study mid-sweep
                if any(len(t["intermediate_values"]) >= 2 for t in trials) and proc.poll() is None:
                    board = trials
            if live is None:
                for run in (out / "wandb").glob("offline-run-*"):
                    run_id, steps = _wandb_records(run)
                    if len(steps) >= 2 and proc.poll() is None:
                        live = (run_id, steps)     # read back while the sweep is still running
                        break
            time.sleep(0.1)
    finally:
        kill_tree(proc)
    assert live is not None, "no W&B run had two epochs logged while the sweep ran"
    assert board is not None, "optuna-dashboard saw no trial with two epochs while the sweep ran"
    ray_ids = {d.name.split("_")[1] for d in (out / "tune").glob("trainable_*")}
    for t in board:
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        assert attrs.get("ray_trial_id") in ray_ids, attrs
        steps = [v["step"] for v in t["intermediate_values"]]
        assert steps == list(range(1, len(steps) + 1)), steps
    assert live[1][:2] == [1, 2]
    assert not (out / "trials.parquet").exists(), "the driver must die mid-sweep"
    # at the kill, every checkpoint Tune's persisted snapshot would resume a trial from is still there (the bound
    # itself: tests/test_checkpoint_rules.py; its size on a real sweep: bench/checkpoint_disk.py)
    import pyarrow.fs as pafs

    from mer_search.search.ray_internals import snapshot_positions

    snapshot = snapshot_positions(pafs.LocalFileSystem(), str(out / "tune"))
    assert snapshot, "Tune had written no snapshot before the kill"
    resumable = {tid: floor for tid, (status, floor) in snapshot.items() if status != "TERMINATED" and floor}
    assert resumable, f"no running trial with a checkpoint in the snapshot at the kill: {snapshot}"
    for tid, floor in resumable.items():
        (trial_dir,) = (out / "tune").glob(f"trainable_{tid}_*")
        assert (trial_dir / floor).is_dir(), (tid, floor, sorted(p.name for p in trial_dir.iterdir()))

    r = subprocess.run([sys.executable, "-m", "mer_search.cli", "sweep", "--resume", str(out)], env=env,
                       capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    table = pd.read_parquet(out / "trials.parquet")
    epochs = table.groupby("trial_id").training_iteration.max()
    assert len(epochs) == 8
    # W&B: one run id per trial (a resumed trial reopens its run), every epoch logged exactly once
    steps: dict[str, list[int]] = {}
    for run in sorted((out / "wandb").glob("offline-run-*")):
        run_id, s = _wandb_records(run)
        steps.setdefault(run_id, []).extend(s)
    assert sorted(rid.split("-")[-1] for rid in steps) == sorted(epochs.index)
    for rid, s in steps.items():
        assert sorted(s) == list(range(1, int(epochs[rid.split("-")[-1]]) + 1)), (rid, s)
    # every trial has ended: its best epoch's checkpoint only
    assert _checkpoints(out / "tune") == {tid: 1 for tid in epochs.index}


@pytest.mark.slow     # a driver killed in a subprocess; the default run stops and resumes one in tests/test_pipeline_smoke.py
def test_head_loss_resumes_from_the_storage_uri_alone(prepared, tmp_path, env):
    space = tmp_path / "tiny.yaml"
    space.write_text(SPACE.format(path=space))
    remote, head = tmp_path / "bucket", tmp_path / "head" / "sweep"
    proc = _sweep([str(space), "--prepared", str(prepared), "--out", str(head), "--storage", f"file://{remote}",
                   "--wandb", "disabled", "--keep-checkpoints", "none", "--seed", "3"], env)
    t0 = time.time()
    try:
        while len(rung_records(remote)) < 5 and proc.poll() is None and time.time() - t0 < 240:
            time.sleep(0.05)
    finally:
        kill_tree(proc)
    before = rung_records(remote)
    assert len(before) >= 5 and not (remote / "trials.parquet").exists(), "the driver must die mid-sweep"
    assert not list(remote.glob("*.tmp-*")), "a half-written state file in the storage"
    shutil.rmtree(tmp_path / "head")           # the head is gone: nothing local survives

    elsewhere = tmp_path / "new-head" / "sweep"
    r = subprocess.run([sys.executable, "-m", "mer_search.cli", "sweep", "--resume", f"file://{remote}",
                        "--out", str(elsewhere)], env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_each_trial_once(pd.read_parquet(elsewhere / "trials.parquet"), 8)
    after = rung_records(elsewhere)
    assert all(after.get(k) == v for k, v in before.items()), "ASHA's records from before the loss changed"
    study = sweep_study(elsewhere)
    states = pd.Series([t.state.name for t in study.trials])
    assert (states == "COMPLETE").sum() == 8 and not (states == "RUNNING").any(), states.value_counts().to_dict()
    # the storage holds the finished state too, and --keep-checkpoints none left no checkpoint
    assert json.loads((remote / "status.json").read_text())["finished"] is True
    assert set(_checkpoints(remote / "tune").values()) == {0}


KILL_SPACE = """# mer-search sweep {path} --prepared PREPARED
search: {{metric: dev_wf1, mode: max, max_epochs: 40, grace_period: 1, reduction_factor: 2, num_samples: 8,
         sampler: random}}
fixed: {{model.name: text_mlp, data.batch_size: 4}}
params:
  model.emb_dim: {{type: int, low: 8, high: 32}}
  train.lr: {{type: float, low: 1.0e-3, high: 3.0e-2, log: true}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_driver_killed_again_and_again_never_loses_a_needed_checkpoint(prepared, tmp_path, env, seed, kills=12):
    """The race bounded checkpoints must not bring back (Tune resuming a trial from a checkpoint already
    deleted): fast epochs (many checkpoints a second, deleted as they age) and the driver SIGKILLed at random
    moments, `kills` times, each time resumed; then the sweep must end with every trial complete, once."""
    import random

    space = tmp_path / "kill.yaml"
    space.write_text(KILL_SPACE.format(path=space))
    out, rng = tmp_path / "sweep", random.Random(seed)
    start = [str(space), "--prepared", str(prepared), "--out", str(out), "--wandb", "offline",
             "--scheduler", "none", "--max-failures", "0"]
    for i in range(kills):
        proc = _sweep(start if i == 0 else ["--resume", str(out)], env)
        deadline = time.time() + rng.uniform(4, 10)      # Ray takes ~4 s to start: kill mid-trial
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"the sweep ended before kill {i + 1} of {kills}"
        kill_tree(proc)
    r = subprocess.run([sys.executable, "-m", "mer_search.cli", "sweep", "--resume", str(out)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    table = pd.read_parquet(out / "trials.parquet")
    assert table.trial_id.nunique() == 8
    for tid, g in table.groupby("trial_id"):      # no trial failed (--max-failures 0: a missing checkpoint would)
        assert g.training_iteration.tolist() == list(range(1, 41)), tid
        assert g.error.eq("").all(), (tid, g.error.iloc[-1])
    assert _checkpoints(out / "tune") == {tid: 1 for tid in table.trial_id.unique()}
    steps: dict[str, list[int]] = {}
    for run in sorted((out / "wandb").glob("offline-run-*")):
        run_id, s = _wandb_records(run)
        steps.setdefault(run_id, []).extend(s)
    assert {rid: sorted(s) for rid, s in steps.items()} == {rid: list(range(1, 41)) for rid in steps}


@pytest.mark.slow     # a driver killed in a subprocess; the default run stops and resumes one in tests/test_pipeline_smoke.py
def test_a_driver_killed_before_tunes_first_snapshot_resumes_the_whole_budget(prepared, tmp_path, env):
    """Killed after Tune wrote its tuner file but before any experiment snapshot: Tune's own restore would run
    a budget of one trial; the resume starts a new Tune run over the same study instead."""
    space = tmp_path / "kill.yaml"
    space.write_text(KILL_SPACE.format(path=space).replace("num_samples: 8", "num_samples: 3")
                     .replace("max_epochs: 40", "max_epochs: 3"))
    out = tmp_path / "sweep"
    proc = _sweep([str(space), "--prepared", str(prepared), "--out", str(out), "--wandb", "disabled",
                   "--scheduler", "none"], env)
    t0 = time.time()
    try:
        while not (out / "tune" / "tuner.pkl").exists() and proc.poll() is None and time.time() - t0 < 120:
            time.sleep(0.01)
    finally:
        kill_tree(proc)
    assert not list((out / "tune").glob("experiment_state-*")), "killed too late: Tune had snapshotted"
    r = subprocess.run([sys.executable, "-m", "mer_search.cli", "sweep", "--resume", str(out)], env=env,
                       capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    table = pd.read_parquet(out / "trials.parquet")
    assert table.trial_id.nunique() == 3 and table.groupby("trial_id").training_iteration.max().eq(3).all()
    assert json.loads((out / "status.json").read_text())["finished"] is True
