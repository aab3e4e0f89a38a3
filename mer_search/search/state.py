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

import json
import logging
import os
import socket
import sqlite3
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import optuna
from ray import tune

from data_prep.atomic import pid_alive
from mer_search.core.dirs import SweepDir
from mer_search.core.plan import SweepPlan
from mer_search.search import optuna_internals
from mer_search.search.storage import Storage

log = logging.getLogger(__name__)


LEASE_TTL_S = 60.0         # a lease not renewed for this long belongs to a driver that is gone
LEASE_RENEW_S = 10.0
LEASE_SETTLE_S = 1.0       # after writing a lease, read it back this much later: two heads that raced see it


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
        self.lease_owner: str | None = None
        self._renewed = 0.0
        self.deadline: float | None = None        # --time-budget: when this driver ends the sweep (time.time())
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

    # -- the driver's lease on a --storage elsewhere -----------------------------------------------------
    # The sweep dir's lock keeps a second driver off one machine; heads that share a --storage (a lost head
    # resumed elsewhere) see each other only there: a lease file renewed while the driver runs.
    def _shared(self) -> bool:
        return self.storage is not None and not self.storage.is_local_dir(self.dir.path)

    def take_lease(self) -> None:
        """Hold the storage's lease, or raise naming the live driver that holds it; a stale one is taken over."""
        if not self._shared():
            return
        from mer_search.search.storage import StorageError

        owner = f"{socket.gethostname()} pid {os.getpid()} ({uuid.uuid4().hex[:6]})"
        held = _lease(self.storage)
        if held:
            age = time.time() - held["renewed"]
            here_and_dead = held.get("host") == socket.gethostname() and not pid_alive(held.get("pid", -1))
            if age < LEASE_TTL_S and not here_and_dead:
                raise StorageError(f"--storage {self.storage.where}: driven by {held['owner']}, which renewed its "
                                   f"lease {age:.0f} s ago; if that head is gone, resume in {LEASE_TTL_S - age:.0f} s")
            log.warning("--storage %s: taking over the lease of %s (%s: that driver is gone)", self.storage.where,
                        held["owner"], "its process has exited" if here_and_dead else f"not renewed for {age:.0f} s")
        self.lease_owner = owner
        self.renew_lease(force=True)
        time.sleep(LEASE_SETTLE_S)
        again = _lease(self.storage)
        if not again or again["owner"] != owner:
            self.lease_owner = None
            raise StorageError(f"--storage {self.storage.where}: {again['owner'] if again else 'another driver'} "
                               f"took the lease at the same moment; only one driver may run a sweep")

    def renew_lease(self, force: bool = False) -> None:
        due = force or time.time() - self._renewed >= LEASE_RENEW_S
        if self.lease_owner is None or not self._shared() or not due:
            return
        self._renewed = time.time()
        self.storage.write_bytes(SweepDir.LEASE, json.dumps({"owner": self.lease_owner, "host": socket.gethostname(),
                                                              "pid": os.getpid(), "renewed": self._renewed}).encode())

    def release_lease(self) -> None:
        if self.lease_owner is not None and self._shared():
            held = _lease(self.storage)
            if held and held["owner"] == self.lease_owner:
                self.storage.delete(SweepDir.LEASE)
        self.lease_owner = None

    def mirror(self) -> None:
        """Upload the sweep's state files (and its local study) to its storage, when that is elsewhere."""
        if not self._shared():
            return
        out, storage = self.dir.path, self.storage
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
    if _current is not None:
        try:
            _current.release_lease()
        except OSError as e:        # a storage hiccup: the lease then goes stale by itself
            log.warning("could not release the driver's lease (%s); it expires in %.0f s", e, LEASE_TTL_S)
    _current = None


def _lease(storage: Storage) -> dict | None:
    raw = storage.read_bytes(SweepDir.LEASE)
    try:
        held = json.loads(raw) if raw else None
    except ValueError:
        return None
    return held if isinstance(held, dict) and {"owner", "renewed"} <= set(held) else None


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
            _current.renew_lease()
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
