"""A trial process killed (as the OOM killer would): resumed from its checkpoint; killed more often than
--max-failures allows: reported as failed. Either way no planned trial goes missing."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]     # ~2-4 minutes here

SPACE = """# mer-search sweep {path} --prepared PREPARED
search: {{metric: dev_wf1, mode: max, max_epochs: 6, grace_period: 6, reduction_factor: 2, num_samples: 4,
         sampler: random}}
fixed: {{model.name: speech_lstm, data.batch_size: 4, data.max_frames: 300}}
params:
  model.hidden: {{type: int, low: 16, high: 48}}
  train.lr: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
"""


def _last(out):
    """trial id -> (epoch, pid) of its latest report."""
    seen = {}
    for result in out.glob("tune/*/result.json"):
        lines = result.read_text().splitlines()
        if lines:
            r = json.loads(lines[-1])
            seen[r["trial_id"]] = (r["training_iteration"], r["pid"])
    return seen


def _wait(cond, proc, timeout=240):
    t0 = time.time()
    while time.time() - t0 < timeout and proc.poll() is None:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the sweep")


def test_killed_trials_are_retried_then_reported_failed(prepared, tmp_path):
    space = tmp_path / "s.yaml"
    space.write_text(SPACE.format(path=space))
    out = tmp_path / "sweep"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen([sys.executable, "-m", "mer_search.cli", "sweep", str(space), "--prepared", str(prepared),
                             "--out", str(out), "--max-failures", "1", "--wandb", "disabled"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # two trials running: kill one once (it resumes), the other twice (one retry allowed: it fails)
        first = _wait(lambda: (lambda r: r if len(r) == 2 else None)(
            [t for t, (e, _) in _last(out).items() if e <= 3][:2]), proc)
        once, twice = first
        pids = {t: _last(out)[t][1] for t in first}
        for t in first:
            os.kill(pids[t], signal.SIGKILL)
        # the doomed trial comes back on a new process, from its checkpoint; kill it again
        new = _wait(lambda: (lambda r: r if r and r[1] != pids[twice] else None)(_last(out).get(twice)), proc)
        os.kill(new[1], signal.SIGKILL)
        output, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-3000:]
    assert "1 failed" in output
    table = pd.read_parquet(out / "trials.parquet")
    assert table.trial_id.nunique() == 4                           # nothing dropped
    for tid, g in table.groupby("trial_id"):
        assert g.training_iteration.tolist() == list(range(1, len(g) + 1)), tid   # resumed, never repeated
    failed = table.groupby("trial_id").error.agg(lambda s: s.astype(bool).any())
    assert failed[failed].index.tolist() == [twice]
    assert table[table.trial_id == once].training_iteration.max() == 6
    from mer_search.core.dirs import SweepDir, ranked

    plan, t = SweepDir(out).load()
    assert ranked(t, plan).set_index("trial_id").loc[twice, "outcome"] == "failed"
