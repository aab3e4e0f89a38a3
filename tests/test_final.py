"""From a sweep to a final model: export the best trial, train it over seeds (per-class report, confusion
matrix, W&B run), and train on train + dev."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from mer_search.cli import main
from mer_search.core.dirs import SweepDir

pytestmark = pytest.mark.ray      # the shared sweep fixture runs Ray


def test_export_then_train_round_trip(sweep_dir, tmp_path):
    best = tmp_path / "best.yaml"
    r = CliRunner().invoke(main, ["export", str(sweep_dir), "--out", str(best)])
    assert r.exit_code == 0, r.output
    exported = yaml.safe_load(best.read_text())
    table = SweepDir(sweep_dir).trials()
    per_trial = table.groupby("trial_id").dev_wf1.max()
    src = exported["source"]
    assert src["trial_id"] == per_trial.idxmax() and src["value"] == pytest.approx(per_trial.max())
    rows = table[table.trial_id == src["trial_id"]]
    assert exported["train"]["epochs"] == int(rows.loc[rows.dev_wf1.idxmax(), "training_iteration"])
    assert src["prepared_sha256"] == SweepDir(sweep_dir).load_plan().prepared_sha256
    assert exported["model"]["emb_dim"] == rows["config/model.emb_dim"].iloc[0]

    out = tmp_path / "final"
    r = CliRunner().invoke(main, ["train", str(best), "--seeds", "2", "--out", str(out), "--wandb", "offline"])
    assert r.exit_code == 0, r.output
    trained = yaml.safe_load((out / "seed_0" / "config.yaml").read_text())
    for section in ("data", "model", "train"):         # the trained config is the exported one (plus defaults)
        for key, value in exported[section].items():
            assert trained[section][key] == value, f"{section}.{key}"
    summary = json.loads((out / "summary.json").read_text())
    # seed 0 is the trial's own seed: same data order, same weights, same dev score at the exported epoch
    assert summary["per_seed"][0]["dev_wf1"] == pytest.approx(src["value"], abs=1e-9)
    assert summary["dev_wf1"]["std"] == pytest.approx(np.std([m["dev_wf1"] for m in summary["per_seed"]]))
    dev = pd.read_parquet(exported["data"]["prepared"] + "/dev.parquet")
    cm = np.array(summary["dev_confusion"])
    assert cm.sum() == 2 * len(dev) and (cm.sum(1) == 2 * np.bincount(dev.emotion, minlength=7)).all()
    assert summary["dev_per_class"]["support"] == np.bincount(dev.emotion, minlength=7).tolist()
    assert (out / "confusion_dev.png").stat().st_size > 5000
    assert "neutral" in r.output and "precision" in r.output and "weighted F1" in r.output
    assert list((out / "wandb").glob("offline-run-*/*.wandb"))


def test_export_rank_and_mistakes(sweep_dir, tmp_path):
    second = tmp_path / "second.yaml"
    assert CliRunner().invoke(main, ["export", str(sweep_dir), "--out", str(second), "--rank", "2"]).exit_code == 0
    best = pd.read_parquet(sweep_dir / "trials.parquet").groupby("trial_id").dev_wf1.max().sort_values()
    assert yaml.safe_load(second.read_text())["source"]["value"] == pytest.approx(best.iloc[-2])
    r = CliRunner().invoke(main, ["export", str(sweep_dir), "--rank", "99", "--out", str(tmp_path / "x.yaml")])
    assert r.exit_code == 1 and "the sweep has 12 trials" in r.stderr
    r = CliRunner().invoke(main, ["export", str(tmp_path)])
    assert r.exit_code == 1 and "not a sweep dir" in r.stderr


def test_train_on_train_plus_dev(prepared, tmp_path):
    from mer_search.data.corpus import ChainedBatches
    from mer_search.training.experiment import Experiment

    cfg = {"data": {"prepared": str(prepared), "batch_size": 8, "train_splits": ["train", "dev"]},
           "model": {"name": "text_mlp", "emb_dim": 16, "hidden": [16]}, "train": {"epochs": 2, "patience": 0}}
    exp = Experiment.setup(cfg, 0)
    corpus, tr = exp.corpus, exp.train_batches
    assert exp.dev_batches is None and isinstance(tr, ChainedBatches)
    rows = np.concatenate([b["labels"].numpy() for b in tr])
    assert len(rows) == len(corpus.table("train")) + len(corpus.table("dev"))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in cfg.items() if k != "data"} | {"data": {"batch_size": 8}}))
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", str(path), "--prepared", str(prepared), "--train-on", "train+dev",
                                  "--out", str(out), "--wandb", "disabled"])
    assert r.exit_code == 0, r.output
    assert "dev is not held out" in r.output
    summary = json.loads((out / "summary.json").read_text())
    assert "dev_wf1" not in summary and summary["per_seed"][0]["best_epoch"] == 2
    assert yaml.safe_load((out / "seed_0" / "config.yaml").read_text())["data"]["train_splits"] == ["train", "dev"]
