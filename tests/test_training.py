"""Training on a synthetic corpus: speech models learn, context and fusion run end to end, runs reproduce."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from mer_search.cli import main
from mer_search.core.dirs import RunDir
from mer_search.training.experiment import run
from mer_search.training.features import extract_features
from resume_check import crash_and_resume


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    from data_prep.prepare import PrepareOptions, prepare
    from data_prep.audio import AudioParams
    from data_prep.synth import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("train_corpus")
    synthesize(root / "raw", SynthConfig(dialogues=120, seed=5, long_clip_s=12.0))
    prepare(PrepareOptions(meld_root=root / "raw", out=root / "prepared", workers=2,
                           audio=AudioParams(functionals="egemaps")))
    return root / "prepared"


def majority_wf1(prepared) -> float:
    from sklearn.metrics import f1_score

    dev = pd.read_parquet(prepared / "dev.parquet")
    return f1_score(dev.emotion, np.zeros(len(dev), int), average="weighted")


def _cfg(prepared, model, epochs=12, lr=3e-3, **data):
    return {"data": {"prepared": str(prepared), "batch_size": 16, **data}, "model": model,
            "train": {"epochs": epochs, "lr": lr, "patience": 0}}


@pytest.mark.parametrize("model, lr", [
    ({"name": "speech_stats"}, 1e-2),
    ({"name": "speech_cnn2d", "channels": 20, "dropout": 0.1}, 3e-3),
    ({"name": "speech_cnn1d", "channels": 32, "dropout": 0.1}, 3e-3),
    ({"name": "speech_lstm", "hidden": 32, "layers": 1, "dropout": 0.1}, 3e-3),
    ({"name": "speech_functionals", "hidden": [64], "dropout": 0.1}, 3e-3),
], ids=lambda m: m["name"] if isinstance(m, dict) else str(m))
@pytest.mark.slow     # a 120-dialogue corpus, 5 models x 15 epochs; the default run: test_models (every speech model fits a tiny set) and test_speech
@pytest.mark.e2e
def test_speech_models_beat_the_majority_class(corpus_dir, tmp_path, model, lr):
    """On speech-like clips whose emotion cues overlap (a linear model on band statistics: ~0.55), every
    speech model with its default normalisation learns well clear of always-neutral."""
    m = run(_cfg(corpus_dir, model, epochs=15, lr=lr, class_balance="sqrt_weights"), tmp_path, seed=0)
    base = majority_wf1(corpus_dir)
    print(model["name"], m["dev_wf1"], base)
    assert m["dev_wf1"] > base + 0.1, (m["dev_wf1"], base)


def test_run_dir_and_reproducibility(prepared, tmp_path):
    cfg = _cfg(prepared, {"name": "text_mlp", "emb_dim": 16, "hidden": [32]}, epochs=4, class_balance="weights")
    a = run(cfg, tmp_path / "a", seed=3)
    b = run(cfg, tmp_path / "b", seed=3)
    assert a == b, "same seed on CPU must give the same metrics"
    for name in ("config.yaml", "history.json", "metrics.json", "best.pt", "last.pt"):
        assert (tmp_path / "a" / name).exists(), name
    hist = json.loads((tmp_path / "a" / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert {"train_loss", "dev_loss", "dev_acc", "dev_wf1", "dev_mf1", "dev_f1_0", "data_wait_share"} <= set(hist[0])
    ck = torch.load(tmp_path / "a" / "best.pt", weights_only=True)
    assert ck["config"]["model"]["vocab_size"] > 10 and ck["epoch"] == a["best_epoch"]


def test_a_two_stage_rerun_with_reuse_keeps_both_stages(prepared, tmp_path):
    """The refit and the final seeds reuse a finished two-stage run; a stage trained again since is not kept."""
    fast = {"epochs": 2, "lr": 1e-2, "patience": 0}
    two = {"data": {"prepared": str(prepared), "batch_size": 4}, "train": fast, "model": {"name": "context", "hidden": 8},
           "utterance_stage": {"data": {"prepared": str(prepared), "batch_size": 16}, "train": fast,
                               "model": {"name": "text_mlp", "emb_dim": 8, "hidden": [16]}}}
    first = run(two, tmp_path / "two", seed=0, reuse=True)
    stamps = {p: (tmp_path / "two" / p).stat().st_mtime_ns for p in ("best.pt", f"{RunDir.UTTERANCE}/best.pt")}
    assert run(two, tmp_path / "two", seed=0, reuse=True) == first
    assert {p: (tmp_path / "two" / p).stat().st_mtime_ns for p in stamps} == stamps
    run(two["utterance_stage"], tmp_path / "two" / RunDir.UTTERANCE, seed=0)      # the stage, trained anew
    run(two, tmp_path / "two", seed=0, reuse=True)
    assert (tmp_path / "two" / "best.pt").stat().st_mtime_ns != stamps["best.pt"]


@pytest.mark.slow     # the 120-dialogue corpus (~65 s to make); the default run trains both through the pipeline smoke test
@pytest.mark.e2e
def test_two_stage_context_and_joint(corpus_dir, tmp_path):
    text = {"name": "text_mlp", "emb_dim": 16, "hidden": [32], "dropout": 0.1}
    fast = {"epochs": 30, "lr": 1e-2, "patience": 0}
    two = {"data": {"prepared": str(corpus_dir), "batch_size": 4}, "train": fast,
           "model": {"name": "context", "hidden": 16},
           "utterance_stage": {"data": {"batch_size": 16}, "model": text, "train": fast}}
    m = run(two, tmp_path / "two", seed=0)
    feats = np.load(tmp_path / "two" / "features" / "dev.npy")
    assert feats.shape == (len(pd.read_parquet(corpus_dir / "dev.parquet")), 32)
    assert m["dev_wf1"] > majority_wf1(corpus_dir) + 0.15
    joint = {"data": {"prepared": str(corpus_dir), "batch_size": 4}, "train": fast,
             "model": {"name": "context", "hidden": 16, "rnn": "gru", "utterance": text}}
    assert run(joint, tmp_path / "joint", seed=0)["dev_wf1"] > majority_wf1(corpus_dir) + 0.15


@pytest.mark.slow     # the 120-dialogue corpus (~65 s to make); the default run trains both through the pipeline smoke test
@pytest.mark.e2e
def test_fusion_is_at_least_the_better_modality(corpus_dir, tmp_path):
    runs = {}
    for key, model, epochs, lr in (
            ("features_text", {"name": "text_mlp", "emb_dim": 16, "hidden": [32], "dropout": 0.1}, 30, 1e-2),
            ("features_speech", {"name": "speech_cnn1d", "channels": 16}, 12, 3e-3)):
        runs[key] = run(_cfg(corpus_dir, model, epochs=epochs, lr=lr), tmp_path / key, seed=0)
        extract_features(tmp_path / key / "best.pt", tmp_path / f"{key}_vectors")
    dirs = {k: str(tmp_path / f"{k}_vectors") for k in runs}
    best_single = max(r["dev_wf1"] for r in runs.values())
    for kind in ("concat", "gated", "late"):
        m = run(_cfg(corpus_dir, {"name": "fusion", "kind": kind, "dim": 16}, epochs=20, feature_dirs=dirs),
                tmp_path / f"fusion_{kind}", seed=0)
        # dev here has ~100 utterances: 0.03 is about three
        assert m["dev_wf1"] >= best_single - 0.03, (kind, m["dev_wf1"], {k: r["dev_wf1"] for k, r in runs.items()})


def test_cli_train_seeds_and_features(prepared, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"# mer-search train {cfg}\ndata: {{prepared: {prepared}, batch_size: 16}}\n"
                   "model: {name: speech_cnn1d, channels: 8}\ntrain: {epochs: 2}\n")
    r = CliRunner().invoke(main, ["train", str(cfg), "--seeds", "2", "--out", str(tmp_path / "run"), "--test",
                                  "--wandb", "disabled"])
    assert r.exit_code == 0, r.output
    assert "dev: weighted F1" in r.output and "+-" in r.output and "test: weighted F1" in r.output
    assert (tmp_path / "run" / "confusion_test.png").exists()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["seeds"] == 2 and len(summary["per_seed"]) == 2 and summary["dev_wf1"]["std"] >= 0
    r = CliRunner().invoke(main, ["features", str(tmp_path / "run" / "seed_0" / "best.pt"), "--out",
                                  str(tmp_path / "f")])
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "f" / "train.npy").shape[1] == 8
    keys = pd.read_parquet(tmp_path / "f" / "keys.parquet")
    for split in ("train", "dev", "test"):
        table = pd.read_parquet(prepared / f"{split}.parquet")
        k = keys[keys.split == split]
        assert k.row.tolist() == list(range(len(table))) == list(range(len(np.load(tmp_path / "f" / f"{split}.npy"))))
        assert (k.dialogue_id.to_numpy() == table.dialogue_id.to_numpy()).all()
        assert (k.utterance_id.to_numpy() == table.utterance_id.to_numpy()).all()


def test_bad_configs_fail_with_one_line(prepared, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"data: {{prepared: {prepared}}}\nmodel: {{name: text_mlp, width: 3}}\n")
    r = CliRunner().invoke(main, ["train", str(bad)])
    assert r.exit_code == 1 and "no argument(s) width" in r.stderr
    bad.write_text(f"data: {{prepared: {prepared}, batchsize: 3}}\nmodel: {{name: text_mlp}}\n")
    r = CliRunner().invoke(main, ["train", str(bad)])
    assert r.exit_code == 1 and "data: unknown key(s) batchsize" in r.stderr
    r = CliRunner().invoke(main, ["train", str(tmp_path / "nope.yaml")])
    assert r.exit_code == 1 and "no such config file" in r.stderr
    bad.write_text(f"data: {{prepared: {tmp_path / 'nowhere'}}}\nmodel: {{name: text_mlp}}\n")
    r = CliRunner().invoke(main, ["train", str(bad)])
    assert r.exit_code == 1 and "run `mer-search prepare` first" in r.stderr


@pytest.mark.parametrize("seed", range(6))
def test_f1_scores_equal_sklearn(seed):
    from sklearn.metrics import accuracy_score, f1_score

    from mer_search.training.train import metrics_from

    rng = np.random.default_rng(seed)
    n = [5, 40, 300, 1109, 7, 60][seed]
    labels = rng.choice(7, n, p=[0.47, 0.16, 0.12, 0.1, 0.07, 0.05, 0.03])
    preds = np.where(rng.random(n) < 0.5, labels, rng.choice([0, 1, 3], n))   # some classes never predicted
    m = metrics_from(labels, preds, 0.0, "dev", 7)
    assert m["dev_wf1"] == pytest.approx(f1_score(labels, preds, average="weighted", zero_division=0), abs=1e-12)
    assert m["dev_mf1"] == pytest.approx(f1_score(labels, preds, average="macro", zero_division=0), abs=1e-12)
    assert m["dev_acc"] == pytest.approx(accuracy_score(labels, preds), abs=1e-12)
    per = f1_score(labels, preds, average=None, labels=list(range(7)), zero_division=0)
    assert [m[f"dev_f1_{i}"] for i in range(7)] == pytest.approx(per.tolist(), abs=1e-12)


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_a_resumed_trial_continues_exactly_as_an_unbroken_one(prepared, tmp_path, schedule):
    """Crash after epoch 2, resume from last.pt: epochs 3-5 match the unbroken run to the last bit
    (same shuffles and dropout per epoch, optimizer moments, schedule and early-stopping state restored)."""
    cfg = _cfg(prepared, {"name": "text_mlp", "emb_dim": 16, "hidden": [16], "dropout": 0.3}, epochs=5, lr=1e-2)
    cfg["train"].update(schedule=schedule, patience=0)
    unbroken, crashed, resumed = crash_and_resume(cfg, tmp_path, crash_after=2, seed=3)
    assert sorted(resumed) == [3, 4, 5]
    for epoch in (3, 4, 5):
        assert resumed[epoch] == unbroken[epoch], epoch
    assert crashed[2] == unbroken[2]


def test_a_final_training_pins_its_cpu_threads(prepared, tmp_path):
    """Like a trial (its CPU share), a final training fixes torch's threads: train.threads, or 0 = the CPUs
    this process may run on; never torch's default beside another torch process."""
    import os

    import torch

    from mer_search.training.experiment import run

    before = torch.get_num_threads()
    cfg = {"data": {"prepared": str(prepared), "batch_size": 16}, "model": {"name": "text_mlp", "hidden": [8]},
           "train": {"epochs": 1, "patience": 0, "threads": 1}}
    try:
        run(cfg, tmp_path / "one")
        assert torch.get_num_threads() == 1
        run({**cfg, "train": {**cfg["train"], "threads": 0}}, tmp_path / "all")
        assert torch.get_num_threads() == len(os.sched_getaffinity(0))
        config = tmp_path / "c.yaml"                # `mer-search train --threads` overrides the config's
        config.write_text(json.dumps({**cfg, "train": {**cfg["train"], "threads": 0}}))
        torch.set_num_threads(3)
        res = CliRunner().invoke(main, ["train", str(config), "--threads", "1", "--out", str(tmp_path / "cli"),
                                        "--wandb", "disabled"])
        assert res.exit_code == 0, res.output
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
