"""A sweep's plan: every setting a resume, the report and export need, as sweep.json in the sweep dir.

Typed and versioned, without Ray: `export`, `report` and the pipeline read it through its fields. Version 1
is the untyped dict written before the plan had a version; it loads with the defaults it lacked.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from mer_search.errors import UserError

PLAN_FILE = "sweep.json"
VERSION = 2


class SweepDirError(UserError, RuntimeError):
    """A sweep dir that cannot be read (no plan, no results yet); the message says why."""


PlanError = SweepDirError


def lower_is_better(mode: str) -> bool:
    """The one definition of a metric's direction: a plan's objectives say max or min."""
    if mode not in ("max", "min"):
        raise PlanError(f"mode {mode!r}: max or min")
    return mode == "min"


@dataclass
class SweepPlan:
    space_name: str
    space_source: str                     # the space file the sweep started from (copied to space.yaml)
    sweep_dir: str                        # where the sweep dir is on the machine that wrote this
    search: dict                          # the space's search section as run (max_epochs, grace_period ...)
    num_samples: int
    sampler: str
    scheduler: str
    seed: int
    objectives: list[list[str]]           # [[metric, max|min], ...]: the first ranks trials; nsga2 adds n_params
    base: dict                            # flat config every trial starts from (fixed values, data.prepared ...)
    prepared_sha256: str                  # the prepared manifest's hash when the sweep started
    study_storage: str                    # SQLAlchemy URL of the Optuna study
    study_name: str
    storage: str                          # Ray's trial results and checkpoints: a dir or a URI
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
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
        return int(self.search["max_epochs"])

    @property
    def prepared(self) -> str:
        return self.base["data.prepared"]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict, source: str = PLAN_FILE) -> "SweepPlan":
        if not isinstance(raw, dict):
            raise PlanError(f"{source}: expected a JSON object")
        version = raw.get("version", 1)
        if not isinstance(version, int) or version > VERSION:
            raise PlanError(f"{source}: plan version {version!r} was written by a newer mer-search (this one reads "
                            f"up to {VERSION}); upgrade mer-search to resume or read it")
        known = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [k for k in required if k not in raw]
        if missing:
            raise PlanError(f"{source}: not a complete sweep plan (missing {', '.join(missing)})")
        # version 1 carried the same keys, untyped; keys this version does not know are dropped
        return cls(**{k: v for k, v in raw.items() if k in known and k != "version"}, version=VERSION)

    def save(self, path: Path) -> None:
        from data_prep.atomic import write_json_atomic

        write_json_atomic(Path(path), self.to_json())


def load_plan(sweep_dir: str | Path) -> SweepPlan:
    path = Path(sweep_dir) / PLAN_FILE
    if not path.exists():
        raise PlanError(f"{sweep_dir}: not a sweep dir (no {PLAN_FILE})")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PlanError(f"{path}: not valid JSON ({e})") from None
    return SweepPlan.from_json(raw, str(path))
