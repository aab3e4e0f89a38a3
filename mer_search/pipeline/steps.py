"""The steps of one stage, and of the study around the stages: each says what it writes, how it knows that
is whole, and how to make it (`runner.Step`). `Pipeline.steps` lists them in order."""

from __future__ import annotations

import logging
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from mer_search.core.dirs import FeatureDir, RunDir, SweepDir, read_json
from mer_search.pipeline.runner import Step
from mer_search.pipeline.stages import Stage, sweep_epochs
from mer_search.training.export import readable_config


def stage_steps(pipe, stage: Stage) -> Iterator[Step]:
    """sweep, report, export (or the fixed config), final training, features (when later stages read them)."""
    d = pipe.dir
    sweep = SweepDir(d.sweep(stage.name))
    if stage.space is not None:
        yield Step(f"sweep {stage.name}", sweep.path, lambda: sweep.status()["finished"],
                   lambda: run_sweep(pipe, stage))
        yield Step(f"report {stage.name}", sweep.report_dir, lambda: (sweep.report_dir / "index.html").exists(),
                   lambda: _write_report(sweep.path))
        yield Step(f"export {stage.name}", d.config(stage.name), lambda: readable_config(d.config(stage.name)),
                   lambda: export(pipe, stage))
    else:
        yield Step(f"config {stage.name}", d.config(stage.name), lambda: readable_config(d.config(stage.name)),
                   lambda: fixed_config(pipe, stage))
    final = RunDir(d.final(stage.name))
    yield Step(f"final training {stage.name}", final.path, final.finished, lambda: train_final(pipe, stage))
    if stage.produces_features:
        features = FeatureDir(d.features(stage.name))
        yield Step(f"features {stage.name}", features.path, features.finished, lambda: extract(pipe, stage))


def run_sweep(pipe, stage: Stage) -> None:
    from mer_search.search.sweep import SweepOptions, run_sweep as sweep

    d, opts = SweepDir(pipe.dir.sweep(stage.name)), pipe.opts
    sweep(SweepOptions(space=str(stage.space), prepared=str(pipe.dir.prepared), out=d.path, resume=d.holds_sweep(),
                       num_samples=pipe.budget["num_samples"],
                       max_epochs=sweep_epochs(pipe.budget["max_epochs"], stage.space),
                       cpus_per_trial=opts.cpus_per_trial, gpus_per_trial=opts.gpus_per_trial, address=opts.address,
                       seed=opts.seed, wandb=opts.wandb, feature_dirs=pipe.feature_dirs(stage),
                       time_budget_s=pipe.sweep_budget_s(stage)))


def _write_report(sweep_dir: Path) -> None:
    from mer_search.search.report import write_report

    write_report(sweep_dir)


def export(pipe, stage: Stage) -> None:
    """The best trial's config; with refit (the budget's), the best on dev of the top K trained again."""
    from mer_search.training.export import exported_config, write_config

    with _quiet("mer_search.training.experiment"):            # no config dump per refit
        cfg = exported_config(pipe.dir.sweep(stage.name), refit=pipe.budget["refit"], seed=pipe.opts.seed,
                              reporter=_Quiet())
    write_config(pipe.dir.config(stage.name), cfg)


def fixed_config(pipe, stage: Stage) -> None:
    """A stage that is not searched (the speech floor): its shipped config, on this study's data."""
    from mer_search.training.config import load_config
    from mer_search.training.export import write_config

    cfg = load_config(stage.config)
    cfg["data"]["prepared"] = str(pipe.dir.prepared)
    write_config(pipe.dir.config(stage.name), cfg)


def train_final(pipe, stage: Stage) -> None:
    from mer_search.training.config import load_config
    from mer_search.training.experiment import run_seeds

    d = pipe.dir.final(stage.name)
    cfg = load_config(pipe.dir.config(stage.name))
    _seed_from_refit(pipe, stage, cfg, RunDir(d))
    with _quiet("mer_search.training.experiment"):            # no config dump per seed
        summary = run_seeds(cfg, d, stage.seeds or pipe.budget["seeds"], reporter=_Quiet(), reuse=True,
                            splits=("dev", "test") if pipe.opts.with_test else ("dev",))
    if pipe.opts.wandb != "disabled":
        from mer_search.training.wandb_runs import log_final

        log_final(summary, cfg, d, stage.name, pipe.opts.wandb)


def _seed_from_refit(pipe, stage: Stage, cfg: dict, final: RunDir) -> None:
    """The refit that chose the exported config trained it on all of train with this seed already: where
    its config is the final one (dev peaked at its last epoch), it is the final training's first seed
    (checked config for config by run(reuse=True), which trains it again otherwise)."""
    from mer_search.training.config import first_seed

    refit = (cfg.get("source") or {}).get("refit")
    if not refit or refit.get("seed") != first_seed(cfg) or final.seed(refit["seed"]).path.exists():
        return
    chosen = SweepDir(pipe.dir.sweep(stage.name)).refit_run(cfg["source"]["trial_id"])
    if chosen.metrics.exists() and chosen.best.exists():
        shutil.copytree(chosen.path, final.seed(refit["seed"]).path)


def extract(pipe, stage: Stage) -> None:
    """Later stages read the features of this stage's final seed that scored best on dev."""
    from mer_search.training.features import extract_features

    d = FeatureDir(pipe.dir.features(stage.name))
    before = read_json(d.manifest)      # written by an older version: from the same model again
    source = before["checkpoint"] if isinstance(before, dict) and "checkpoint" in before \
        else pipe.chosen_seed(stage.name).best      # (later stages were trained on its features)
    extract_features(source, d.path)


def bundle_step(pipe) -> Step:
    """The answer as one folder: the ensemble where it is the answer, else the best row's model (its seed best
    on dev), with every model they read. Whole when it bundles the very checkpoints the answer is now, written
    after them."""
    from mer_search.serving.bundle import BUNDLE_JSON

    def current() -> bool:
        made = read_json(pipe.dir.bundle / BUNDLE_JSON)
        paths = answer_checkpoints(pipe)
        return isinstance(made, dict) and made["card"].get("checkpoints", [made["card"].get("checkpoint")]) == \
            [str(p) for p in paths] and \
            all((pipe.dir.bundle / BUNDLE_JSON).stat().st_mtime >= p.stat().st_mtime for p in paths)

    return Step("bundle", pipe.dir.bundle, current, lambda: write_answer(pipe))


def answer_checkpoints(pipe) -> list[Path]:
    from mer_search.pipeline.ensemble_step import chosen

    made = chosen(pipe)
    if made is not None:
        return [Path(m["checkpoint"]) for m in made["members"]]
    return [pipe.chosen_seed(pipe.best_row()[0].name).best]


def write_answer(pipe) -> None:
    from mer_search.pipeline.ensemble_step import chosen, describe
    from mer_search.serving.bundle import write_bundle

    made = chosen(pipe)
    if made is not None:
        scores = {f"ensemble, {split}": f"{made[f'{split}_wf1']:.4f}" for split in ("dev", "test")
                  if f"{split}_wf1" in made}
        scores["ensemble, dev cross-validated over dev folds"] = f"{made['cv']:.4f} (one model: " \
                                                                 f"{made['cv_single']:.4f})"
        paths = [m["checkpoint"] for m in made["members"]]
        write_bundle(paths, pipe.dir.bundle, weights=[m["weight"] for m in made["members"]],
                     card={"row": f"ensemble: {describe(made)}", "stage": "ensemble", "scores": scores,
                           "checkpoints": paths})
        return
    stage, summary = pipe.best_row()
    seed = pipe.chosen_seed(stage.name)
    metrics = read_json(seed.metrics)
    scores = {f"row ({summary['seeds']} seeds), {split}": f"{m['mean']:.4f} +- {m['std']:.4f}"
              for split in ("dev", "test") if (m := summary.get(f"{split}_wf1"))}
    scores.update({f"this model (seed {metrics['seed']}), {split}": f"{metrics[f'{split}_wf1']:.4f}"
                   for split in ("dev", "test") if f"{split}_wf1" in metrics})
    scores.update({f"this model (seed {metrics['seed']}), {split} micro F1": f"{metrics[f'{split}_microf1']:.4f}"
                   for split in ("dev", "test") if f"{split}_microf1" in metrics})   # a micro-F1 dataset's
    write_bundle(seed.best, pipe.dir.bundle, card={"row": stage.row, "stage": stage.name, "scores": scores,
                                                    "checkpoint": str(seed.best)})


@contextmanager
def _quiet(logger: str):
    quiet = logging.getLogger(logger)
    level, _ = quiet.level, quiet.setLevel(logging.WARNING)
    try:
        yield
    finally:
        quiet.setLevel(level)


class _Quiet:
    def report(self, epoch: int, metrics: dict) -> None:
        pass
