"""A sweep's own state (plan, space, ASHA's records, the study, status, results, W&B ledger), mirrored to
its --storage while it runs, so that losing the head loses nothing a resume needs.

Ray keeps its trial results, checkpoints and experiment snapshots in the storage already; this adds the rest.
Uploads are atomic (written beside, then moved into place): a reader never sees half a file. The study is
copied with SQLite's backup API, which gives a consistent copy while the sweep keeps writing. A study in an
RDB the user named (--study-storage) is not copied: it lives there already.

`activate` records where the sweep dir is on this machine. Tuner.restore unpickles objects made when the
sweep ran before (scheduler, searcher), possibly on another head with another sweep dir; `here` moves a path
they kept from an earlier sweep dir (sweep.json lists them) to this one.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from dataclasses import replace
from pathlib import Path

import optuna
from ray import tune

from mer_search.plan import SweepPlan
from mer_search.results import STATUS_FILE
from mer_search.search.storage import Storage

log = logging.getLogger(__name__)

STATE_FILES = ("sweep.json", "space.yaml", "asha_rungs.json", STATUS_FILE, "trials.parquet", "wandb_steps.json")
STUDY_FILE = "optuna.journal"      # the default study: Optuna's journal file (bench/study_storage.py: why)
SQLITE_FILE = "optuna.db"          # sweeps before it, or --study-storage sqlite:///SWEEP_DIR/optuna.db
_active: dict = {"out": None, "storage": None, "moved": [], "study_local": False}


def activate(out: Path, plan: SweepPlan) -> SweepPlan:
    """Record the running sweep (its dir here, the dirs it ran in before); returns the plan as it is on this
    machine: the sweep dir, and paths inside it (a sqlite study, a storage dir), moved with the dir."""
    out = Path(out).resolve()
    before = [d for d in [*plan.earlier_sweep_dirs, plan.sweep_dir] if d and d != str(out)]
    _active.update(out=out, storage=None, moved=sorted(set(before), key=len, reverse=True))
    url = here(plan.study_storage)
    _active["study_local"] = url in (local_study_url(out), f"sqlite:///{out / SQLITE_FILE}")
    return replace(plan, sweep_dir=str(out), earlier_sweep_dirs=before, study_storage=url, storage=here(plan.storage))


def use_storage(storage: Storage) -> None:
    _active["storage"] = storage


def active_storage() -> Storage | None:
    return _active["storage"]


def active_dir() -> Path | None:
    return _active["out"]


def local_study_url(out: Path) -> str:
    """The default study of a sweep dir: a journal file in it (a path, where an RDB has a SQLAlchemy URL)."""
    return str(Path(out).resolve() / STUDY_FILE)


def study_storage(url: str) -> optuna.storages.BaseStorage:
    """The study's storage from the plan's string: a SQLAlchemy URL (sqlite:///..., postgresql://...) or the
    path of a journal file; both follow the sweep dir when it moved (a new head)."""
    url = here(url)
    return RelocatableRDBStorage(url) if "://" in url else RelocatableJournalStorage(url)


def here(path: str) -> str:
    """A path recorded under a dir the sweep ran in before (another head), as it is under this sweep dir."""
    for old in _active["moved"] or ():
        for prefix in (old, f"sqlite:///{old}"):
            if path == prefix or path.startswith(prefix + "/"):
                new = str(_active["out"]) if prefix == old else f"sqlite:///{_active['out']}"
                return new + path[len(prefix):]
    return path


def mirror() -> None:
    """Upload the sweep's state files (and its sqlite study) to its storage, when that is elsewhere."""
    out, storage = _active["out"], _active["storage"]
    if out is None or storage is None or storage.is_local_dir(out):
        return
    for name in STATE_FILES:
        if (out / name).exists():
            storage.upload(out / name, name)
    if _active["study_local"] and (out / STUDY_FILE).exists():
        with tempfile.TemporaryDirectory() as tmp:      # whole lines only: a line being appended is left out
            data = (out / STUDY_FILE).read_bytes()
            (Path(tmp) / STUDY_FILE).write_bytes(data[:data.rfind(b"\n") + 1])
            storage.upload(Path(tmp) / STUDY_FILE, STUDY_FILE)
    if _active["study_local"] and (out / SQLITE_FILE).exists():
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / SQLITE_FILE
            src, dst = sqlite3.connect(out / SQLITE_FILE), sqlite3.connect(copy)
            try:
                src.backup(dst)
            finally:
                src.close()
                dst.close()
            storage.upload(copy, SQLITE_FILE)


def fetch(storage: Storage, out: Path) -> list[str]:
    """Bring a sweep's state files from its storage into an empty local sweep dir; returns what came."""
    if not storage.exists("sweep.json"):
        raise FileNotFoundError(f"{storage.where}: no sweep.json there; not the --storage of a sweep")
    out.mkdir(parents=True, exist_ok=True)
    got = []
    for name in (*STATE_FILES, STUDY_FILE, SQLITE_FILE):
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


def _reopen_journal(path: str) -> RelocatableJournalStorage:
    return RelocatableJournalStorage(here(path))


class RelocatableRDBStorage(optuna.storages.RDBStorage):
    """The study's storage as the searcher pickles it: unpickled on a new head (Tuner.restore), a sqlite file
    in the old sweep dir becomes the one in the new sweep dir, before anything connects to it."""

    def __setstate__(self, st: dict) -> None:
        super().__setstate__({**st, "url": here(st["url"])})


class StateMirror(tune.Callback):
    """Mirror the state with every Tune experiment snapshot (Tune asks callbacks for their state as it writes
    one, every couple of seconds) and on every trial's end. The study is copied before Tune uploads its
    snapshot, so the copy knows at least every trial the snapshot's searcher knows."""

    def _now(self) -> None:
        try:
            mirror()
        except OSError as e:      # a storage hiccup must not end the sweep; the next snapshot tries again
            log.warning("mirroring the sweep state to its storage failed (%s); will retry", e)

    def get_state(self):
        self._now()
        return None

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._now()

    def on_trial_error(self, iteration, trials, trial, **info):
        self._now()
