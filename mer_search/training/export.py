"""`mer-search export`: the config a sweep hands on, as a full training config for `mer-search train`.

Plainly, the best (or rank-th) trial, trained for the epochs where dev peaked. With `--refit K`, the top K
trials trained again at full fidelity (one seed) and the best of them on dev: a trial ranks on what the sweep
let it run (a rung of its epochs, perhaps a share of train); the refit checks the choice at the fidelity the
final training uses before its seeds are spent, and sets the epoch count from a run that had all of them.
`exported_config` is the one entry (the CLI and the pipeline), `write_config` the one writer.

Pandas only (the refit trains with torch): `export` and `pipeline` use it without importing Ray or Optuna.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import yaml

from data_prep.atomic import write_atomic, write_json_atomic
from mer_search.core.dirs import SweepDir, nest, ranked, trial_config
from mer_search.core.errors import ConfigError
from mer_search.core.metrics import better
from mer_search.core.plan import SweepDirError

log = logging.getLogger(__name__)
# a config's last line: a file without it was cut short (one that lost its last keys would still parse, and
# train with defaults)
WHOLE = "# end of config (a file without this line was cut short and is written again)\n"


def exported_config(sweep_dir: str | Path, rank: int = 1, refit: int = 0, seed: int = 0,
                    allow_unfinished: bool = False, reporter=None) -> dict:
    """The rank-th trial's config; with refit K, the best on dev of the top K trained again."""
    if refit and rank != 1:
        raise ConfigError("--refit picks among the top trials itself: leave --rank out")
    if refit:
        return refit_config(sweep_dir, refit, seed=seed, allow_unfinished=allow_unfinished, reporter=reporter)
    return export_config(sweep_dir, rank, allow_unfinished)


def provenance(cfg: dict) -> str:
    """Where an exported config came from, in a line: the trial, its rank and score, the refit's choice."""
    src = cfg["source"]
    how = f"refit best of the top {src['refit']['k']}, dev {src['refit']['metric']} " \
          f"{max(t['refit_value'] for t in src['refit']['trials']):.4f}; " if "refit" in src else ""
    return f"trial {src['trial_id']} ({how}rank {src['rank']}, {src['metric']} {src['value']:.4f} at epoch " \
           f"{src['best_epoch']})"


def write_config(path: str | Path, cfg: dict) -> None:
    """A training config as YAML, atomically: the command that trains it first, where it came from (when it
    came from a sweep), the config, and the WHOLE line last."""
    path = Path(path)
    head = f"# mer-search train {path} --seeds 3\n"
    if isinstance(cfg.get("source"), dict) and "trial_id" in cfg["source"]:
        head += f"# exported from {cfg['source']['sweep']}, {provenance(cfg)}\n"
    write_atomic(path, lambda p: p.write_text(head + yaml.safe_dump(cfg, sort_keys=False) + WHOLE))


def readable_config(path: Path) -> bool:
    """A written config is trusted only whole (its last line) and loading: one cut short is written again."""
    if not path.exists():
        return False
    from mer_search.training.config import load_config

    try:
        if not path.read_text().endswith(WHOLE):
            raise ConfigError("cut short")
        load_config(path)
        return True
    except (ConfigError, UnicodeDecodeError) as e:
        log.warning("%s is not a whole config (%s): written again", path, e)
        return False


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


def refit_config(sweep_dir: str | Path, k: int, seed: int = 0, allow_unfinished: bool = False,
                 reporter=None) -> dict:
    """The exported config of the best of the top `k` trials after each is trained again for the sweep's full
    epochs on all of train. Each refit is a run dir under the sweep's refit/ and is reused by a rerun."""
    if k < 1:
        raise ConfigError(f"--refit {k}: give how many of the top trials to train again (1 or more)")
    d = SweepDir(Path(sweep_dir).resolve())
    plan, table = d.load()
    k = min(k, len(ranked(table, plan)))
    metric, mode = plan.metric, plan.mode
    with d.lock():          # not beside the sweep's driver, nor a second refit
        tried = [_refit(d, plan, rank, k, seed, allow_unfinished, reporter) for rank in range(1, k + 1)]
    best = tried[0]
    for t in tried[1:]:
        if better(t["refit_value"], best["refit_value"], mode):
            best = t
    cfg = best["config"]
    cfg["train"]["epochs"] = max(1, best["refit_best_epoch"])   # where dev peaked when it had every epoch (0: a
                                                                # start it kept, as its final training will)
    cfg["source"] = {**best["source"], "refit": {
        "k": k, "seed": seed, "chosen_rank": best["rank"], "metric": metric,
        "trials": [{key: t[key] for key in ("rank", "trial_id", "sweep_value", "refit_value", "refit_best_epoch")}
                   for t in tried]}}
    write_json_atomic(d.refit_result_path, cfg["source"])
    log.info("refit: trial %s (rank %d in the sweep) is best on dev after refitting: %s %.4f", best["trial_id"],
             best["rank"], metric, best["refit_value"])
    return cfg


def _refit(d: SweepDir, plan, rank: int, k: int, seed: int, allow_unfinished: bool, reporter) -> dict:
    from mer_search.training.experiment import run

    metric = plan.metric
    cfg = export_config(d.path, rank, allow_unfinished=allow_unfinished)
    src = cfg.pop("source")
    cfg["train"]["epochs"] = plan.max_epochs       # all of them (the schedule's plan); dev picks the best
    log.info("refit %d/%d: trial %s (sweep: %s %.4f at epoch %s), %d epochs on all of train", rank, k,
             src["trial_id"], metric, src["value"], src["best_epoch"], plan.max_epochs)
    metrics = run(cfg, d.refit_run(src["trial_id"]).path, seed, reporter, reuse=True)   # a rerun keeps it
    return {"rank": rank, "trial_id": src["trial_id"], "sweep_value": src["value"],
            "refit_value": float(metrics[metric]), "refit_best_epoch": int(metrics["best_epoch"]),
            "config": cfg, "source": src}
