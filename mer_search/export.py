"""`mer-search export`: a sweep's best (or rank-th) trial as a full training config for `mer-search train`.

Pandas only: `export` and `pipeline` use it without importing Ray or Optuna.
"""

from __future__ import annotations

import math
from pathlib import Path

from mer_search.dirs import SweepDir, nest, ranked, trial_config
from mer_search.plan import SweepDirError


def export_config(sweep_dir: str | Path, rank: int = 1, allow_unfinished: bool = False) -> dict:
    """The full training config of the rank-th best trial, trained for the epoch count where dev peaked."""
    d = SweepDir(Path(sweep_dir).resolve())
    plan, table = d.load()
    status = d.status()
    if not status["finished"] and not allow_unfinished:
        raise SweepDirError(f"{d.path}: the sweep is unfinished ({len(status.get('cut_short', []))} trials cut "
                            f"short, {status.get('trials', '?')} of {status.get('planned', '?')} started); resume "
                            f"it with `mer-search sweep --resume {d.path}`, or export anyway with --allow-unfinished")
    r = ranked(table, plan)
    if r.empty:
        raise SweepDirError(f"{d.path}: no trial reported a result")
    if not 1 <= rank <= len(r):
        raise SweepDirError(f"--rank {rank}: the sweep has {len(r)} trials")
    best = r.loc[rank]
    metric = plan.metric
    flat = {**plan.base, **trial_config(table, best.trial_id), **plan.final}
    flat["train.epochs"] = math.ceil(best.best_epoch)     # peaked inside an epoch: train to that epoch's end
    flat["train.patience"] = 0
    # a schedule keeps the shape the trial had (planned over the sweep's epochs), stopped where dev peaked
    if flat.get("train.schedule") in ("cosine", "linear") and not flat.get("train.schedule_epochs"):
        flat["train.schedule_epochs"] = int(plan.max_epochs)
    cfg = nest(flat)
    cfg["source"] = {"sweep": str(d.path), "space": plan.space_name, "trial_id": str(best.trial_id), "rank": rank,
                     "sweep_finished": bool(status["finished"]),
                     "metric": metric, "value": float(best[metric]), "best_epoch": _number(best.best_epoch),
                     "epochs_run": _number(best.epochs), "prepared_sha256": plan.prepared_sha256}
    return cfg


def _number(x) -> int | float:
    """An epoch count for the YAML: whole epochs as ints, part-way points as floats (1.5)."""
    return int(x) if float(x).is_integer() else float(x)
