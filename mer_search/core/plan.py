"""A sweep's plan: every setting a resume, the report and export need (SweepDir keeps it in the sweep dir).

Typed and versioned, without Ray: `export`, `report` and the pipeline read it through its fields. Version 1
is the untyped dict written before the plan had a version; it loads with the defaults it lacked. Version 2
kept num_samples and sampler beside the search settings as well as in them; version 3 keeps them once, in
`search` (the values a sweep ran with, after --num-samples and --sampler).
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields

from mer_search.core.errors import UserError

VERSION = 3
SAMPLERS = ("tpe", "random", "cmaes", "qmc", "nsga2")
SCHEDULERS = ("asha", "hyperband", "median", "none")
KEEP_CHOICES = ("best", "none", "all")      # checkpoints per ended trial; all: nothing is deleted


class SweepDirError(UserError, RuntimeError):
    """A sweep dir that cannot be read (no plan, no results yet); the message says why."""


PlanError = SweepDirError


def lower_is_better(mode: str) -> bool:
    """The one definition of a metric's direction: a plan's objectives say max or min."""
    if mode not in ("max", "min"):
        raise PlanError(f"mode {mode!r}: max or min")
    return mode == "min"


@dataclass
class SearchSettings:
    """A space's `search:` section; in a plan, as the sweep runs it (its overrides applied)."""
    metric: str = "dev_wf1"
    mode: str = "max"
    max_epochs: int = 20              # epochs of a trial that is never stopped
    grace_period: float = 2           # epochs before ASHA may stop a trial (a fraction, with reports_per_epoch > 1)
    reports_per_epoch: int = 1        # dev evaluations an epoch: the scheduler's unit (fine-tuning: judge a trial
                                      # part-way through its first long epoch, on all of train)
    reduction_factor: float = 3
    num_samples: int = 20             # trials
    sampler: str = "tpe"
    startup_trials: int = 10          # TPE's random start (Optuna's default; bench/search_efficiency.py: a quarter)

    @property
    def max_reports(self) -> int:
        """ASHA's max_t: the reports (training_iteration) of a trial that is never stopped."""
        return int(self.max_epochs) * int(self.reports_per_epoch)

    @property
    def grace_reports(self) -> int:
        return max(1, round(float(self.grace_period) * int(self.reports_per_epoch)))

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, raw: dict) -> "SearchSettings":
        return cls(**{k: v for k, v in raw.items() if k in cls.names()})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SweepPlan:
    space_name: str
    space_source: str                     # the space file the sweep started from (copied to space.yaml)
    sweep_dir: str                        # where the sweep dir is on the machine that wrote this
    search: SearchSettings                # as run: the space's, with the sweep's overrides
    scheduler: str
    seed: int
    objectives: list[list[str]]           # [[metric, max|min], ...]: the first ranks trials; nsga2 adds n_params
    base: dict                            # flat config every trial starts from (fixed values, data.prepared ...)
    prepared_sha256: str                  # the prepared manifest's hash when the sweep started
    study_storage: str                    # a journal file path, or a SQLAlchemy URL of the Optuna study
    study_name: str
    storage: str                          # Ray's trial results and checkpoints: a dir or a URI
    cpus_per_trial: float = 1
    gpus_per_trial: float | str = 0       # a fraction, or "auto" (resolved where the sweep runs: gpu_share.py)
    max_concurrent: int | None = None
    max_failures: int = 2
    wandb: str = "offline"
    keep_checkpoints: str = "best"
    warm_start: str | None = None
    final: dict = field(default_factory=dict)          # what export sets instead of a searched value
    prepared_fingerprint: str | None = None            # the data's fingerprint (None: plans from before it)
    earlier_sweep_dirs: list[str] = field(default_factory=list)   # dirs it ran in on other heads
    version: int = VERSION

    @property
    def metric(self) -> str:
        return self.objectives[0][0]

    @property
    def mode(self) -> str:
        return self.objectives[0][1]

    @property
    def lower_is_better(self) -> bool:
        return lower_is_better(self.mode)

    @property
    def max_epochs(self) -> int:
        return int(self.search.max_epochs)

    @property
    def reports_per_epoch(self) -> int:
        return int(self.search.reports_per_epoch)

    @property
    def num_samples(self) -> int:
        return self.search.num_samples

    @property
    def sampler(self) -> str:
        return self.search.sampler

    @property
    def prepared(self) -> str:
        return self.base["data.prepared"]

    def to_json(self) -> dict:
        return asdict(self)       # search becomes a plain mapping too

    @classmethod
    def from_json(cls, raw: dict, source: str = "the sweep plan") -> "SweepPlan":
        if not isinstance(raw, dict):
            raise PlanError(f"{source}: expected a JSON object")
        version = raw.get("version", 1)
        if not isinstance(version, int) or version > VERSION:
            raise PlanError(f"{source}: plan version {version!r} was written by a newer mer-search (this one reads "
                            f"up to {VERSION}); upgrade mer-search to resume or read it")
        known = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        older = version < 3 and {"num_samples", "sampler"} <= set(raw)
        missing = [k for k in required if k not in raw] + ([] if version >= 3 or older else ["num_samples/sampler"])
        if missing or not isinstance(raw["search"], dict):
            raise PlanError(f"{source}: not a complete sweep plan (missing {', '.join(missing) or 'search'})")
        search = dict(raw["search"])
        if version < 3:       # num_samples and sampler as run were kept beside the space's search section
            search.update(num_samples=raw["num_samples"], sampler=raw["sampler"])
        # version 1 carried the same keys, untyped; keys this version does not know are dropped
        kept = {k: v for k, v in raw.items() if k in known and k not in ("version", "search")}
        return cls(**kept, search=SearchSettings.from_dict(search), version=VERSION)
