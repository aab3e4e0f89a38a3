"""A sweep's own state (plan, space, ASHA's records, the study, status, results, W&B ledger), mirrored to
its --storage while it runs, so that losing the head loses nothing a resume needs.

Ray keeps its trial results, checkpoints and experiment snapshots in the storage already; this adds the rest.
Uploads are atomic (written beside, then moved into place): a reader never sees half a file. A journal study
is copied up to its last whole line; a sqlite study with SQLite's backup API, which gives a consistent copy
while the sweep keeps writing. A study in a database the user named (--study-storage) is not copied: it
lives there already.

`SweepState` is where the running sweep is on this machine. Tuner.restore unpickles objects made when the
sweep ran before (scheduler, searcher, callbacks), possibly on another head with another sweep dir; they find
the running sweep through `current()` and move a path they kept from an earlier sweep dir (sweep.json lists
them) to this one (`here`). Only `Sweep` (sweep.py) activates and deactivates it, for its lifetime.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
from dataclasses import replace
from pathlib import Path

import optuna
from ray import tune

from mer_search.dirs import SweepDir
from mer_search.plan import SweepPlan
from mer_search.search import optuna_internals
from mer_search.search.storage import Storage

log = logging.getLogger(__name__)


class SweepState:
    """The running sweep: its dir here, the dirs it ran in before, its storage, and what the trial ledger
    saw when Tune's run ended (which trials ended; the driver reads it after Tuner.fit)."""

    def __init__(self, sweep_dir: SweepDir, plan: SweepPlan):
        self.dir = SweepDir(Path(sweep_dir.path).resolve())
        out = str(self.dir.path)
        before = [d for d in [*plan.earlier_sweep_dirs, plan.sweep_dir] if d and d != out]
        self.moved = sorted(set(before), key=len, reverse=True)
        self.storage: Storage | None = None
        self.ledger: dict = {"trials": [], "ended": {}}
        url = self.here(plan.study_storage)
        self.study_local = url in (local_study_url(self.dir.path), f"sqlite:///{self.dir.sqlite_path}")
        # the plan as it is on this machine: the sweep dir, and paths inside it (a study, a storage dir) moved
        self.plan = replace(plan, sweep_dir=out, earlier_sweep_dirs=before, study_storage=url,
                            storage=self.here(plan.storage))

    def here(self, path: str) -> str:
        """A path recorded under a dir the sweep ran in before (another head), as it is under this sweep dir."""
        out = str(self.dir.path)
        for old in self.moved:
            for prefix in (old, f"sqlite:///{old}"):
                if path == prefix or path.startswith(prefix + "/"):
                    new = out if prefix == old else f"sqlite:///{out}"
                    return new + path[len(prefix):]
        return path

    def mirror(self) -> None:
        """Upload the sweep's state files (and its local study) to its storage, when that is elsewhere."""
        out, storage = self.dir.path, self.storage
        if storage is None or storage.is_local_dir(out):
            return
        for name in SweepDir.STATE_FILES:
            if (out / name).exists():
                storage.upload(out / name, name)
        if self.study_local and self.dir.study_path.exists():
            with tempfile.TemporaryDirectory() as tmp:      # whole lines only: a line being appended is left out
                data = self.dir.study_path.read_bytes()
                (Path(tmp) / SweepDir.STUDY).write_bytes(data[:data.rfind(b"\n") + 1])
                storage.upload(Path(tmp) / SweepDir.STUDY, SweepDir.STUDY)
        if self.study_local and self.dir.sqlite_path.exists():
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / SweepDir.SQLITE
                src, dst = sqlite3.connect(self.dir.sqlite_path), sqlite3.connect(copy)
                try:
                    src.backup(dst)
                finally:
                    src.close()
                    dst.close()
                storage.upload(copy, SweepDir.SQLITE)


_current: SweepState | None = None


def activate(sweep_dir: SweepDir | Path, plan: SweepPlan) -> SweepState:
    """Make this the running sweep (Sweep.__enter__'s part); returns it, with the plan as it is here."""
    global _current
    _current = SweepState(sweep_dir if isinstance(sweep_dir, SweepDir) else SweepDir(sweep_dir), plan)
    return _current


def deactivate() -> None:
    global _current
    _current = None


def current() -> SweepState | None:
    return _current


def here(path: str) -> str:
    """`path` moved into the running sweep's dir (unchanged when no sweep runs or it did not move)."""
    return _current.here(path) if _current else path


def local_study_url(out: Path) -> str:
    """The default study of a sweep dir: a journal file in it (a path, where an RDB has a SQLAlchemy URL)."""
    return str(SweepDir(Path(out).resolve()).study_path)


def study_storage(url: str) -> optuna.storages.BaseStorage:
    """The study's storage from the plan's string: a SQLAlchemy URL (sqlite:///..., postgresql://...) or the
    path of a journal file; both follow the sweep dir when it moved (a new head)."""
    url = here(url)
    return RelocatableRDBStorage(url) if "://" in url else RelocatableJournalStorage(url)


def fetch(storage: Storage, out: Path) -> list[str]:
    """Bring a sweep's state files from its storage into an empty local sweep dir; returns what came."""
    if not storage.exists(SweepDir.PLAN):
        raise FileNotFoundError(f"{storage.where}: no {SweepDir.PLAN} there; not the --storage of a sweep")
    out.mkdir(parents=True, exist_ok=True)
    got = []
    for name in (*SweepDir.STATE_FILES, SweepDir.STUDY, SweepDir.SQLITE):
        if storage.exists(name):
            storage.download(name, out / name)
            got.append(name)
    return got


class RelocatableJournalStorage(optuna.storages.JournalStorage):
    """A journal file study: appends are one line each (no SQL round trips), reads replay only what is new.
    Pickled as its path, so that a searcher unpickled on a new head opens the journal in the new sweep dir."""

    def __init__(self, path: str):
        from optuna.storages.journal import JournalFileBackend

        self.path = path
        super().__init__(JournalFileBackend(path))

    def __reduce__(self):
        return _reopen_journal, (self.path,)


def repair_journal(path: Path) -> int:
    """Cut a torn last line (a driver killed inside an append) before anything appends after it: glued to
    the next entry it would lose that entry, and the one after would make the study unreadable. Returns the
    bytes cut. Only the driver calls it, holding the sweep dir's lock: no one else appends meanwhile (a
    reader, such as `mer-search report` during a sweep, must not cut the line being written)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return 0
        tail = min(size, 1 << 20)
        f.seek(size - tail)
        block = f.read(tail)
        while b"\n" not in block and tail < size:      # a torn line longer than the block: read further back
            tail = min(size, tail * 2)
            f.seek(size - tail)
            block = f.read(tail)
        keep = size - tail + block.rfind(b"\n") + 1 if b"\n" in block else 0
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    log.warning("%s: its last line was torn (a driver killed mid-write): %d bytes cut, the study reads on",
                path, size - keep)
    return size - keep


def _reopen_journal(path: str) -> RelocatableJournalStorage:
    return RelocatableJournalStorage(here(path))


class RelocatableRDBStorage(optuna.storages.RDBStorage):
    """The study's storage as the searcher pickles it: unpickled on a new head (Tuner.restore), a sqlite file
    in the old sweep dir becomes the one in the new sweep dir, before anything connects to it."""

    def __setstate__(self, st: dict) -> None:
        super().__setstate__(optuna_internals.moved_rdb_state(st, here))


class StateMirror(tune.Callback):
    """Mirror the state with every Tune experiment snapshot (Tune asks callbacks for their state as it writes
    one, every couple of seconds) and on every trial's end. The study is copied before Tune uploads its
    snapshot, so the copy knows at least every trial the snapshot's searcher knows."""

    def _now(self) -> None:
        if _current is None:
            return
        try:
            _current.mirror()
        except OSError as e:      # a storage hiccup must not end the sweep; the next snapshot tries again
            log.warning("mirroring the sweep state to its storage failed (%s); will retry", e)

    def get_state(self):
        self._now()
        return None

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._now()

    def on_trial_error(self, iteration, trials, trial, **info):
        self._now()
