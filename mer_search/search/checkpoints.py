"""Bounded trial checkpoints: while a trial runs, its last two epochs and its best so far; once it has ended,
its best epoch only (or nothing, --keep-checkpoints none).

Every epoch writes a checkpoint (a resume continues from the last one). Deleting old ones races with Ray's
experiment snapshot, written every couple of seconds: after a driver crash, Tune resumes each trial from the
checkpoint its last *persisted* snapshot names, which may be older than the newest on disk. So a checkpoint is
deleted only when that snapshot no longer needs it: older than the one before the one it names for a running
trial (Tune registers a checkpoint a step after the result naming it; when it names none, as for a restored
trial before its first new report, nothing goes), or any but the best once it records the trial TERMINATED.
An ERROR trial keeps its latest checkpoint too (a resume
retries errored trials from there). The pruner runs in the driver, as results arrive.
"""

from __future__ import annotations

import logging
import posixpath
import time

import pyarrow.fs as pafs
from ray import tune

from mer_search.core.dirs import SweepDir
from mer_search.core.errors import ConfigError
from mer_search.core.plan import KEEP_CHOICES
from mer_search.search import ray_internals, state

log = logging.getLogger(__name__)
SNAPSHOT_READ_EVERY_S = 1.0


def _index(name: str) -> int:
    return int(name.rsplit("_", 1)[-1])


def checkpoints_to_keep(names: list[str], snapshot: tuple[str, str | None] | None, best: str | None,
                        keep: str = "best") -> set[str]:
    """Of a trial's checkpoint dirs, those to keep, given what the persisted snapshot says of the trial
    (None: it does not know the trial yet) and its best epoch's checkpoint."""
    if snapshot is None:
        return set(names)
    status, floor = snapshot
    best_kept = {best} if best in names and keep == "best" else set()
    if status == "TERMINATED":
        return best_kept
    latest = set(sorted(names, key=_index)[-1:])
    if status == "ERROR":
        return best_kept | latest
    if floor is None:     # it names none (a restored trial before its first new report): any may be the one
        return set(names)
    kept = set(sorted(names, key=_index)[-2:]) | ({best} if best in names else set())
    # the snapshot's last result names its checkpoint a step before Tune registers it as the one to resume
    # from: a snapshot taken in between resumes from the one before (seen in the driver-kill loop)
    return kept | {n for n in names if _index(n) >= _index(floor) - 1}


class CheckpointPruner(tune.Callback):
    def __init__(self, metric: str, mode: str, keep: str = "best"):
        if keep not in KEEP_CHOICES:
            raise ConfigError(f"keep_checkpoints {keep!r}: one of {', '.join(KEEP_CHOICES)}")
        self.metric, self.mode, self.keep = metric, mode, keep
        self.values: dict[str, dict[str, float]] = {}     # trial id -> checkpoint dir -> metric
        self.paths: dict[str, str] = {}                    # trial id -> its dir in the storage
        self.pending: set[str] = set()                     # trials that may have checkpoints to delete
        self._snapshot, self._read_at = {}, 0.0

    # -- events ------------------------------------------------------------------------------------------
    def on_trial_result(self, iteration, trials, trial, result, **info):
        name = result.get("checkpoint_dir_name")
        if name and result.get(self.metric) is not None:
            self.values.setdefault(trial.trial_id, {})[name] = float(result[self.metric])
        self._touch(trial)
        self.prune()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._touch(trial)
        self.prune()

    def on_trial_error(self, iteration, trials, trial, **info):
        self._touch(trial)
        self.prune()

    def on_experiment_end(self, trials, **info):
        for t in trials:        # after Tune's final snapshot: every ended trial down to its best
            self._touch(t)
        self.prune(fresh=True)

    def _touch(self, trial) -> None:
        self.paths[trial.trial_id] = trial.path
        self.pending.add(trial.trial_id)

    # -- state kept in Tune's snapshot, so a resumed driver knows each trial's best ----------------------
    def get_state(self) -> dict:
        return {"values": self.values, "paths": self.paths, "pending": sorted(self.pending)}

    def set_state(self, st: dict) -> None:
        self.values, self.paths = st.get("values", {}), st.get("paths", {})
        self.pending = set(st.get("pending", []))
        self._snapshot, self._read_at = {}, 0.0

    # -- pruning -----------------------------------------------------------------------------------------
    def best(self, trial_id: str) -> str | None:
        values = self.values.get(trial_id)
        if not values:
            return None
        pick = min if self.mode == "min" else max
        return pick(values, key=lambda n: (values[n], -_index(n)))

    def prune(self, fresh: bool = False) -> int:
        """Delete what no restore can need; returns how many checkpoint dirs went."""
        storage = state.current().storage if state.current() else None
        if storage is None or not self.pending or self.keep == "all":
            return 0
        fs = storage.fs or pafs.LocalFileSystem()
        if fresh or time.monotonic() - self._read_at >= SNAPSHOT_READ_EVERY_S:
            self._snapshot = ray_internals.snapshot_positions(fs, storage.join(SweepDir.TUNE))
            self._read_at = time.monotonic()
        deleted = 0
        for tid in sorted(self.pending):
            path = self.paths.get(tid)
            if not path:
                continue
            try:
                listed = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
            except OSError as e:           # the trial dir came or went while it was listed: the next pass retries
                log.debug("could not list %s: %s", path, e)
                continue
            names = [i.base_name for i in listed
                     if i.type == pafs.FileType.Directory and i.base_name.startswith("checkpoint_")]
            snap = self._snapshot.get(tid)
            keep = checkpoints_to_keep(names, snap, self.best(tid), self.keep)
            for name in sorted(set(names) - keep):
                try:
                    fs.delete_dir(posixpath.join(path, name))
                    deleted += 1
                except OSError as e:       # gone already, or the storage hiccuped: the next pass retries
                    log.debug("could not delete %s/%s: %s", path, name, e)
            if snap is not None and snap[0] == "TERMINATED":
                self.pending.discard(tid)        # down to its final checkpoint: nothing more to do
        return deleted
