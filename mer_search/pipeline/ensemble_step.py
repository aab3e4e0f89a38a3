"""The study's last model: an ensemble of the final models every row trained (each seed of each row, floors
left out), chosen on dev by greedy selection with replacement (training/ensemble.py). It is the answer only
where averaging beats picking one model in dev folds the choice did not see; either way it is a row of the table.
"""

from __future__ import annotations

import logging

from data_prep.atomic import write_json_atomic
from mer_search.core.dirs import RunDir, read_json
from mer_search.pipeline.runner import Step

log = logging.getLogger("mer_search.pipeline")
FLOORS = ("speech_floor",)       # baselines, held against the rows: not members


def pool(pipe) -> list[dict]:
    """Every finished row's final seeds: stage, row, seed, checkpoint."""
    members = []
    for stage in pipe.stages():
        final = RunDir(pipe.dir.final(stage.name))
        s = read_json(final.summary)
        if stage.name in FLOORS or not isinstance(s, dict):
            continue
        for m in s["per_seed"]:
            members.append({"stage": stage.name, "row": stage.row, "seed": m["seed"],
                            "checkpoint": str(final.seed(m["seed"]).best)})
    return members


def ensemble_step(pipe) -> Step:
    """Whole when ensemble.json was chosen from the very pool of models there is now, after they were trained."""
    def complete() -> bool:
        made = read_json(pipe.dir.ensemble)
        if not isinstance(made, dict) or [m["checkpoint"] for m in made["pool"]] != \
                [m["checkpoint"] for m in pool(pipe)]:
            return False
        written = pipe.dir.ensemble.stat().st_mtime
        return all(RunDir(pipe.dir.final(m["stage"])).summary.stat().st_mtime <= written for m in made["pool"])

    return Step("ensemble", pipe.dir.ensemble, complete, lambda: choose(pipe))


def choose(pipe) -> None:
    from mer_search.training.ensemble import average, outputs, select
    from mer_search.training.train import metrics_from

    members = pool(pipe)
    if len(members) < 2 or pipe.metric != "dev_wf1":
        write_json_atomic(pipe.dir.ensemble, {"pool": members, "members": [], "helps": False,
                                              "why": "fewer than two models" if len(members) < 2 else
                                              f"the dataset is scored by {pipe.metric}, not weighted F1"})
        return
    splits = ("dev", "test") if pipe.opts.with_test else ("dev",)
    out = [outputs(m["checkpoint"], splits) for m in members]
    chosen = select([o["dev"] for o in out])
    record = {"pool": members, "weights": chosen.weights, "helps": chosen.helps, "cv": chosen.cv,
              "cv_single": chosen.cv_single, "sure": chosen.sure, "dev_dialogues": chosen.dialogues,
              "members": [{**m, "weight": w} for m, w in zip(members, chosen.weights) if w]}
    for split in splits:
        if all(split in o for o in out):
            probs = average([o[split].probs for o in out], chosen.weights)
            scores = metrics_from(out[0][split].labels, probs.argmax(1), float("nan"), split, probs.shape[1])
            record.update({f"{split}_wf1": scores[f"{split}_wf1"], f"{split}_acc": scores[f"{split}_acc"]})
    write_json_atomic(pipe.dir.ensemble, record)
    log.info("[pipeline] ensemble: %s; dev %.4f in sample, %.4f cross-validated (one model: %.4f; ahead in %.0f %% "
             "of dev resamples)", describe(record), record["dev_wf1"], chosen.cv, chosen.cv_single, 100 * chosen.sure)


def describe(record: dict) -> str:
    """`text seed 1 x2 + text + context seed 0 x1`."""
    return " + ".join(f"{m['row']} seed {m['seed']} x{m['weight']}" for m in record["members"]) or "none"


def chosen(pipe) -> dict | None:
    """The ensemble when it is the answer (averaging beat one model on held-out dev folds), else None."""
    made = read_json(pipe.dir.ensemble)
    return made if isinstance(made, dict) and made.get("helps") else None
