"""`export --refit K`: the sweep's top K trials trained again at full fidelity (one seed), the best on dev exported.

A trial ranks on what the sweep let it run: a rung of its epochs, perhaps a share of train. The config
that comes out is trained on all of it. Refitting the top K checks the choice at the fidelity the final
training uses before its seeds are spent, and sets the epoch count from a run that had all of them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from data_prep.atomic import write_json_atomic
from mer_search.dirs import SweepDir, ranked
from mer_search.errors import ConfigError
from mer_search.export import export_config
from mer_search.metrics import better

log = logging.getLogger(__name__)


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
    from mer_search.experiment import run

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
