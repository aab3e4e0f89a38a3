"""Trial schedulers, with ASHA's rung records kept in the sweep dir.

Ray's Tuner.restore rebuilds the scheduler from the pickle written when the sweep
started, so after a driver crash ASHA would forget every rung result and judge the
resumed trials against empty rungs. `PersistentASHA` writes its records to a JSON
file after every decision that changed them and reads them back when it is unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule

from data_prep.atomic import write_json_atomic
from mer_search.core.dirs import SweepDir
from mer_search.core.errors import ConfigError
from mer_search.core.plan import SCHEDULERS, SearchSettings
from mer_search.search import ray_internals, state



class PersistentASHA(AsyncHyperBandScheduler):
    def __init__(self, record_path: str | Path, **kwargs):
        super().__init__(**kwargs)
        self.record_path = str(record_path)

    # -- persistence (the private state it touches: mer_search.search.ray_internals) -------------------------
    def records(self) -> dict:
        return ray_internals.asha_records(self)

    def _save(self) -> None:
        """After a decision that changed the records (most results change nothing: not rewritten)."""
        signature = ray_internals.asha_signature(self)
        if signature != getattr(self, "_saved_signature", None):
            # not fsynced: rewritten several times a trial; a killed driver still leaves a whole file
            write_json_atomic(Path(self.record_path), self.records(), durable=False)
            self._saved_signature = signature

    def _load(self) -> None:
        if not os.path.exists(self.record_path):
            return
        self._saved_bracket = ray_internals.restore_asha_records(self, json.loads(Path(self.record_path).read_text()))

    def __setstate__(self, st: dict) -> None:
        self.__dict__.update(st)
        self._saved_signature = None
        self.record_path = state.here(self.record_path)     # restored on a new head: its sweep dir
        self._load()

    # -- scheduler hooks -------------------------------------------------------------------------------
    def on_trial_add(self, tune_controller, trial) -> None:
        super().on_trial_add(tune_controller, trial)
        idx = getattr(self, "_saved_bracket", {}).get(trial.trial_id)
        if idx is not None:      # a resumed trial goes back to the bracket it was in
            ray_internals.put_trial_in_bracket(self, trial.trial_id, idx)
        self._save()

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        self._save()
        return action

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        super().on_trial_complete(tune_controller, trial, result)
        self._save()


def make_scheduler(name: str, search: SearchSettings, sweep_dir: SweepDir):
    """search: the space's search settings (max_epochs, grace_period, reduction_factor, reports_per_epoch: its
    unit is one report, training_iteration); ASHA keeps its records in the sweep dir."""
    if name == "asha":
        return PersistentASHA(sweep_dir.rungs_path, time_attr="training_iteration",
                              max_t=search.max_reports, grace_period=search.grace_reports,
                              reduction_factor=search.reduction_factor)
    if name == "hyperband":
        return HyperBandScheduler(time_attr="training_iteration", max_t=search.max_reports,
                                  reduction_factor=search.reduction_factor)
    if name == "median":
        return MedianStoppingRule(time_attr="training_iteration", grace_period=search.grace_reports)
    if name == "none":
        return FIFOScheduler()
    raise ConfigError(f"unknown scheduler {name!r}; valid: {', '.join(SCHEDULERS)}")
