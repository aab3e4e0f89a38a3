"""W&B while the sweep runs: one run per trial, opened when the trial starts, a step per reported epoch, finished
with its outcome (completed / stopped by the scheduler / failed / cut short). All from the driver, in one
process (no logging actor per trial). Offline by default; `mer-search sync` uploads.

A run's id is fixed by the sweep and the trial, and `wandb_steps.json` in the sweep dir records the last
step logged for each. After a driver crash, `--resume` reopens the same run ids and logs each epoch once: W&B
writes its log to disk every FLUSH_EVERY_S, so what the killed driver logged last may never have reached the
disk; a reopened run first reads which steps its log files hold (`wandb leet inspect`, W&B's own reader),
logs the missing ones from the trial's results as Ray stored them, and skips the ones it has.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
from pathlib import Path

import pyarrow.fs as pafs

from ray import tune

from data_prep.atomic import write_json_atomic
from mer_search.core.metrics import better
from mer_search.search import state, wandb_internals

log = logging.getLogger(__name__)
FLUSH_EVERY_S = 2.0      # the offline log on disk lags at most this much (W&B's default, 15 s, hides short trials)


def run_id(group: str, trial_id: str) -> str:
    return f"{hashlib.sha1(group.encode()).hexdigest()[:8]}-{trial_id}"


def steps_on_disk(wandb_dir: Path, rid: str) -> set[int]:
    """The history steps a run's local log files (offline or online) hold, as W&B's reader sees them."""
    return set().union(*(wandb_internals.logged_steps(d) for d in wandb_dir.glob(f"*run-*-{rid}")))


def _stored_results(trial) -> dict[int, dict]:
    """A trial's reported results as Ray stored them (result.json in its trial dir), by epoch."""
    storage = state.current().storage if state.current() else None
    fs = (storage.fs if storage else None) or pafs.LocalFileSystem()
    try:
        with fs.open_input_stream(posixpath.join(trial.path, "result.json")) as f:
            lines = f.read().decode().splitlines()
    except (OSError, FileNotFoundError):
        return {}
    out = {}
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:       # the last line, cut by the crash
            continue
        out[int(r.get("training_iteration", 0))] = r
    return out


class LiveWandb(tune.Callback):
    def __init__(self, group: str, settings: dict, metric: str, mode: str, max_t: int, wandb_mode: str = "offline"):
        self.group, self.settings, self.metric, self.mode = group, settings, metric, mode
        self.max_t, self.wandb_mode = max_t, wandb_mode
        self.runs: dict = {}
        self.ledger: dict | None = None

    def __getstate__(self):      # open runs stay in this process; the ledger is re-read from the sweep dir
        return {**self.__dict__, "runs": {}, "ledger": None}

    # -- the ledger: what was logged, per trial ----------------------------------------------------------
    def _ledger(self) -> dict:
        if self.ledger is None:
            path = state.current().dir.wandb_steps_path
            self.ledger = json.loads(path.read_text()) if path.exists() else {}
        return self.ledger

    def _save(self) -> None:
        write_json_atomic(state.current().dir.wandb_steps_path, self.ledger)

    # -- runs --------------------------------------------------------------------------------------------
    def _open(self, trial):
        tid = trial.trial_id
        if tid in self.runs:
            return self.runs[tid]
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        earlier = tid in self._ledger()
        entry = self.ledger.setdefault(tid, {"run_id": run_id(self.group, tid), "step": 0})
        if earlier:     # opened by an earlier driver: trust what reached the disk, not the ledger
            entry["step"] = max(steps_on_disk(state.current().dir.wandb_dir, entry["run_id"]), default=0)
        config = {k: v for k, v in trial.config.items() if "." in k}
        run = wandb.init(project="mer-search", group=self.group, name=tid, id=entry["run_id"], resume="allow",
                         job_type="trial", config={**config, "sweep": self.settings}, mode=self.wandb_mode,
                         dir=str(state.current().dir.path), reinit="create_new",
                         settings=wandb_internals.settings(FLUSH_EVERY_S, x_disable_stats=True, x_disable_meta=True,
                                                           console="off", disable_git=True, save_code=False,
                                                           silent=True))
        self.runs[tid] = run
        self._save()
        return run

    def _finish(self, trial, outcome: str) -> None:
        run = self.runs.pop(trial.trial_id, None) or self._open(trial)
        self.runs.pop(trial.trial_id, None)
        entry = self._ledger()[trial.trial_id]
        run.tags = (outcome,)
        run.summary["outcome"] = outcome
        for key in ("best_epoch", f"best_{self.metric}", "n_params"):
            if key in entry:
                run.summary[key] = entry[key]
        run.summary["epochs"] = entry["step"]
        run.finish(exit_code=0 if outcome != "failed" else 1)
        entry["outcome"] = outcome
        self._save()

    # -- Tune events -------------------------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        self._open(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        run = self._open(trial)
        entry = self.ledger[trial.trial_id]
        step = int(result.get("training_iteration", 0))
        if step <= entry["step"]:        # already logged before a driver restart
            return
        if step > entry["step"] + 1:     # epochs the killed driver logged but W&B never wrote: from Ray's results
            stored = _stored_results(trial)
            for missing in range(entry["step"] + 1, step):
                if missing in stored:
                    self._log(run, entry, stored[missing], missing)
        self._log(run, entry, result, step)
        self._save()

    def _log(self, run, entry: dict, result: dict, step: int) -> None:
        run.log({k: float(v) for k, v in result.items()
                 if k.startswith(("dev_", "train_", "lr")) and isinstance(v, (int, float))}, step=step, commit=True)
        value = result.get(self.metric)
        best = entry.get(f"best_{self.metric}")
        if value is not None and better(value, best, self.mode):
            entry[f"best_{self.metric}"], entry["best_epoch"] = float(value), step
        if "n_params" in result:
            entry["n_params"] = int(result["n_params"])
        entry["step"] = step

    def on_trial_complete(self, iteration, trials, trial, **info):
        epochs = self._ledger().get(trial.trial_id, {}).get("step", 0)
        self._finish(trial, "completed" if epochs >= self.max_t else "stopped")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, "failed")

    def on_experiment_end(self, trials, **info):
        for trial in trials:       # still open: the sweep was stopped; a resume reopens the same run
            if trial.trial_id in self.runs:
                self._finish(trial, "cut short")
