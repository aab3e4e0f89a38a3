"""`mer-search report SWEEP_DIR`: a ranked table and plots from a sweep dir, no account needed.

Reads trials.parquet (per-epoch metrics), sweep.json (the plan) and the Optuna study;
writes report/ with index.html (one self-contained interactive page: report_html.py)
and, for people who want files, curves.png (top-k learning curves), importance.png
(Optuna's fANOVA parameter importance), parallel.png (parallel coordinates),
pareto.png (nsga2 sweeps) and ranked.csv.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from mer_search.core.plan import SweepPlan
from mer_search.search import report_html
from mer_search.core.dirs import SweepDir, epochs_at, ranked
from mer_search.core.plan import SweepDirError

log = logging.getLogger(__name__)


ReportError = SweepDirError


def summary_line(sweep_dir: str | Path) -> str:
    d = SweepDir(sweep_dir)
    plan, table = d.load()
    r = ranked(table, plan)
    metric = plan.metric
    counts = r.outcome.value_counts()
    status = d.status()
    unfinished = "" if status["finished"] else \
        f"UNFINISHED, {counts.get('cut short', 0)} cut short, {status.get('planned', '?')} planned; "
    return (f"{len(r)} trials ({unfinished}{counts.get('complete', 0)} complete, {counts.get('stopped', 0)} stopped "
            f"early, {counts.get('failed', 0)} failed); best {metric} {r.iloc[0][metric]:.4f} "
            f"(trial {r.iloc[0].trial_id})")


def pareto_front(r: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """Trials no other trial beats on both the metric and the parameter count."""
    sign = 1 if mode == "max" else -1
    m, p = sign * r[metric].to_numpy(), r["n_params"].to_numpy()
    keep = [not np.any((m >= m[i]) & (p <= p[i]) & ((m > m[i]) | (p < p[i]))) for i in range(len(r))]
    return r[keep].sort_values("n_params")


def importance(plan: SweepPlan) -> dict[str, float]:
    from mer_search.search.state import study_storage

    study = optuna.load_study(study_name=plan.study_name, storage=study_storage(plan.study_storage))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < 3 or not any(t.params for t in done):
        return {}
    target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
    try:     # fANOVA: variance explained, so the direction of the metric does not matter
        return optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), target=target, normalize=True)
    except (RuntimeError, ValueError) as e:     # e.g. every trial sampled the same value
        log.warning("parameter importance unavailable: %s", e)
        return {}


def varied_params(r: pd.DataFrame, metric: str) -> list[str]:
    return [c for c in r.columns if c not in ("trial_id", metric, "best_epoch", "epochs", "outcome", "n_params")
            and r[c].nunique() > 1]


def _plots(r: pd.DataFrame, table: pd.DataFrame, plan: SweepPlan, out: Path, top_k: int, imp: dict) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, mode = plan.objectives[0]
    paths = {}
    fig, ax = plt.subplots(figsize=(7, 4))
    for tid in r.trial_id.head(top_k):
        g = table[table.trial_id == tid]
        ax.plot(epochs_at(g), g[metric], marker="o", ms=3, label=str(tid))
    ax.set(xlabel="epoch", ylabel=metric, title=f"top {min(top_k, len(r))} trials")
    ax.legend(fontsize=7)
    paths["curves"] = _save(fig, out / "curves.png")

    if imp:
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(imp) + 1.2))
        names = list(imp)[::-1]
        ax.barh(names, [imp[n] for n in names])
        ax.set(xlabel="importance (Optuna fANOVA)", title=f"what moved {metric}")
        paths["importance"] = _save(fig, out / "importance.png")

    params = varied_params(r, metric)
    if params and len(r) > 1:
        fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(params) + 2), 4))
        cols = {}
        for c in params:
            v = pd.to_numeric(r[c].map(lambda x: float(x) if isinstance(x, bool) else x), errors="coerce")
            v = v.astype(float)
            if v.isna().any():       # categorical, or absent for some trials: its values in order of appearance
                v = pd.Series(pd.factorize(r[c].astype(str))[0], index=r.index, dtype=float)
            lo, hi = v.min(), v.max()
            cols[c] = (v - lo) / (hi - lo) if hi > lo else v * 0 + 0.5
        score = r[metric].to_numpy()
        norm = (score - score.min()) / (np.ptp(score) or 1)
        cmap = plt.get_cmap("viridis")
        for i in range(len(r)):
            ax.plot(range(len(params)), [cols[c].iloc[i] for c in params], color=cmap(norm[i]), alpha=0.8)
        ax.set_xticks(range(len(params)), params, rotation=30, ha="right", fontsize=7)
        ax.set(ylabel="scaled value", title=f"parallel coordinates (colour: {metric})")
        paths["parallel"] = _save(fig, out / "parallel.png")

    if len(plan.objectives) > 1 and "n_params" in r:
        front = pareto_front(r, metric, mode)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(r.n_params, r[metric], s=14, alpha=0.5, label="trials")
        ax.plot(front.n_params, front[metric], "r-o", ms=5, label="Pareto front")
        ax.set(xscale="log", xlabel="parameters", ylabel=metric, title="Pareto front")
        ax.legend()
        paths["pareto"] = _save(fig, out / "pareto.png")
        front.to_csv(out / "pareto.csv", index=False)
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_report(sweep_dir: str | Path, top_k: int = 5) -> tuple[pd.DataFrame, Path]:
    """Writes report/ in the sweep dir; returns the ranked table and the HTML page's path."""
    d = SweepDir(sweep_dir)
    plan, table = d.load()
    r = ranked(table, plan)
    if r.empty:
        raise ReportError(f"{d.path}: no trial reported a result")
    out = d.report_dir
    out.mkdir(exist_ok=True)
    r.to_csv(out / "ranked.csv")
    imp = importance(plan)
    paths = _plots(r, table, plan, out, top_k, imp)
    metric, mode = plan.objectives[0]
    figures = [report_html.curves(r, table, metric, top_k)]
    if imp:
        figures.append(report_html.importance_bars(imp, metric))
    params = varied_params(r, metric)
    if params and len(r) > 1:
        figures.append(report_html.parallel(r, metric, params))
    if len(plan.objectives) > 1 and "n_params" in r:
        figures.append(report_html.pareto(r, pareto_front(r, metric, mode), metric))
    summary = (f"{summary_line(d.path)}; sampler {plan.sampler}, scheduler {plan.scheduler}, ranked by {metric}. "
               f"PNG copies: {', '.join(p.name for p in paths.values())}.")
    (out / "index.html").write_text(report_html.page(f"Sweep {plan.space_name}", summary, report_html.ranked_table(r),
                                                     figures))
    return r, out / "index.html"
