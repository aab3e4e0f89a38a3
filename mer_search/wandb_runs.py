"""Weights & Biases runs written from one process: one per sweep trial (from the driver, after the trials,
never a logging process per trial) and one per final training.

Offline by default: nothing is sent; `wandb sync SWEEP_DIR/wandb/offline-run-*` (or `mer-search sync`)
uploads later. The API key is read by wandb from the environment only.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def log_offline(table: pd.DataFrame, out: Path, group: str, metric: str = "dev_wf1", mode: str = "offline") -> int:
    """One run per trial in `group` (the sweep): its config, a step per epoch, the best epoch in the summary."""
    if table.empty:
        return 0
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    n = 0
    for trial_id, rows in table.groupby("trial_id", sort=True):
        config = {c[len("config/"):]: rows[c].iloc[0] for c in rows.columns if c.startswith("config/")}
        run = wandb.init(project="mer-search", group=group, name=str(trial_id), config=config, mode=mode,
                         dir=str(out), reinit="create_new")
        for _, r in rows.iterrows():
            run.log({k: float(r[k]) for k in rows.columns if k.startswith(("dev_", "train_")) and pd.notna(r[k])},
                    step=int(r["training_iteration"]))
        if metric in rows and rows[metric].notna().any():
            i = rows[metric].idxmin() if metric.endswith("loss") else rows[metric].idxmax()
            run.summary[f"best_{metric}"] = float(rows.loc[i, metric])
            run.summary["best_epoch"] = int(rows.loc[i, "training_iteration"])
        run.summary["epochs"] = int(rows["training_iteration"].max())
        if "n_params" in rows:
            run.summary["n_params"] = int(rows["n_params"].iloc[-1])
        run.finish()
        n += 1
    return n


def log_final(summary: dict, config: dict, out: Path, name: str, mode: str = "offline") -> str:
    """One run for a final training: its config, each seed's metrics as a step, mean and std in the summary."""
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    run = wandb.init(project="mer-search", group="final", job_type="train", name=name, config=config, mode=mode,
                     dir=str(out), reinit="create_new")
    for i, m in enumerate(summary["per_seed"]):
        run.log({k: v for k, v in m.items() if isinstance(v, (int, float))}, step=i)
    for k, v in summary.items():
        if isinstance(v, dict) and "mean" in v:
            run.summary[f"{k}_mean"], run.summary[f"{k}_std"] = v["mean"], v["std"]
    run.finish()
    return str(run.dir)
