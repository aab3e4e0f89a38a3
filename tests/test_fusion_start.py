"""A residual fusion starts as its better input and cannot end below it on dev: a noise modality is ignored."""

import json
import shutil

import numpy as np
import pytest
import yaml

from mer_search.core.errors import ConfigError
from mer_search.training.experiment import run
from mer_search.core.dirs import FeatureDir
from mer_search.training.features import extract_features


@pytest.fixture(scope="module")
def text_and_noise(prepared, tmp_path_factory):
    """Features of a trained text model, and a 'speech' feature dir of pure noise (vectors and log-probs)."""
    root = tmp_path_factory.mktemp("fusion_start")
    cfg = {"data": {"prepared": str(prepared), "batch_size": 16}, "train": {"epochs": 6, "lr": 1e-2},
           "model": {"name": "text_mlp", "emb_dim": 16, "hidden": [32]}}
    text = run(cfg, root / "text", seed=0)
    extract_features(root / "text" / "best.pt", root / "text_features")
    noise = FeatureDir(root / "noise_features")
    shutil.copytree(root / "text_features", noise.path)
    rng = np.random.default_rng(0)
    for split in ("train", "dev"):
        n, dim = np.load(noise.vectors(split)).shape
        np.save(noise.vectors(split), rng.normal(size=(n, dim)).astype(np.float32))
        logits = rng.normal(size=(n, 7))
        np.save(noise.logp(split), (logits - np.log(np.exp(logits).sum(1, keepdims=True))).astype(np.float32))
    manifest = json.loads(noise.manifest.read_text())
    noise.manifest.write_text(json.dumps({**manifest, "dev_wf1": 0.05}))
    return root, text


def _fusion(prepared, dirs, **model):
    return {"data": {"prepared": str(prepared), "batch_size": 16, "feature_dirs": dirs},
            "train": {"epochs": 4, "lr": 3e-3}, "model": {"name": "fusion", "kind": "residual", "dim": 16, **model}}


def test_the_extracted_features_carry_log_probabilities_and_the_dev_score(text_and_noise):
    root, text = text_and_noise
    d = FeatureDir(root / "text_features")
    logp = np.load(d.logp("dev"))
    assert logp.shape[1] == 7 and np.allclose(np.exp(logp).sum(1), 1, atol=1e-4)
    assert d.dev_score() == pytest.approx(text["dev_wf1"]) and d.finished()


@pytest.mark.parametrize("head", ["linear", "context"])
def test_fusion_with_a_noise_modality_is_the_other_modality_alone(prepared, text_and_noise, head):
    root, text = text_and_noise
    dirs = {"features_text": str(root / "noise_features"), "features_speech": str(root / "text_features")}
    m = run(_fusion(prepared, dirs, head=head), root / f"fused_{head}", seed=0)
    cfg = yaml.safe_load((root / f"fused_{head}" / "config.yaml").read_text())
    assert cfg["model"]["lead"] == "speech"           # the feature dir that scored higher on dev
    assert m["dev_wf1"] >= text["dev_wf1"] - 0.01, (m, text)
    assert m["dev_wf1"] >= text["dev_wf1"]            # by construction: the start is kept unless dev improves


def test_the_start_is_checkpointed_and_is_exactly_the_lead(prepared, text_and_noise, tmp_path):
    """Zero epochs that beat it: best.pt is the start (epoch 0) and scores exactly what the lead model did."""
    root, text = text_and_noise
    dirs = {"features_text": str(root / "text_features"), "features_speech": str(root / "noise_features")}
    cfg = _fusion(prepared, dirs)
    cfg["train"]["lr"] = 1e-9                      # training changes nothing worth keeping
    m = run(cfg, tmp_path / "still", seed=0)
    assert m["best_epoch"] == 0 and m["dev_wf1"] == pytest.approx(text["dev_wf1"])


def test_residual_fusion_refuses_joint_encoders(prepared, text_and_noise):
    from mer_search.models import build_model

    with pytest.raises(ConfigError, match="residual starts from two trained models"):
        build_model({"name": "fusion", "kind": "residual", "text_dim": 4, "speech_dim": 4,
                     "text_model": {"name": "text_mlp", "vocab_size": 10}})
    with pytest.raises(ConfigError, match="lead 'audio'"):
        build_model({"name": "fusion", "kind": "residual", "text_dim": 4, "speech_dim": 4, "lead": "audio"})
