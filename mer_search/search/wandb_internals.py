"""The one place that relies on W&B beyond its documented run API, and the check that it still holds.

Live sweep runs need two things W&B marks experimental: the setting `x_transaction_log_flush_interval`
(how often a run's log reaches the disk; the default, 15 s, hides short trials from a killed driver) and
`wandb leet inspect --json RUN_DIR` (W&B's own reader of a run's log files: which steps reached the disk,
so a resumed run logs each epoch once). pyproject.toml pins the W&B minor version these were checked against;
tests/test_wandb_internals.py runs `check()`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from mer_search.core.errors import UserError

TESTED_WANDB = "0.31"
FLUSH_SETTING = "x_transaction_log_flush_interval"


class WandbInternalsChanged(UserError, RuntimeError):
    """W&B no longer has the experimental setting or reader mer-search uses."""


def settings(flush_every_s: float, **kw):
    """wandb.Settings with the log flushed to disk every `flush_every_s` seconds."""
    import wandb

    return wandb.Settings(**kw, **{FLUSH_SETTING: flush_every_s})


def _binary() -> str:
    return shutil.which("wandb") or str(Path(sys.executable).parent / "wandb")


def logged_steps(run_dir: Path) -> set[int]:
    """The history steps a run's local log files hold, as W&B's reader sees them."""
    out = subprocess.run([_binary(), "leet", "inspect", "--json", str(run_dir)], capture_output=True, text=True,
                         timeout=120).stdout
    steps = set()
    for line in out.splitlines():
        rec = json.loads(line)
        if rec.get("type") == "history":
            steps.add(int(rec["history"]["item"]["_step"]))
    return steps


def check() -> None:
    """Raise WandbInternalsChanged unless the setting and the reader are still there."""
    try:
        settings(2.0)
    except Exception as e:      # pydantic's validation error: the field is gone or renamed
        raise WandbInternalsChanged(f"wandb.Settings has no {FLUSH_SETTING} ({type(e).__name__}); checked against "
                                    f"W&B {TESTED_WANDB}: see README, Upgrading") from None
    r = subprocess.run([_binary(), "leet", "inspect", "--help"], capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or "--json" not in r.stdout:
        raise WandbInternalsChanged(f"`wandb leet inspect --json` is gone; checked against W&B {TESTED_WANDB}")
