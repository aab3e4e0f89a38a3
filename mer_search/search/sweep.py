"""`mer-search sweep`: a YAML space -> an Optuna study (a journal file by default) -> Ray Tune trials,
early-stopped by ASHA.

`Sweep` owns one sweep's lifetime: Ray's start and shutdown, the environment it sets for Tune, the running
sweep's state (its dir on this machine, where pickles from another head relocate to) and the ledger of which
trials ended. What the sweep dir holds: mer_search/core/dirs.py. A sweep stopped by Ctrl-C or SIGTERM ends with
its running trials cut short, and resumes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import optuna
import pandas as pd
import ray
from ray import tune
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from data_prep.atomic import check_writable_dir, sha256_file
from data_prep.errors import PrepError
from data_prep.reader import PreparedDir, data_fingerprint, localize
from mer_search.core import signals
from mer_search.core.dirs import SweepDir, nest
from mer_search.core.metrics import dataset_metric
from mer_search.core.plan import KEEP_CHOICES, SCHEDULERS, SearchSettings, SweepPlan
from mer_search.core.errors import UserError
from mer_search.search import gpu_share, ray_internals, state
from mer_search.search.callbacks import ProgressLine, TimeBudget, TrialLedger, spent
from mer_search.search.checkpoints import CheckpointPruner
from mer_search.search.schedulers import make_scheduler
from mer_search.search.space import Space, load_space
from mer_search.search.storage import Storage, StorageError
from mer_search.search.trainable import trainable

log = logging.getLogger(__name__)
PARAMS_METRIC = "n_params"      # the second objective of an nsga2 sweep (minimised)


class SweepError(UserError, RuntimeError):
    """A sweep that cannot start; the message says why and what to do."""


@dataclass
class SweepOptions:
    space: str
    prepared: str
    out: Path
    num_samples: int | None = None
    sampler: str | None = None
    scheduler: str = "asha"
    cpus_per_trial: float = 1
    gpus_per_trial: float | str = gpu_share.AUTO    # a fraction, or auto (gpu_share.py: by the model's memory)
    max_concurrent: int | None = None
    address: str | None = None
    study_storage: str | None = None        # SQLAlchemy URL or a journal file; default SWEEP_DIR/optuna.journal
    storage: str | None = None              # trial results + checkpoints: a dir or s3://, gs://, file:// URI
    seed: int = 0
    max_epochs: int | None = None           # override the space's search.max_epochs (ASHA's max_t)
    startup_trials: int | None = None       # override the space's search.startup_trials (TPE's random start)
    max_failures: int = 2
    wandb: str = "offline"                  # offline | online | disabled
    feature_dirs: dict = field(default_factory=dict)
    warm_start: str | None = None           # an earlier sweep dir whose finished trials seed the study
    resume: bool = False
    resume_from: str | None = None          # a --storage URI to rebuild the sweep dir from (a lost head)
    keep_checkpoints: str = "best"          # per ended trial: its best epoch's checkpoint, or none
    work: Callable | None = None            # what each trial runs (default train_trial); benchmarks pass a no-op
    time_budget_s: float | None = None      # end the sweep after this long (this invocation), keeping what ran


def make_sampler(name: str, seed: int, concurrent: int = 1,
                 startup_trials: int = SearchSettings.startup_trials) -> optuna.samplers.BaseSampler:
    """`concurrent`: trials that run at once. Above 1, TPE lies that each running trial scored as badly as the
    worst so far (Optuna's constant liar), so it does not propose the running trials' neighbourhood again.
    `startup_trials`: TPE's first trials are random (Optuna's default 10, whatever the budget)."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)   # group, constant_liar
    return {"tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                                      constant_liar=concurrent > 1,
                                                      n_startup_trials=startup_trials),
            "random": lambda: optuna.samplers.RandomSampler(seed=seed),
            "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
            "qmc": lambda: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
            "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed)}[name]()


def sampler_for(plan: SweepPlan) -> optuna.samplers.BaseSampler:
    """The plan's sampler; a plan written before startup_trials existed has the default (Optuna's 10)."""
    return make_sampler(plan.sampler, plan.seed, concurrency(plan), plan.search.startup_trials)


class ResumableOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch, for a study that outlives the driver. A trial the study recorded as finished just
    before the driver died can still be running in Ray's last snapshot; Ray resumes it, and reporting its
    results to the finished study record would stop the whole sweep. They are dropped instead (the study
    keeps the value it had)."""

    def suggest(self, trial_id: str):
        config = super().suggest(trial_id)
        trial = ray_internals.optuna_trial(self, trial_id)
        if trial is not None:        # optuna-dashboard and the report name trials as Ray does
            trial.set_user_attr("ray_trial_id", trial_id)
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial = ray_internals.optuna_trial(self, trial_id)
        if trial is not None and result and "training_iteration" in result:
            try:       # epochs run (not reports): ASHA's early stops are recorded COMPLETE, like full runs
                trial.set_user_attr("epochs", result.get("epoch", result["training_iteration"]))
            except RuntimeError:       # finished in the study already (a restart): keep what it has
                pass
        super().on_trial_complete(trial_id, result, error)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        try:
            super().on_trial_result(trial_id, result)
        except optuna.exceptions.UpdateFinishedTrialError:
            log.info("trial %s: already finished in the study before the restart; result not re-reported", trial_id)
            ray_internals.mark_completed(self, trial_id)


def _check_address(address: str) -> None:
    """Fail in seconds, not after Ray's long connect timeout, when a head is not listening."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"--address {address!r}: expected auto, local, host:port or ray://host:port")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise SweepError(f"cannot reach Ray at {address} ({e.strerror or e}); start a head with "
                         f"`ray start --head` or check the address") from None


def model_choices(space: Space, base: dict, samples: int = 8) -> list[dict]:
    """Flat configs the space samples, one for each combination of model names (and encoders) seen."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen, found = set(), []
    for _ in range(samples):
        flat = {**base, **space.sample(study.ask())}
        key = json.dumps({k: v for k, v in flat.items() if k.endswith((".name", ".encoder"))}, sort_keys=True)
        if key not in seen:
            seen.add(key)
            found.append(flat)
    return found


def _check_prepared(space: Space, base: dict, samples: int = 8) -> None:
    """Every model the space can pick must find its inputs in the prepared data (checked once, here)."""
    from mer_search.training.inputs import check_data

    for flat in model_choices(space, base, samples):
        try:
            check_data(nest(flat))
        except (ValueError, KeyError, FileNotFoundError) as e:
            raise SweepError(f"prepared data {base['data.prepared']} does not fit space {space.name}: "
                             f"{str(e).strip(chr(34) + chr(39))}") from None


def _new_plan(opts: SweepOptions, out: Path) -> SweepPlan:
    space = load_space(opts.space)
    search = replace(space.search)
    if opts.max_epochs:
        search.max_epochs = opts.max_epochs
        search.grace_period = min(search.grace_period, opts.max_epochs)
    if opts.startup_trials is not None:
        if opts.startup_trials < 0:
            raise SweepError(f"--startup-trials {opts.startup_trials}: must be >= 0")
        search.startup_trials = opts.startup_trials
    if opts.num_samples is not None:
        search.num_samples = opts.num_samples
    if search.num_samples < 1:
        raise SweepError("--num-samples must be at least 1")
    if opts.seed < 0:
        raise SweepError(f"--seed {opts.seed}: must be >= 0")
    if opts.sampler:
        search.sampler = opts.sampler
    gpus = opts.gpus_per_trial
    if gpus != gpu_share.AUTO and (isinstance(gpus, (str, bool)) or not gpus >= 0):
        raise SweepError(f"gpus_per_trial {gpus!r}: auto, or a fraction >= 0 (0: CPUs only)")
    if opts.keep_checkpoints not in KEEP_CHOICES:
        raise SweepError(f"--keep-checkpoints {opts.keep_checkpoints!r}: one of {', '.join(KEEP_CHOICES)}")
    if opts.scheduler not in SCHEDULERS:
        raise SweepError(f"unknown scheduler {opts.scheduler!r}; valid: {', '.join(SCHEDULERS)}")
    from data_prep.reader import load_manifest

    local = localize(opts.prepared)   # a URI: this node's cached copy
    manifest = load_manifest(local)   # prepared data missing or unfinished: a clear error now, not in every trial
    if search.metric == "dev_wf1" and dataset_metric(manifest) != "dev_wf1":
        log.info("dataset %s is scored by %s: the sweep selects on it", manifest["dataset"]["name"],
                 dataset_metric(manifest))
        search.metric, search.mode = dataset_metric(manifest), "max"
    # a URI stays a URI (each node copies it once); a path becomes absolute
    prepared = opts.prepared if "://" in str(opts.prepared) else Path(opts.prepared).resolve()
    if SweepDir(out).holds_sweep():
        raise SweepError(f"{out} already holds a sweep; continue it with --resume or pick another --out")
    base = {**space.fixed, "data.prepared": str(prepared), "train.epochs": search.max_epochs,
            "train.patience": 0, "train.metric": search.metric}
    if search.reports_per_epoch > 1:       # the scheduler judges trials part-way through an epoch
        base["train.evals_per_epoch"] = search.reports_per_epoch
    if opts.feature_dirs:
        base["data.feature_dirs"] = {k: str(Path(v).resolve()) for k, v in opts.feature_dirs.items()}
    _check_prepared(space, base)
    if opts.wandb == "online" and not os.environ.get("WANDB_API_KEY"):
        raise SweepError("--wandb online needs WANDB_API_KEY in the environment; or use --wandb offline "
                         "and `mer-search sync` later")
    if opts.warm_start and not SweepDir(opts.warm_start).holds_sweep():
        raise SweepError(f"--warm-start {opts.warm_start}: not a sweep dir (no {SweepDir.PLAN})")
    objectives = [[search.metric, search.mode]] + ([[PARAMS_METRIC, "min"]] if search.sampler == "nsga2" else [])
    return SweepPlan(space_name=space.name, space_source=str(Path(opts.space).resolve()), sweep_dir=str(out),
                     search=search, final=space.final,
                     scheduler=opts.scheduler, seed=opts.seed, objectives=objectives, base=base,
                     prepared_sha256=sha256_file(PreparedDir(local).manifest_path),
                     prepared_fingerprint=data_fingerprint(local),
                     study_storage=_study_url(opts.study_storage, out),
                     study_name=f"{space.name}-{out.name}", storage=opts.storage or str(out),
                     cpus_per_trial=opts.cpus_per_trial, gpus_per_trial=opts.gpus_per_trial,
                     max_concurrent=opts.max_concurrent, max_failures=opts.max_failures, wandb=opts.wandb,
                     keep_checkpoints=opts.keep_checkpoints,
                     warm_start=str(Path(opts.warm_start).resolve()) if opts.warm_start else None)


def _study_url(given: str | None, out: Path) -> str:
    """--study-storage as the plan keeps it: a SQLAlchemy URL as given, a journal file as an absolute path."""
    if not given:
        return state.local_study_url(out)
    if "://" not in given:
        return str(Path(given).resolve())
    from sqlalchemy.engine import make_url

    try:
        url = make_url(given)
    except Exception:          # sqlalchemy's ArgumentError; its message would echo the URL
        raise SweepError("--study-storage: not a SQLAlchemy URL (e.g. postgresql://user@host/db) nor a file path") \
            from None
    if url.password:
        raise SweepError(f"--study-storage {url.render_as_string(hide_password=True)}: a password in the URL would "
                         f"be kept in the sweep plan, its --storage mirror and Tune's saved state; give the URL "
                         f"without it, and the password to the driver: PGPASSWORD or ~/.pgpass (postgresql), "
                         f"MYSQL_PWD (mysql)")
    return given


def _load_plan(out: SweepDir) -> SweepPlan:
    if not out.holds_sweep():
        raise SweepError(f"{out.path}: no {SweepDir.PLAN}, so nothing to resume; start the sweep without --resume")
    plan = out.load_plan()
    prepared = plan.prepared
    try:
        local = localize(prepared)
        if plan.prepared_fingerprint is not None:
            same = data_fingerprint(local) == plan.prepared_fingerprint
        else:       # a plan from before fingerprints: the manifest file itself
            same = sha256_file(PreparedDir(local).manifest_path) == plan.prepared_sha256
    except (PrepError, FileNotFoundError):
        same = False
    if not same:
        raise SweepError(f"prepared data {prepared} changed or vanished since the sweep started; "
                         f"resume needs the same data (or start a new sweep)")
    return plan


def _warm_start(study: optuna.Study, space: Space, source: str) -> int:
    """Copy an earlier sweep's finished trials (those whose parameters fit this space) into the new study."""
    src = SweepDir(source)
    if not src.holds_sweep():
        raise SweepError(f"--warm-start {src.path}: not a sweep dir (no {SweepDir.PLAN})")
    old = src.load_plan()
    try:
        old_study = optuna.load_study(study_name=old.study_name, storage=state.study_storage(old.study_storage))
    except KeyError:
        raise SweepError(f"--warm-start {src.path}: its study {old.study_name} is not in {old.study_storage}") from None
    dists = space.distributions()
    n = 0
    for t in old_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if any(dists.get(k) != d for k, d in t.distributions.items()):
            continue
        values = t.values[:len(study.directions)]
        if len(values) < len(study.directions):
            continue
        study.add_trial(optuna.trial.create_trial(params=t.params, distributions=t.distributions, values=values,
                                                  user_attrs={"warm_start_from": f"{src.path.name}#{t.number}"}))
        n += 1
    log.info("warm start: %d finished trials copied from %s", n, src.path)
    return n


# what Tune reads from the environment, set for a sweep's lifetime (a value the user set wins)
TUNE_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # a checkpoint every epoch is the point (resume); Ray's "too many snapshots" warning is noise here
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # snapshot the experiment every 2 s (Ray: >= 10 s), so a killed driver loses little on resume
    "TUNE_GLOBAL_CHECKPOINT_S": "2",
    "RAY_AIR_NEW_OUTPUT": "0",      # our progress line instead of Tune's tables
}


class Sweep:
    """One sweep, from start (or resume) to its end: `with Sweep(opts) as sweep: table = sweep.run()`.

    It owns what the sweep changes in this process and undoes it on exit: Ray (started or joined here, shut
    down here; a Ray someone else started is left running), the environment Tune reads, and the running
    sweep's state (state.activate: its dir, storage, and the trial ledger Tune's run hands back)."""

    def __init__(self, opts: SweepOptions):
        self.opts = opts
        self.dir = SweepDir(Path(opts.out).resolve())
        self.state: state.SweepState | None = None
        self._owns_ray = False
        self._saved_env: dict[str, str | None] = {}
        self._lock = self.dir.lock()

    _keeping = 0        # open ray_kept() scopes: a sweep inside one leaves the Ray it started running

    @classmethod
    @contextlib.contextmanager
    def ray_kept(cls):
        """Several sweeps (the pipeline's stages) share one Ray: the first that needs it starts it, and it is
        shut down when this scope ends, if it was not running when the scope began."""
        was_running = ray.is_initialized()
        cls._keeping += 1
        try:
            yield
        finally:
            cls._keeping -= 1
            if not was_running and not cls._keeping and ray.is_initialized():
                ray.shutdown()

    @classmethod
    def cluster_gpus(cls, address: str) -> float:
        """The GPUs of the Ray cluster at `address` (joined here; inside ray_kept() the sweeps reuse it)."""
        if not ray.is_initialized():
            _check_address(address)
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise SweepError(f"cannot reach Ray at {address} ({str(e).splitlines()[0][:160]})") from None
            signals.reclaim()
        return float(ray.cluster_resources().get("GPU", 0))

    def __enter__(self) -> "Sweep":
        for key, value in TUNE_ENV.items():
            self._setenv(key, value)
        return self

    def __exit__(self, *exc) -> None:
        if self._owns_ray and not Sweep._keeping:
            ray.shutdown()
        self._owns_ray = False
        state.deactivate()
        self._lock.release()
        for key, old in self._saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        self._saved_env.clear()

    def _setenv(self, key: str, value: str) -> None:
        """Set `key` for this sweep unless the user did; restored on exit."""
        if key not in os.environ:
            self._saved_env.setdefault(key, None)
            os.environ[key] = value

    def _start_ray(self, address: str | None) -> None:
        """Start or join Ray."""
        if not ray.is_initialized():
            if address:
                _check_address(address)
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                             log_to_driver=False, dashboard_host="127.0.0.1")
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise SweepError(f"cannot start or reach Ray ({str(e).splitlines()[0][:160]})") from None
            self._owns_ray = True
            signals.reclaim()

    @staticmethod
    def _trial_resources(plan: SweepPlan, space: Space) -> tuple[SweepPlan, dict | gpu_share.TrialShare]:
        """What each trial asks Ray for; the plan as the concurrency count reads it (its smallest GPU share).
        auto, or a fraction on a cluster without GPUs: CPUs only, as --gpus-per-trial 0."""
        gpus = ray.cluster_resources().get("GPU", 0)
        asked = plan.gpus_per_trial
        if asked == gpu_share.AUTO and gpus:
            gpu_mb = gpu_share.cluster_gpu_mb()
            keys = [gpu_share.family_key(flat) for flat in model_choices(space, plan.base, 16)]
            log.info("[sweep] GPUs: auto: %g in the Ray cluster, %s MiB each: %s", gpus, f"{gpu_mb:,.0f}",
                     gpu_share.describe(keys, gpu_mb))
            smallest = min(gpu_share.share(k, gpu_mb) for k in keys)
            return replace(plan, gpus_per_trial=smallest), gpu_share.TrialShare(plan.base, plan.cpus_per_trial, gpu_mb)
        if asked == gpu_share.AUTO:
            log.info("[sweep] GPUs: auto: the Ray cluster has none: trials train on CPUs")
            asked = 0
        elif asked > 0 and not gpus:
            log.warning("--gpus-per-trial %g, but the Ray cluster has no GPU: trials train on CPUs", asked)
            asked = 0
        return replace(plan, gpus_per_trial=asked), {"cpu": plan.cpus_per_trial, "gpu": asked}

    def _allow_pending(self, plan: SweepPlan) -> None:
        """Ray lets an adaptive searcher keep only one trial pending, so short trials ran one at a time
        (the next trial's worker was still starting when the last one finished): allow one per free slot."""
        self._setenv("TUNE_MAX_PENDING_TRIALS_PG", str(concurrency(plan)))

    def run(self) -> pd.DataFrame:
        """Run (or resume) the whole sweep; returns the per-epoch results table (also in trials.parquet)."""
        opts, d = self.opts, self.dir
        out = d.path
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            check_writable_dir(out)
        except OSError as e:
            raise SweepError(f"{out}: sweep dir is not writable ({e.strerror})") from None
        self._lock.acquire()          # a second driver on this dir stops here, before it reads or writes
        if opts.resume and opts.resume_from and not d.holds_sweep():
            _fetch_state(opts.resume_from, out)
        if opts.resume:
            plan = _load_plan(d)
        else:
            plan = _new_plan(opts, out)
            shutil.copyfile(plan.space_source, d.space_path)
        space = load_space(d.space_path)
        space.search = plan.search
        self.state = state.activate(d, plan)
        if opts.time_budget_s is not None:
            if opts.time_budget_s <= 0:
                raise SweepError(f"time budget {opts.time_budget_s:g} s: must be positive")
            self.state.deadline = time.time() + opts.time_budget_s
        here = self.state.plan
        try:
            storage = Storage(here.storage)
            storage.check_writable()
        except StorageError as e:
            raise SweepError(str(e)) from None
        self.state.storage = storage
        try:
            self.state.take_lease()         # a --storage elsewhere: one driver across heads too
        except StorageError as e:
            raise SweepError(str(e)) from None
        if self.state.study_local and "://" not in here.study_storage:      # its own journal: a torn last
            state.repair_journal(Path(here.study_storage))                  # line is cut before any append
        if not opts.resume or here != plan:        # new, or resumed in another dir (a new head): as it is here
            plan = here
            d.save_plan(plan)
        d.write_status(finished=False, state="running")
        self.state.mirror()
        self._start_ray(opts.address)
        plan, resources = self._trial_resources(plan, space)
        self._allow_pending(plan)

        fn = tune.with_resources(tune.with_parameters(trainable, base=plan.base, seed=plan.seed, work=opts.work),
                                 resources)
        experiment = storage.join(SweepDir.TUNE)
        if opts.resume and _has_snapshot(storage, experiment):
            log.info("resuming %s: finished trials kept, interrupted ones continue from their checkpoints",
                     experiment)
            import pyarrow.fs as pafs

            for name in ray_internals.drop_torn_callback_state(storage.fs or pafs.LocalFileSystem(), experiment):
                log.warning("%s: torn by the driver's kill; removed (the callbacks rebuild their state)", name)
            _alias_old_modules()
            tuner = tune.Tuner.restore(experiment, trainable=fn, resume_unfinished=True, resume_errored=True,
                                       storage_filesystem=storage.fs)
        else:
            tuner = _new_tuner(plan, space, out, fn, storage, opts.resume)
        with signals.tune_running():
            grid = tuner.fit()
        trials, ended = self.state.ledger["trials"], self.state.ledger["ended"]
        cut_short = sorted(set(trials) - set(ended))
        finished = not cut_short and len(trials) >= plan.num_samples
        out_of_time = not finished and not signals.received() and spent()
        if out_of_time:       # the budget ended it: done with what ran (the cut-short trials' reports count)
            log.warning("[sweep] time budget spent: %d of %d trials ran, %d stopped part-way; the sweep ends "
                        "with what they reported", len(trials), plan.num_samples, len(cut_short))
            finished = True
        if opts.resume and finished:
            _close_lost_suggestions(plan)
        table = results_table(grid, cut_short)
        d.save_trials(table)
        stop = signals.received()
        d.write_status(finished=finished, state="time budget spent" if out_of_time else "finished" if finished
                       else "stopped" if stop else "ended early",
                       planned=plan.num_samples, trials=len(trials), cut_short=cut_short,
                       stopped_by=signal.Signals(stop).name if stop and not finished else None)
        self.state.mirror()
        if not finished:       # the caller says how to resume; nothing downstream may treat this sweep as done
            log.warning("[sweep] stopped: %d of %d trials ended, %d cut short (resumable)",
                        len(trials) - len(cut_short), plan.num_samples, len(cut_short))
            if stop:
                raise signals.Stopped(stop)
            raise SweepError(f"Ray Tune ended the sweep early ({len(trials) - len(cut_short)} of "
                             f"{plan.num_samples} trials ended, {len(cut_short)} cut short) without a stop signal; "
                             f"it is marked unfinished: `mer-search sweep --resume {out}` continues it")
        return table


def run_sweep(opts: SweepOptions) -> pd.DataFrame:
    """Run (or resume) a sweep in its own lifetime (see Sweep)."""
    with Sweep(opts) as sweep:
        return sweep.run()


# modules before the package layout (mer_search/plan.py ...): a sweep started then pickled its searcher with
# objects of theirs (a SearchSettings in the space); unpickled now, they are found at their new homes
OLD_MODULES = {"mer_search.plan": "mer_search.core.plan", "mer_search.dirs": "mer_search.core.dirs",
               "mer_search.errors": "mer_search.core.errors", "mer_search.metrics": "mer_search.core.metrics",
               "mer_search.config_io": "mer_search.core.config_io", "mer_search.signals": "mer_search.core.signals"}


def _alias_old_modules() -> None:
    import importlib
    import sys

    for old, new in OLD_MODULES.items():
        sys.modules.setdefault(old, importlib.import_module(new))


def _has_snapshot(storage: Storage, experiment: str) -> bool:
    """Whether Tune saved an experiment snapshot to restore from. Tune's own can_restore only looks for the
    tuner file, written first: a driver killed before its first snapshot left a run that restores with a
    budget of one trial (seen in the driver-kill loop). Without a snapshot the resumed sweep starts a new Tune
    run over the same study instead."""
    import pyarrow.fs as pafs

    if not tune.Tuner.can_restore(experiment, storage_filesystem=storage.fs):
        return False
    infos = (storage.fs or pafs.LocalFileSystem()).get_file_info(pafs.FileSelector(experiment, allow_not_found=True))
    return any(i.base_name.startswith("experiment_state-") for i in infos)


def _fetch_state(uri: str, out: Path) -> None:
    """A resume on a machine without the sweep dir (the head was lost): rebuild it from the storage."""
    try:
        got = state.fetch(Storage(uri), out)
    except (StorageError, OSError) as e:
        raise SweepError(f"--resume {uri}: {str(e).splitlines()[0][:200]}") from None
    log.info("rebuilt the sweep dir %s from %s (%s)", out, uri, ", ".join(got))


def seed_study(study: optuna.Study, space: Space, plan: SweepPlan, resuming: bool) -> None:
    """What a new study holds before the first suggestion: an earlier sweep's finished trials (--warm-start),
    then the space's start points, asked for first, in order (parameters a point leaves out are sampled).
    A resumed study has them already, asked or still waiting: nothing is added twice."""
    fresh = not study.trials
    if plan.warm_start and not resuming:
        _warm_start(study, space, plan.warm_start)
    if space.start and fresh:
        for point in space.start:
            study.enqueue_trial(space.encoded(point))
        log.info("the space's %d start points are tried first", len(space.start))


def _new_tuner(plan: SweepPlan, space: Space, out: Path, fn, storage: Storage, resuming: bool) -> tune.Tuner:
    (metric, mode), *rest = plan.objectives
    directions = ["maximize" if m == "max" else "minimize" for _, m in plan.objectives]
    study_store = state.study_storage(plan.study_storage)      # one object: the study and the searcher share it
    study = optuna.create_study(study_name=plan.study_name, storage=study_store, directions=directions,
                                load_if_exists=True)
    seed_study(study, space, plan, resuming)
    metrics, modes = [m for m, _ in plan.objectives], [m for _, m in plan.objectives]
    search = ResumableOptunaSearch(
        space=space.sample, metric=metrics if rest else metric, mode=modes if rest else mode,
        sampler=sampler_for(plan), study_name=plan.study_name,
        storage=study_store)
    if plan.max_concurrent:
        search = ConcurrencyLimiter(search, max_concurrent=plan.max_concurrent)
    return tune.Tuner(
        fn,
        tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=search,
                                    scheduler=make_scheduler(plan.scheduler, plan.search, SweepDir(out)),
                                    num_samples=plan.num_samples, reuse_actors=True),
        run_config=tune.RunConfig(name=SweepDir.TUNE, storage_path=storage.root, storage_filesystem=storage.fs,
                                  verbose=0, stop=TimeBudget(),
                                  failure_config=tune.FailureConfig(max_failures=plan.max_failures),
                                  # Ray deletes none: its num_to_keep races with its own experiment snapshot
                                  # (a resumed trial found its checkpoint gone); CheckpointPruner deletes only
                                  # what the persisted snapshot no longer needs
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
                                  callbacks=[ProgressLine(metric, mode, plan.num_samples,
                                                          plan.search.max_reports), TrialLedger(),
                                             CheckpointPruner(metric, mode, plan.keep_checkpoints),
                                             state.StateMirror(), gpu_share.PeakLedger(plan.base),
                                             *_wandb_callback(plan)]))


def _wandb_callback(plan: SweepPlan) -> list:
    if plan.wandb == "disabled":
        return []
    from mer_search.search.live_wandb import LiveWandb

    settings = {k: getattr(plan, k) for k in ("space_name", "sampler", "scheduler", "num_samples", "seed")}
    settings.update(metric=plan.metric, max_epochs=plan.max_epochs)
    return [LiveWandb(plan.study_name, settings, *plan.objectives[0], plan.search.max_reports,
                      plan.wandb)]


def _close_lost_suggestions(plan: SweepPlan) -> None:
    """A suggestion made after Ray's last experiment snapshot dies with the driver: Ray asks again on resume,
    so the old study record would stay RUNNING forever. Mark it failed, saying why."""
    study = optuna.load_study(study_name=plan.study_name, storage=state.study_storage(plan.study_storage))
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        log.info("study trial %d was lost with the driver; marked FAIL", t.number)


def concurrency(plan: SweepPlan) -> int:
    """How many trials the cluster (and --max-concurrent) lets run at once."""
    res = ray.cluster_resources()
    slots = res.get("CPU", 1) / max(plan.cpus_per_trial, 1e-9)
    gpus = plan.gpus_per_trial          # auto, before the sweep resolves it: as many as the CPUs allow
    if gpus != gpu_share.AUTO and gpus > 0:
        slots = min(slots, res.get("GPU", 0) / gpus)
    if plan.max_concurrent:
        slots = min(slots, plan.max_concurrent)
    return max(1, int(slots))


def results_table(grid, cut_short=()) -> pd.DataFrame:
    """One row per trial and epoch: trial id, error, whether the sweep's stop cut it short, its config (once, as
    JSON: SweepDir.trials() gives readers a column per parameter), every metric."""
    frames = []
    for result in grid:
        df = result.metrics_dataframe
        if df is None or df.empty:
            continue
        trial_id = result.metrics.get("trial_id") or Path(result.path).name
        df = df.assign(trial_id=trial_id, error=str(result.error).splitlines()[0][:300] if result.error else "",
                       cut_short=trial_id in cut_short,
                       config_json=json.dumps({k: v for k, v in result.config.items() if "." in k}))
        frames.append(df)
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    named = ("trial_id", "error", "cut_short", "config_json", "training_iteration", "time_total_s", "data_wait_share",
             "lr", "gpu_peak_mb",
             "node_id", PARAMS_METRIC)
    keep = [c for c in table.columns if c in named or c.startswith(("dev_", "train_", "epoch"))]
    table = table[keep].sort_values(["trial_id", "training_iteration"])
    # a trial resumed from a checkpoint can report an epoch twice (the one it was killed in): keep the last
    return table.drop_duplicates(["trial_id", "training_iteration"], keep="last").reset_index(drop=True)

