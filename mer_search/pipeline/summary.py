"""The study's summary: the reference project's table (a row per stage, the majority class beneath), the
space each stage searched and why, and the answer with its bundle."""

from __future__ import annotations

from pathlib import Path

from mer_search.core.dirs import RunDir, SweepDir, read_json


def table(pipe) -> str:
    """One row per model family, dev (and test) weighted F1 and accuracy, then the spaces and the answer.
    `pipe`: the study (study.Pipeline); its steps and summary read it, never import it."""
    from mer_search.core.config_io import load_yaml
    from mer_search.models import model_label

    from mer_search.pipeline.ensemble_step import FLOORS

    rows, micro = [], pipe.metric == "dev_microf1"
    for stage in pipe.stages():
        if stage.name in FLOORS:
            rows += ensemble_row(pipe)
        if (same := pipe.same_as(stage)) is not None:
            rows.append([stage.row, f"= {same.row} (not run again: its inputs and space)"] + ["="] * 4)
            continue
        s = read_json(RunDir(pipe.dir.final(stage.name)).summary)
        if not isinstance(s, dict):
            continue
        cells = [stage.row, model_label(load_yaml(pipe.dir.config(stage.name))["model"])]
        for split in ("dev", "test"):
            for metric in ("wf1", "acc", *(("microf1",) if micro else ())):
                m = s.get(f"{split}_{metric}")
                spread = " (1 seed)" if s.get("seeds") == 1 else f" +- {m['std']:.3f}" if m else ""
                cells.append(f"{m['mean']:.3f}{spread}" if m else "-")
        rows.append(cells)
    if not any(stage.name in FLOORS for stage in pipe.stages()):
        rows += ensemble_row(pipe)
    rows.append(majority_row(pipe.dir.prepared))
    header = ["model", "architecture", "dev wF1", "dev acc", "test wF1", "test acc"]
    if micro:            # the dataset's own score beside each split's
        header = ["model", "architecture", "dev wF1", "dev acc", "dev micro F1", "test wF1", "test acc",
                  "test micro F1"]
        rows = [r if len(r) == len(header) else r[:4] + ["-"] + r[4:] + ["-"] for r in rows]
    b = pipe.budget
    dataset = pipe.manifest.get("dataset") or {"name": "meld"}
    metric = (dataset.get("metric") or {}).get("name", "weighted_f1").replace("_", " ")
    lines = [f"Dataset {dataset['name']}; rows scored by {metric} (the columns below: weighted F1 and "
             f"accuracy). Budget {pipe.opts.budget}: {b['num_samples'] or 'the space'} trials per sweep, "
             f"{b['max_epochs'] or 'the space'} epochs max, the top {b['refit']} refitted "
             f"before export, final models over {b['seeds']} seeds (mean +- std).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines + ["", "Spaces:"] + space_lines(pipe) + best_lines(pipe)) + "\n"


def ensemble_row(pipe) -> list[list[str]]:
    """The ensemble of the rows' final models (one selection: no spread over seeds)."""
    made = read_json(pipe.dir.ensemble)
    if not isinstance(made, dict) or not made.get("members"):
        return []
    n, members = sum(m["weight"] for m in made["members"]), made["members"]
    label = f"{len(members)} of {len(made['pool'])} final models, {n} picks" if len(members) > 1 else \
        f"= {members[0]['row']} seed {members[0]['seed']} (no model added to it raised dev)"
    return [["ensemble", label]
            + [f"{made[k]:.3f}" if k in made else "-" for k in ("dev_wf1", "dev_acc", "test_wf1", "test_acc")]]


def ensemble_line(pipe) -> list[str]:
    from mer_search.pipeline.ensemble_step import describe
    from mer_search.training.ensemble import FOLDS, MIN_DIALOGUES, RESAMPLES, SURE

    made = read_json(pipe.dir.ensemble)
    if not isinstance(made, dict):
        return []
    if not made.get("members"):
        return [f"- ensemble: none ({made.get('why', '')})"]
    sure, few = made.get("sure", 0.0), made.get("dev_dialogues", MIN_DIALOGUES) < MIN_DIALOGUES
    verdict = "the answer" if made["helps"] else \
        f"not the answer (dev has {made.get('dev_dialogues')} dialogues: too few to tell)" if few else \
        f"not the answer (it must beat one model held out, in at least {100 * SURE:.0f} % of dev resamples)"
    return [f"- ensemble: greedy selection with replacement on dev over the rows' {len(made['pool'])} final "
            f"models: {describe(made)}; dev {made['dev_wf1']:.4f} in sample, {made['cv']:.4f} cross-validated over "
            f"{FOLDS} dev folds (picking one model the same way: {made['cv_single']:.4f}; the ensemble ahead in "
            f"{100 * sure:.0f} % of {RESAMPLES:,} resamples of dev's dialogues): {verdict}"]


def best_lines(pipe) -> list[str]:
    """The answer: the row chosen on dev, its scores, and the bundle that applies it to new dialogues."""
    from mer_search.serving.bundle import BUNDLE_JSON

    made = read_json(pipe.dir.bundle / BUNDLE_JSON)
    if not isinstance(made, dict):
        return []
    card = made["card"]
    return ["", f"best (chosen on dev): {card['row']}; " + "; ".join(f"{k} {v}" for k, v in card["scores"].items()),
            f"bundle: {pipe.dir.bundle} (`mer-search predict {pipe.dir.bundle} --csv NEW.csv`)"]


def space_lines(pipe) -> list[str]:
    """Which space each searched stage used and why; how its sweep ended; what the refit chose."""
    out = [f"- GPUs: {pipe.why['gpus']}"] if "gpus" in pipe.why else []
    for stage in pipe.stages():
        if stage.space is None:
            if stage.name in pipe.why:         # a start point trained without a search: why it was
                out.append(f"- {stage.name}: {Path(stage.config).stem}, no search ({pipe.why[stage.name]})")
            continue
        if pipe.same_as(stage) is not None:
            out.append(f"- {stage.name}: not run, {pipe.why[stage.name]}")
            continue
        d = SweepDir(pipe.dir.sweep(stage.name))
        line = f"- {stage.name}: {Path(stage.space).stem} ({pipe.why.get(stage.name, 'the pipeline default')})"
        status = d.status() if d.holds_sweep() else {}
        if status.get("state") == "time budget spent":
            line += f"; its sweep stopped at its share of --time-budget after {status.get('trials')} of " \
                    f"{status.get('planned')} trials"
        refit = read_json(d.refit_result_path)
        if isinstance(refit, dict) and "refit" in refit:
            r = refit["refit"]
            line += (f"; refit of the top {r['k']}: sweep rank {r['chosen_rank']} chosen, dev "
                     + ", ".join(f"{t['refit_value']:.3f}" for t in r["trials"]))
        out.append(line)
    return out + ensemble_line(pipe)


def majority_row(prepared: Path) -> list[str]:
    """Always predicting train's most frequent emotion: dev and test weighted F1 and accuracy."""
    import numpy as np

    from data_prep.reader import PreparedDir
    from mer_search.training.train import metrics_from

    p = PreparedDir(prepared)
    names = p.emotion_names()
    label = int(p.table("train", ["emotion"]).emotion.mode()[0])
    cells = ["majority class", f"always {names[label]}"]
    for split in ("dev", "test"):
        if not p.has_split(split):
            cells += ["-", "-"]
            continue
        y = p.table(split, ["emotion"]).emotion.to_numpy()
        m = metrics_from(y, np.full_like(y, label), float("nan"), split, len(names))
        cells += [f"{m[f'{split}_wf1']:.3f}", f"{m[f'{split}_acc']:.3f}"]
    return cells
