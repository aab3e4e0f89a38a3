"""Adding a model is one file plus one space: a toy model registered outside the package (MER_SEARCH_MODELS)
validates, sweeps and is labelled with nothing else in mer-search touched."""

import os
import subprocess
import sys

import pytest

from mer_search import models
from mer_search.core.dirs import SweepDir

TOY = '''
import torch
from torch import nn

from mer_search.models import fill_vocab_size, register
from mer_search.models.common import Classifier


class BagOfEmbeddings(Classifier):
    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab_size, dim, mode="mean")
        self.init_head(dim)

    def features(self, batch):
        tokens, lengths = batch["tokens"], batch["token_lengths"]
        mask = torch.arange(tokens.shape[1])[None, :] < lengths[:, None]
        return self.embed(tokens, per_sample_weights=None, offsets=None) if False else \\
            (self.embed.weight[tokens] * mask[..., None]).sum(1) / lengths.clamp(min=1)[:, None]


@register("toy_bag", inputs={"tokens"}, sizes={"vocab_size": fill_vocab_size},
          label=lambda cfg: f"toy bag of {cfg.get('dim', 8)}-d embeddings")
def toy_bag(vocab_size: int, dim: int = 8):
    return BagOfEmbeddings(vocab_size, dim)


@register("toy_tokenized", inputs={"dialogue_text"}, tokenizer=lambda cfg: cfg.get("encoder", "toy-encoder"))
def toy_tokenized(encoder: str = "toy-encoder"):
    raise NotImplementedError("only registered: the data side reads its tokenizer")
'''

SPACE = """# mer-search sweep toy.yaml --prepared PREPARED
search: {metric: dev_wf1, max_epochs: 2, grace_period: 1, reduction_factor: 2, num_samples: 2, sampler: random}
fixed: {model.name: toy_bag, data.batch_size: 16}
params:
  model.dim: {type: int, low: 4, high: 16}
  train.lr: {type: float, low: 1e-3, high: 3e-2, log: true}
"""


@pytest.fixture
def toy_env(tmp_path, monkeypatch):
    """The toy module and its space in tmp_path; afterwards this process forgets the toy model again."""
    yield _toy_env(tmp_path)
    models.REGISTRY.pop("toy_bag", None)
    models.REGISTRY.pop("toy_tokenized", None)
    models._loaded.discard("toy_model")
    sys.modules.pop("toy_model", None)


def _toy_env(tmp_path):
    (tmp_path / "toy_model.py").write_text(TOY)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           models.PLUGINS_ENV: "toy_model", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    (tmp_path / "toy.yaml").write_text(SPACE)
    return env


def _cli(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "mer_search.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=400)


def test_a_plugin_model_is_known_everywhere(tmp_path, toy_env, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(models.PLUGINS_ENV, "toy_model")
    assert "toy_bag" in models.model_names()
    assert models.required_inputs({"name": "toy_bag"}) == {"tokens"} and not models.needs_dialogues({"name": "toy_bag"})
    assert "vocab_size" in models.derived_arguments()
    assert models.model_label({"name": "toy_bag", "dim": 12}) == "toy bag of 12-d embeddings"
    # the tokenizer a model's text needs is its own registration, found inside a context model too
    assert models.finetuned_encoder({"name": "toy_bag"}) is None
    assert models.finetuned_encoder({"name": "toy_tokenized"}) == "toy-encoder"
    assert models.finetuned_encoder({"name": "context", "utterance": {"name": "toy_tokenized", "encoder": "e2"}}) == "e2"

    class Sizes:
        vocab_size, n_mels = 50, 40

        def vector_dim(self, kind):
            raise AssertionError("toy_bag reads no vectors")

    assert models.resolve_sizes({"name": "toy_bag", "dim": 4}, Sizes()) == {"name": "toy_bag", "dim": 4, "vocab_size": 50}


def test_a_missing_plugin_module_is_named(monkeypatch):
    monkeypatch.setenv(models.PLUGINS_ENV, "no_such_model_module")
    with pytest.raises(models.ConfigError, match="MER_SEARCH_MODELS: cannot import 'no_such_model_module'"):
        models.model_names()


@pytest.mark.ray
def test_a_plugin_model_sweeps(tmp_path, toy_env, prepared):
    r = _cli(["spaces", "validate", "toy.yaml"], toy_env, tmp_path)
    assert r.returncode == 0 and "ok    toy.yaml (2 parameters, 2 trials, random)" in r.stdout, r.stderr
    bare = {k: v for k, v in toy_env.items() if k != models.PLUGINS_ENV}
    r = _cli(["spaces", "validate", "toy.yaml"], bare, tmp_path)            # without it: an unknown model
    assert r.returncode == 1 and "unknown model 'toy_bag'" in r.stderr
    r = _cli(["sweep", "toy.yaml", "--prepared", str(prepared), "--out", "sweep", "--wandb", "disabled"], toy_env,
             tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    table = SweepDir(tmp_path / "sweep").trials()
    assert table.trial_id.nunique() == 2 and table["config/model.dim"].between(4, 16).all()
    assert table.dev_wf1.notna().all() and table.error.eq("").all()


def test_the_class_count_comes_from_labels_json(prepared, tmp_path):
    """Every classifier gets as many outputs as the prepared data's labels.json names (here one more than
    MELD's seven), and the metrics follow the model's width."""
    import json
    import shutil

    import yaml

    from mer_search.training.experiment import run

    data = tmp_path / "prepared"
    shutil.copytree(prepared, data)
    labels = json.loads((data / "labels.json").read_text())
    labels["emotion"].append("confusion")
    (data / "labels.json").write_text(json.dumps(labels))
    cfg = {"data": {"prepared": str(data), "batch_size": 16}, "model": {"name": "text_mlp", "hidden": [8]},
           "train": {"epochs": 1, "patience": 0}}
    m = run(cfg, tmp_path / "run")
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["model"]["num_classes"] == 8
    assert len(m["dev_per_class"]["f1"]) == 8 and len(m["dev_confusion"]) == 8


def test_walk_visits_every_nested_model_once_with_its_path():
    cfg = {"name": "fusion", "text_model": {"name": "context", "utterance": {"name": "text_mlp"}},
           "speech_model": {"name": "speech_stats"}}
    assert [(where, node["name"]) for where, node in models.walk(cfg)] == [
        ("model", "fusion"), ("model.text_model", "context"), ("model.text_model.utterance", "text_mlp"),
        ("model.speech_model", "speech_stats")]
