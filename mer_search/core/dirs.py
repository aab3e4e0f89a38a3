"""The owners of what lies on disk: a sweep dir (`SweepDir`), a final-training run dir (`RunDir`) and a
feature dir (`FeatureDir`).

Every file name of either lives here, and every read or write of the plan, status, trials table and
ranking goes through them. Ray-free and torch-free: export, report and the pipeline read sweeps with pandas.

A sweep dir holds: sweep.json (the plan: every setting a resume needs), space.yaml (the space as run),
optuna.journal (the study; optuna.db in sweeps made before it), asha_rungs.json (ASHA's records), tune/
(Ray's trial dirs and checkpoints, unless --storage puts them elsewhere), trials.parquet (every trial's
config and per-epoch metrics), status.json (finished or not), wandb/ and wandb_steps.json (live W&B runs
and how far each got), report/ (`mer-search report`) and refit/ (`export --refit`: one run dir per trial
trained again, and refit.json).

A feature dir (`mer-search features`) holds {split}.npy (row i is row i of the prepared split's table),
{split}_logp.npy (the model's log-probabilities for the same rows: what a residual fusion starts from),
keys.parquet (split, dialogue_id, utterance_id, row) and manifest.json, written last (with the model's dev
score where dev is prepared).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_prep.atomic import write_atomic, write_json_atomic, write_npy_atomic
from data_prep.locks import DirLock
from mer_search.core.errors import ConfigError
from mer_search.core.plan import SweepDirError, SweepPlan

CONFIG_PREFIX = "config/"          # a trial's parameters as table columns (config/model.emb_dim ...)


class SweepDir:
    PLAN = "sweep.json"
    SPACE = "space.yaml"
    RUNGS = "asha_rungs.json"
    STATUS = "status.json"         # {"finished": bool, ...}: written when a sweep starts and when it ends
    TRIALS = "trials.parquet"
    WANDB_STEPS = "wandb_steps.json"
    LEASE = "driver_lease.json"    # in a --storage elsewhere: which head drives the sweep (state.py)
    STUDY = "optuna.journal"       # the default study: Optuna's journal file (bench/study_storage.py: why)
    SQLITE = "optuna.db"           # sweeps before it, or --study-storage sqlite:///SWEEP_DIR/optuna.db
    TUNE = "tune"
    WANDB = "wandb"
    REPORT = "report"
    REFIT = "refit"                # export --refit: the top trials trained again at full fidelity
    REFIT_RESULT = "refit.json"    # ... and which of them the export chose, on dev
    # what a lost head needs back from the sweep's --storage (the study files are handled apart)
    STATE_FILES = (PLAN, SPACE, RUNGS, STATUS, TRIALS, WANDB_STEPS)

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"SweepDir({str(self.path)!r})"

    # -- paths ---------------------------------------------------------------------------------------------
    @property
    def plan_path(self) -> Path:
        return self.path / self.PLAN

    @property
    def space_path(self) -> Path:
        return self.path / self.SPACE

    @property
    def rungs_path(self) -> Path:
        return self.path / self.RUNGS

    @property
    def status_path(self) -> Path:
        return self.path / self.STATUS

    @property
    def trials_path(self) -> Path:
        return self.path / self.TRIALS

    @property
    def wandb_steps_path(self) -> Path:
        return self.path / self.WANDB_STEPS

    @property
    def wandb_dir(self) -> Path:
        return self.path / self.WANDB

    @property
    def report_dir(self) -> Path:
        return self.path / self.REPORT

    @property
    def study_path(self) -> Path:
        return self.path / self.STUDY

    @property
    def refit_dir(self) -> Path:
        return self.path / self.REFIT

    @property
    def refit_result_path(self) -> Path:
        return self.refit_dir / self.REFIT_RESULT

    def refit_run(self, trial_id: str) -> "RunDir":
        return RunDir(self.refit_dir / str(trial_id))

    @property
    def sqlite_path(self) -> Path:
        return self.path / self.SQLITE

    def study_file(self) -> str | None:
        """The name of the study file this sweep dir has (a journal, or an older sweep's sqlite), if any."""
        return next((n for n in (self.STUDY, self.SQLITE) if (self.path / n).exists()), None)

    # -- the plan ------------------------------------------------------------------------------------------
    def lock(self) -> DirLock:
        """One driver at a time (held for its lifetime; a killed driver frees it)."""
        return DirLock(self.path, "sweep dir")

    def holds_sweep(self) -> bool:
        return self.plan_path.exists()

    def load_plan(self) -> SweepPlan:
        if not self.plan_path.exists():
            raise SweepDirError(f"{self.path}: not a sweep dir (no {self.PLAN})")
        try:
            raw = json.loads(self.plan_path.read_text())
        except json.JSONDecodeError as e:
            raise SweepDirError(f"{self.plan_path}: not valid JSON ({e})") from None
        return SweepPlan.from_json(raw, str(self.plan_path))

    def save_plan(self, plan: SweepPlan) -> None:
        write_json_atomic(self.plan_path, plan.to_json())

    # -- status --------------------------------------------------------------------------------------------
    def status(self) -> dict:
        """Whether the sweep ran its whole budget, and if not, which trials its stop cut short. A status file
        that does not parse (cut by a full disk) says unfinished: the sweep is resumed, not trusted."""
        if self.status_path.exists():
            status = read_json(self.status_path)
            return status if isinstance(status, dict) and "finished" in status else \
                {"finished": False, "state": "unreadable status"}
        # sweep dirs from before status.json: trials.parquet was written only by a finished sweep
        return {"finished": self.trials_path.exists(), "state": "unknown"}

    def write_status(self, **status: Any) -> None:
        write_json_atomic(self.status_path, status)

    # -- trials --------------------------------------------------------------------------------------------
    def save_trials(self, table: pd.DataFrame) -> None:
        write_atomic(self.trials_path, lambda p: table.to_parquet(p, index=False))

    def trials(self) -> pd.DataFrame:
        """Every trial's per-epoch results, with its parameters as config/ columns."""
        if not self.trials_path.exists():
            raise SweepDirError(f"{self.path}: no {self.TRIALS} yet; the sweep has not finished "
                                f"(resume it with --resume)")
        table = pd.read_parquet(self.trials_path)
        if table.empty:
            raise SweepDirError(f"{self.path}: no trial reported a result before the sweep stopped; "
                                f"resume it with --resume")
        return with_config_columns(table)

    def load(self) -> tuple[SweepPlan, pd.DataFrame]:
        return self.load_plan(), self.trials()


class RunDir:
    """A final training's dir: one seed's files, or (`seed(s)`) the per-seed dirs and the summary beside them."""

    BEST = "best.pt"               # the weights where dev peaked (features, predict)
    LAST = "last.pt"               # every epoch, with the optimizer state a resume needs
    CONFIG = "config.yaml"         # the full config as trained
    HISTORY = "history.json"
    METRICS = "metrics.json"
    SUMMARY = "summary.json"       # mean and std over seeds: written last, so it marks the run finished
    UTTERANCE = "utterance"        # a two-stage model's utterance stage, trained first
    FEATURES = "features"          # ... and its features

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def lock(self) -> DirLock:
        return DirLock(self.path, "run dir")

    def seed(self, seed: int) -> "RunDir":
        return RunDir(self.path / f"seed_{seed}")

    @property
    def best(self) -> Path:
        return self.path / self.BEST

    @property
    def last(self) -> Path:
        return self.path / self.LAST

    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def history(self) -> Path:
        return self.path / self.HISTORY

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def summary(self) -> Path:
        return self.path / self.SUMMARY

    def finished(self) -> bool:
        """The summary is written last; one that does not parse (cut short) does not count."""
        summary = read_json(self.summary)
        return isinstance(summary, dict) and "per_seed" in summary

    def utterance_stage(self) -> "RunDir":
        return RunDir(self.path / self.UTTERANCE)

    @property
    def features(self) -> Path:
        return self.path / self.FEATURES


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or does not parse (a marker cut short by a full
    disk or a killed writer is not trusted)."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return None


def nest(flat: dict[str, Any]) -> dict:
    """{'model.emb_dim': 64, 'train.lr': 1e-3} -> {'model': {'emb_dim': 64}, 'train': {'lr': 1e-3}}."""
    out: dict = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def trial_config(table: pd.DataFrame, trial_id: str) -> dict:
    """The exact flat config (dotted keys) a trial ran with."""
    rows = table[table.trial_id == trial_id]
    if "config_json" in rows:
        return json.loads(rows["config_json"].iloc[0])
    # tables written before config_json existed: lists and dicts were stored as JSON text
    out = {}
    for c in (c for c in rows.columns if c.startswith(CONFIG_PREFIX)):
        v = rows[c].iloc[0]
        out[c[len(CONFIG_PREFIX):]] = json.loads(v) if isinstance(v, str) and v[:1] in "[{" else \
            (v.item() if hasattr(v, "item") else v)
    return out


def with_config_columns(table: pd.DataFrame) -> pd.DataFrame:
    """A trials table stores each trial's config once (config_json); readers (ranking, plots) want one column
    per parameter, lists and dicts as JSON text. Tables from before config_json have the columns already."""
    if "config_json" not in table or any(c.startswith(CONFIG_PREFIX) for c in table.columns):
        return table
    configs = pd.DataFrame([{f"{CONFIG_PREFIX}{k}": json.dumps(v) if isinstance(v, (list, dict)) else v
                             for k, v in json.loads(s).items()} for s in table["config_json"]], index=table.index)
    return pd.concat([table, configs], axis=1)


def epochs_at(g: pd.DataFrame) -> pd.Series:
    """Epochs of training at each of a trial's reports (fractional where the sweep reported inside epochs)."""
    return g["epoch"] if "epoch" in g and g["epoch"].notna().all() else g.training_iteration


def _epochs(reports: int, per_epoch: int) -> int | float:
    return reports if per_epoch == 1 else round(reports / per_epoch, 3)


def ranked(table: pd.DataFrame, plan: SweepPlan) -> pd.DataFrame:
    """One row per trial, best first: best metric, its epoch, epochs run, outcome, parameter count, params.
    `table` as SweepDir.trials() gives it (a column per parameter)."""
    metric, max_t, per_epoch = plan.metric, plan.search.max_reports, plan.reports_per_epoch
    rows = []
    for tid, g in table.groupby("trial_id", sort=False):
        g = g[g[metric].notna()]
        if g.empty:
            continue
        i = g[metric].idxmin() if plan.lower_is_better else g[metric].idxmax()
        reports = int(g.training_iteration.max())
        if "cut_short" in g and g.cut_short.any():
            outcome = "cut short"
        else:
            outcome = "failed" if g.error.astype(bool).any() else ("stopped" if reports < max_t else "complete")
        # epochs of training (fractional where the sweep reported inside epochs)
        row = {"trial_id": tid, metric: float(g.loc[i, metric]),
               "best_epoch": _epochs(int(g.loc[i, "training_iteration"]), per_epoch),
               "epochs": _epochs(reports, per_epoch), "outcome": outcome}
        if "n_params" in g:
            row["n_params"] = int(g["n_params"].iloc[-1])
        row.update({c[len(CONFIG_PREFIX):]: g[c].iloc[0] for c in g.columns if c.startswith(CONFIG_PREFIX)})
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out = out.sort_values([metric, "trial_id"], ascending=[plan.lower_is_better, True]).reset_index(drop=True)
    out.index += 1
    return out


class FeatureDir:
    MANIFEST = "manifest.json"     # written last: its presence marks the extraction finished
    KEYS = "keys.parquet"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def vectors(self, split: str) -> Path:
        return self.path / f"{split}.npy"

    def logp(self, split: str) -> Path:
        return self.path / f"{split}_logp.npy"

    def dev_score(self, metric: str = "dev_wf1") -> float:
        """The dev score of the model these features came from (a residual fusion leads with the higher):
        weighted F1, or the dataset's micro F1 (dev_microf1) where its schema scores that."""
        manifest = read_json(self.manifest)
        if not (isinstance(manifest, dict) and metric in manifest):
            raise ConfigError(f"{self.path}: no {metric} in its manifest (extracted before dev was prepared, or "
                              f"by an older version): run `mer-search features` again")
        return float(manifest[metric])

    @property
    def keys(self) -> Path:
        return self.path / self.KEYS

    @property
    def manifest(self) -> Path:
        return self.path / self.MANIFEST

    def write_split(self, split: str, res: dict, n: int) -> None:
        """A model's outputs on a split's `n` rows (`train.predict` with features): vectors and log-probabilities,
        uniform for rows the model skipped."""
        import torch       # this module's only torch call: imported here, so reading a sweep needs no torch

        vectors = np.zeros((n, res["features"].shape[1]), np.float32)
        vectors[res["row"]] = res["features"]
        write_npy_atomic(self.vectors(split), vectors)
        classes = res["logits"].shape[1]
        logp = np.full((n, classes), -np.log(classes), np.float32)
        logp[res["row"]] = torch.log_softmax(torch.from_numpy(res["logits"]), -1).numpy()
        write_npy_atomic(self.logp(split), logp)

    def finished(self) -> bool:
        manifest = read_json(self.manifest)
        return isinstance(manifest, dict) and "dim" in manifest and self.logp("train").exists()   # older: again
