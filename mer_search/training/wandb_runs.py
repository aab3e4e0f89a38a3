"""Weights & Biases runs of final trainings, one per training (a sweep's trials log live from the driver:
mer_search/search/live_wandb.py).

Offline by default: nothing is sent; `wandb sync SWEEP_DIR/wandb/offline-run-*` (or `mer-search sync`)
uploads later. The API key is read by wandb from the environment only.
"""

from __future__ import annotations

import os
from pathlib import Path

from mer_search.core.errors import UserError


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


def offline_runs(sweep_dir: Path) -> list[Path]:
    """A sweep's offline run logs, by time (a run resumed by another driver has one log per driver)."""
    runs = sorted((Path(sweep_dir) / "wandb").glob("offline-run-*"))
    if not runs:
        raise UserError(f"{sweep_dir}: no offline W&B runs under wandb/ (was the sweep run with --wandb disabled?)")
    return runs


def sync_offline(runs: list[Path]) -> None:
    """Upload offline logs with W&B's own `wandb sync` (the key comes from the environment only)."""
    import shutil
    import subprocess
    import sys

    if not os.environ.get("WANDB_API_KEY"):
        raise UserError("WANDB_API_KEY is not set; export it (the key is read from the environment only) and rerun")
    exe = shutil.which("wandb", path=str(Path(sys.executable).parent)) or shutil.which("wandb")
    if exe is None:
        raise UserError("the wandb command is not installed in this environment")
    rc = subprocess.call([exe, "sync", *map(str, runs)])
    if rc:
        raise UserError(f"wandb sync exited with {rc}")
