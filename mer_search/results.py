"""Reading a finished sweep dir (sweep.json + trials.parquet): ranking trials and exporting one as a config.

Pandas only: `export` and `pipeline` use it without importing Ray or Optuna.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mer_search.plan import SweepDirError, SweepPlan, load_plan

STATUS_FILE = "status.json"     # {"finished": bool, ...}: written when a sweep starts and when it ends
__all__ = ["SweepDirError", "STATUS_FILE", "load_sweep", "ranked", "export_config", "sweep_status"]


def sweep_status(sweep_dir: str | Path) -> dict:
    """Whether the sweep ran its whole budget, and if not, which trials its stop cut short."""
    d = Path(sweep_dir)
    if (d / STATUS_FILE).exists():
        return json.loads((d / STATUS_FILE).read_text())
    # sweep dirs from before status.json: trials.parquet was written only by a finished sweep
    return {"finished": (d / "trials.parquet").exists(), "state": "unknown"}


def load_sweep(sweep_dir: str | Path) -> tuple[SweepPlan, pd.DataFrame]:
    d = Path(sweep_dir)
    plan = load_plan(d)
    if not (d / "trials.parquet").exists():
        raise SweepDirError(f"{d}: no trials.parquet yet; the sweep has not finished (resume it with --resume)")
    table = pd.read_parquet(d / "trials.parquet")
    if table.empty:
        raise SweepDirError(f"{d}: no trial reported a result before the sweep stopped; resume it with --resume")
    return plan, table


def ranked(table: pd.DataFrame, plan: SweepPlan) -> pd.DataFrame:
    """One row per trial, best first: best metric, its epoch, epochs run, outcome, parameter count, params."""
    metric, max_t = plan.metric, plan.max_epochs
    rows = []
    for tid, g in table.groupby("trial_id", sort=False):
        g = g[g[metric].notna()]
        if g.empty:
            continue
        i = g[metric].idxmin() if plan.lower_is_better else g[metric].idxmax()
        epochs = int(g.training_iteration.max())
        if "cut_short" in g and g.cut_short.any():
            outcome = "cut short"
        else:
            outcome = "failed" if g.error.astype(bool).any() else ("stopped" if epochs < max_t else "complete")
        row = {"trial_id": tid, metric: float(g.loc[i, metric]), "best_epoch": int(g.loc[i, "training_iteration"]),
               "epochs": epochs, "outcome": outcome}
        if "n_params" in g:
            row["n_params"] = int(g["n_params"].iloc[-1])
        row.update({c[len("config/"):]: g[c].iloc[0] for c in g.columns if c.startswith("config/")})
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out = out.sort_values([metric, "trial_id"], ascending=[plan.lower_is_better, True]).reset_index(drop=True)
    out.index += 1
    return out


def trial_config(table: pd.DataFrame, trial_id: str) -> dict:
    """The exact flat config (dotted keys) a trial ran with."""
    rows = table[table.trial_id == trial_id]
    if "config_json" in rows:
        return json.loads(rows["config_json"].iloc[0])
    # tables written before config_json existed: lists and dicts were stored as JSON text
    out = {}
    for c in (c for c in rows.columns if c.startswith("config/")):
        v = rows[c].iloc[0]
        out[c[len("config/"):]] = json.loads(v) if isinstance(v, str) and v[:1] in "[{" else \
            (v.item() if hasattr(v, "item") else v)
    return out


def export_config(sweep_dir: str | Path, rank: int = 1, allow_unfinished: bool = False) -> dict:
    """The full training config of the rank-th best trial, trained for the epoch count where dev peaked."""
    from mer_search.search.flat import nest

    d = Path(sweep_dir).resolve()
    plan, table = load_sweep(d)
    status = sweep_status(d)
    if not status["finished"] and not allow_unfinished:
        raise SweepDirError(f"{d}: the sweep is unfinished ({len(status.get('cut_short', []))} trials cut short, "
                            f"{status.get('trials', '?')} of {status.get('planned', '?')} started); resume it with "
                            f"`mer-search sweep --resume {d}`, or export anyway with --allow-unfinished")
    r = ranked(table, plan)
    if r.empty:
        raise SweepDirError(f"{d}: no trial reported a result")
    if not 1 <= rank <= len(r):
        raise SweepDirError(f"--rank {rank}: the sweep has {len(r)} trials")
    best = r.loc[rank]
    metric = plan.metric
    flat = {**plan.base, **trial_config(table, best.trial_id), **plan.final}
    flat["train.epochs"] = int(best.best_epoch)
    flat["train.patience"] = 0
    # a schedule keeps the shape the trial had (planned over the sweep's epochs), stopped where dev peaked
    if flat.get("train.schedule") in ("cosine", "linear") and not flat.get("train.schedule_epochs"):
        flat["train.schedule_epochs"] = int(plan.max_epochs)
    cfg = nest(flat)
    cfg["source"] = {"sweep": str(d), "space": plan.space_name, "trial_id": str(best.trial_id), "rank": rank,
                     "sweep_finished": bool(status["finished"]),
                     "metric": metric, "value": float(best[metric]), "best_epoch": int(best.best_epoch),
                     "epochs_run": int(best.epochs), "prepared_sha256": plan.prepared_sha256}
    return cfg
