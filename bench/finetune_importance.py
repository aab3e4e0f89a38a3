"""Which of text_finetune's dimensions moved dev, on the evidence there is (issue 23, item 4)?

Two sources, side by side, over the space the sweep ran (its space.yaml):
  sweep     the sweep's trials at their own fidelity (35 % of train, stopped by ASHA or after 3 epochs): Optuna's
            fANOVA importance, as `mer-search report` computes it
  full      bench/fidelity.py's configs trained on all of train (the recipe and random points of the space):
            fANOVA over them, and each numeric parameter's Spearman correlation with the full-training dev wF1
Both are small samples (about 10 and 8 points): read them as where to look, not as a verdict.

    .venv/bin/python bench/finetune_importance.py --sweep runs/pipe_ft/sweeps/text --fidelity runs/fidelity
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import optuna

from mer_search.core.dirs import SweepDir
from mer_search.search.report import importance
from mer_search.search.space import load_space

from fidelity import spearman          # bench/fidelity.py: the same rank correlation as its table


def lookup(cfg: dict, dotted: str, default):
    section, key = dotted.split(".", 1)
    return cfg.get(section, {}).get(key, default)


def full_runs(fidelity: Path, space) -> list[tuple[dict, float]]:
    """(the searched parameters' values, best epoch-end dev wF1 on all of train) per finished config."""
    out = []
    for path in sorted(fidelity.glob("*.full.json")):
        run = json.loads(path.read_text())
        ends = [e["dev_wf1"] for e in run["evals"] if float(e["epoch"]).is_integer()]
        if len(ends) < run["config"]["train"]["epochs"]:
            continue                                    # not finished
        # a value the config leaves out is the code's default (the recipe names only what it changes)
        defaults = {"model.freeze_layers": 0, "train.layer_decay": 1.0, "train.label_smoothing": 0.0,
                    "data.class_balance": "none", "train.grad_accum": 1}
        params = {k: lookup(run["config"], k, defaults.get(k)) for k in space.params}
        out.append((params, max(ends)))
    return out


def fanova(points: list[tuple[dict, float]], space) -> dict[str, float]:
    study = optuna.create_study(direction="maximize")
    dists = space.distributions()                  # as a sweep's study holds them: categoricals as JSON
    for params, value in points:
        study.add_trial(optuna.trial.create_trial(params=space.encoded(params), distributions=dists, value=value))
    return optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), normalize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sweep", type=Path, required=True)
    ap.add_argument("--fidelity", type=Path, required=True)
    a = ap.parse_args()
    space = load_space(SweepDir(a.sweep).space_path)
    plan = SweepDir(a.sweep).load_plan()
    swept = importance(plan)
    runs = full_runs(a.fidelity, space)
    full = fanova(runs, space) if len(runs) >= 3 else {}
    values = np.array([v for _, v in runs])
    print(f"sweep: {a.sweep} ({plan.num_samples} trials); full training: {len(runs)} configs "
          f"(dev wF1 {values.min():.3f} .. {values.max():.3f})")
    print(f"{'parameter':24s} {'fANOVA sweep':>13s} {'fANOVA full':>12s} {'Spearman full':>14s}  values (full runs)")
    for k, p in space.params.items():
        xs = [params[k] for params, _ in runs]
        rho = spearman(np.asarray(xs, dtype=float), values) if p.type in ("float", "int") else float("nan")
        shown = ", ".join(f"{x:.3g}" if isinstance(x, float) else str(x) for x in xs)
        print(f"{k:24s} {swept.get(k, float('nan')):13.3f} {full.get(k, float('nan')):12.3f} {rho:14.2f}  {shown}")


if __name__ == "__main__":
    main()
