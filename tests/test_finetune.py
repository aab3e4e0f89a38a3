"""text_finetune: the dialogue window, the token cache, training, exact resume, features, predict, errors.

Tiny on purpose: the synthetic corpus (47 train / 12 dev utterances), one to three epochs, the offline MiniLM
where a test is about MiniLM and a 2-layer random encoder where the encoder does not matter."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import mer_search.data.dialogue_text as dt
from mer_search.cli import main
from mer_search.data.dialogue_text import DialogueSequences, assemble, utterance_string
from mer_search.data.encoders import DEFAULT_ENCODER, load_tokenizer
from mer_search.training.experiment import run
from mer_search.training.features import extract_features
from mer_search.models import build_model
from mer_search.training.train import load_checkpoint
from resume_check import crash_and_resume
from tiny_encoder import tiny_encoder

CLS, SEP = 1, 2


def test_assemble_orders_and_truncates_from_the_far_end():
    target, p1, p2, f1 = np.array([50, 51, 52]), np.array([10, 11]), np.array([20, 21, 22]), np.array([90, 91, 92])
    ids, a, b = assemble(target, [p1, p2], [], 100, CLS, SEP)
    assert ids.tolist() == [1, 20, 21, 22, 2, 10, 11, 2, 50, 51, 52, 2]          # dialogue order
    assert ids[a:b].tolist() == [50, 51, 52]
    assert assemble(target, [], [], 100, CLS, SEP)[0].tolist() == [1, 50, 51, 52, 2]   # window 0: alone
    assert assemble(target, [p1, p2], [], 8, CLS, SEP)[0].tolist() == [1, 10, 11, 2, 50, 51, 52, 2]
    # one token of room left: the nearest utterance keeps its end (the side next to the target)
    assert assemble(target, [p1, p2], [], 7, CLS, SEP)[0].tolist() == [1, 11, 2, 50, 51, 52, 2]
    # nearest first on both sides; the future utterance that no longer fits keeps its beginning
    ids, a, b = assemble(target, [p1, p2], [f1], 11, CLS, SEP)
    assert ids.tolist() == [1, 10, 11, 2, 50, 51, 52, 2, 90, 91, 2] and ids[a:b].tolist() == [50, 51, 52]
    # a target longer than max_length itself is the only case where the target is cut
    ids, a, b = assemble(np.arange(100, 120), [p1], [], 10, CLS, SEP)
    assert len(ids) == 10 and ids[a:b].tolist() == list(range(100, 108))


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(DEFAULT_ENCODER)


def _dialogue(table, d):
    return table[table.dialogue_id == d].sort_values("utterance_id")


def test_window_on_a_known_dialogue(prepared, tokenizer):
    table = pd.read_parquet(prepared / "dev.parquet")
    enc = {r: tokenizer(utterance_string(s, t), add_special_tokens=False)["input_ids"]
           for r, (s, t) in enumerate(zip(table.speaker, table.text))}
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    seqs = DialogueSequences(prepared, "dev", table, DEFAULT_ENCODER, context_window=2, future_window=0,
                             max_length=128)
    d0 = _dialogue(table, 0).index.to_numpy()
    r = d0[3]                                   # the 4th utterance: the 2nd and 3rd come before it, in order
    expect = [cls, *enc[d0[1]], sep, *enc[d0[2]], sep, *enc[r], sep]
    assert seqs.ids[r].tolist() == expect
    text = tokenizer.decode(seqs.ids[r])
    for row in (d0[1], d0[2], r):               # speakers named: "Speaker: text"
        assert f"{table.speaker[row].lower()} :" in text
    a, b = seqs.span[r]
    assert seqs.ids[r][a:b].tolist() == enc[r]
    first = _dialogue(table, 1).index[0]        # a dialogue's first utterance: nothing from dialogue 0 before it
    assert seqs.ids[first].tolist() == [cls, *enc[first], sep]
    alone = DialogueSequences(prepared, "dev", table, DEFAULT_ENCODER, 0, 0, 128)
    assert all(alone.ids[i].tolist() == [cls, *enc[i], sep] for i in range(len(table)))
    short = DialogueSequences(prepared, "dev", table, DEFAULT_ENCODER, 6, 1, 16)
    for i in range(len(table)):
        a, b = short.span[i]
        assert len(short.ids[i]) <= 16 and short.ids[i][a:b].tolist() == enc[i][:14]


def test_token_cache_is_reused_by_later_trials(prepared, monkeypatch):
    table = pd.read_parquet(prepared / "dev.parquet")
    DialogueSequences(prepared, "dev", table, DEFAULT_ENCODER, 1, 0, 64)
    files = sorted((prepared / "tokens").rglob("dev_*.npy"))
    stamps = [f.stat().st_mtime_ns for f in files]
    assert len(files) == 2

    class NoTokenizing:        # the special tokens may be read; tokenizing again would be the cache failing
        def __init__(self, tok):
            self.tok = tok

        def __getattr__(self, name):
            return getattr(self.tok, name)

        def __call__(self, *a, **k):
            raise AssertionError("tokenized again: the cache was not used")

    real = dt.load_tokenizer
    monkeypatch.setattr(dt, "load_tokenizer", lambda name: NoTokenizing(real(name)))
    other = DialogueSequences(prepared, "dev", table, DEFAULT_ENCODER, 4, 1, 96)   # another trial's choices
    assert len(other.ids) == len(table)
    assert [f.stat().st_mtime_ns for f in files] == stamps
    changed = table.copy()                     # the table prepared again with other text: not served stale
    changed.loc[0, "text"] = "something else entirely"
    with pytest.raises(AssertionError, match="tokenized again"):
        DialogueSequences(prepared, "dev", changed, DEFAULT_ENCODER, 1, 0, 64)


def _cfg(prepared, model, epochs=2, **train):
    return {"data": {"prepared": str(prepared), "batch_size": 8, "context_window": 2, "max_tokens": 64},
            "model": model,
            "train": {"epochs": epochs, "lr": 1e-4, "head_lr": 3e-3, "optimizer": "adamw", "schedule": "linear",
                      "warmup_ratio": 0.1, "patience": 0, **train}}


@pytest.fixture(scope="module")
def minilm_run(prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("finetune")
    metrics = run(_cfg(prepared, {"name": "text_finetune", "pooling": "cls"}, epochs=3), out, seed=0)
    return out, metrics


@pytest.mark.e2e     # fine-tunes MiniLM for 3 epochs (the shared minilm_run)
def test_minilm_builds_offline_and_learns(minilm_run):
    out, metrics = minilm_run
    model = build_model({"name": "text_finetune"})
    assert model.feature_dim == 384 and model.use_segments
    assert sum(p.numel() for p in model.parameters()) == metrics["params"] > 22_000_000
    losses = [e["train_loss"] for e in json.loads((out / "history.json").read_text())]
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.e2e     # fine-tunes MiniLM for 3 epochs (the shared minilm_run)
def test_checkpoint_round_trip_and_features(minilm_run, prepared, tmp_path):
    out, metrics = minilm_run
    ck = load_checkpoint(out / "best.pt")          # weights_only=True: no pickled tokenizer or model objects
    assert all(torch.is_tensor(v) for v in ck["state_dict"].values())
    # AdamW's moments (twice the weights) only where resume reads them
    assert "optimizer" not in ck and "optimizer" in load_checkpoint(out / "last.pt")
    assert (out / "best.pt").stat().st_size < 0.5 * (out / "last.pt").stat().st_size
    feats = extract_features(out / "best.pt", tmp_path / "f")
    train = np.load(feats / "train.npy")
    assert train.shape == (len(pd.read_parquet(prepared / "train.parquet")), 384) and np.isfinite(train).all()
    # the context stage reads them as it reads any utterance model's features
    ctx = run({"data": {"prepared": str(prepared), "batch_size": 4, "feature_dirs": {"features": str(feats)}},
               "model": {"name": "context", "hidden": 16}, "train": {"epochs": 2, "patience": 0}},
              tmp_path / "ctx", seed=0)
    assert 0 <= ctx["dev_wf1"] <= 1 and ctx["best_epoch"] in (1, 2)


@pytest.mark.e2e     # fine-tunes MiniLM for 3 epochs (the shared minilm_run)
def test_predict_reproduces_dev_scores(minilm_run, synth_corpus, tmp_path):
    out, metrics = minilm_run
    r = CliRunner().invoke(main, ["predict", str(out / "best.pt"), "--csv", str(synth_corpus / "dev_sent_emo.csv"),
                                  "--out", str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    assert f"weighted F1 {metrics['dev_wf1']:.4f}" in r.output, (r.output, metrics["dev_wf1"])
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(pd.read_csv(synth_corpus / "dev_sent_emo.csv"))


def test_resume_is_exact(prepared, tmp_path):
    """Crash after epoch 1, resume from last.pt: the step-wise warmup/decay, accumulation and AdamW moments carry
    on as in the unbroken run, to the last bit."""
    cfg = _cfg(prepared, {"name": "text_finetune", "encoder": str(tiny_encoder()), "dropout": 0.2}, epochs=3,
               grad_accum=2, label_smoothing=0.1, layer_decay=0.8, weight_decay=0.01)
    cfg["train"]["lr"] = 1e-3
    unbroken, crashed, resumed = crash_and_resume(cfg, tmp_path, crash_after=1, seed=1)
    assert sorted(resumed) == [2, 3]
    assert crashed[1] == unbroken[1]
    for epoch in (2, 3):
        assert resumed[epoch] == unbroken[epoch], epoch
    assert unbroken[3]["lr"] < unbroken[1]["lr"]      # the linear decay ran


def test_layer_wise_lr_and_frozen_layers():
    model = build_model({"name": "text_finetune", "encoder": str(tiny_encoder()), "freeze_layers": 1})
    groups = model.param_groups(1e-3, 1e-2, 0.5, 0.01)
    lrs = sorted({g["lr"] for g in groups})
    assert lrs == pytest.approx([1e-3, 1e-2])       # block 0 and embeddings frozen; block 1 at lr; head at head_lr
    trained = {id(p) for g in groups for p in g["params"]}
    assert not any(id(p) in trained for p in model.encoder.embeddings.parameters())
    model = build_model({"name": "text_finetune", "encoder": str(tiny_encoder())})
    lrs = sorted({g["lr"] for g in model.param_groups(1e-3, None, 0.5, 0.0)})
    assert lrs == pytest.approx([2.5e-4, 5e-4, 1e-3])   # embeddings, block 0, block 1 (+ head at lr)


def test_missing_or_broken_encoder_is_one_line(prepared, tmp_path):
    cfg = tmp_path / "c.yaml"
    for encoder, says in ((tmp_path / "nowhere", "not a model folder (no config.json)"),
                          (tmp_path / "broken", "cannot load its")):
        if encoder.name == "broken":
            encoder.mkdir()
            (encoder / "config.json").write_text("{not json")
        cfg.write_text(f"data: {{prepared: {prepared}}}\nmodel: {{name: text_finetune, encoder: {encoder}}}\n")
        r = CliRunner().invoke(main, ["train", str(cfg), "--out", str(tmp_path / "o")])
        assert r.exit_code == 1, r.output
        assert says in r.stderr and f"encoder {encoder}" in r.stderr and len(r.stderr.strip().splitlines()) == 1, \
            r.stderr


def test_cuda_asked_on_a_cpu_machine_warns_and_trains_on_cpu(caplog):
    from mer_search.training.train import pick_device

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with caplog.at_level("WARNING"):
        assert pick_device("cuda").type == "cpu"
    assert "no CUDA device" in caplog.text


SPACE = """# mer-search sweep {path} --prepared PREPARED
search: {{metric: dev_wf1, mode: max, max_epochs: 2, grace_period: 1, reduction_factor: 2, num_samples: 3,
         sampler: tpe}}
fixed:
  model.name: text_finetune
  model.encoder: {encoder}
  train.optimizer: adamw
  train.schedule: linear
  data.train_fraction: 0.5
final:
  data.train_fraction: 1.0
params:
  data.context_window: {{type: int, low: 0, high: 3}}
  train.lr: {{type: float, low: 1.0e-4, high: 1.0e-3, log: true}}
  model.pooling: {{type: categorical, choices: [mean, cls, target]}}
"""


@pytest.mark.ray
def test_sweep_on_a_gpu_request_without_gpus_then_export_and_train(prepared, tmp_path, monkeypatch, caplog):
    """A real Ray sweep of text_finetune: --gpus-per-trial 0.5 on a machine without GPUs trains on CPUs with one
    warning; the trials share one token cache; export gives back all of train and keeps the trial's schedule."""
    import ray
    import yaml

    from mer_search.training.export import export_config
    from mer_search.search.sweep import SweepOptions, run_sweep

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    space = tmp_path / "ft.yaml"
    space.write_text(SPACE.format(path=space, encoder=tiny_encoder()))
    with caplog.at_level("WARNING"):
        try:
            run_sweep(SweepOptions(space=str(space), prepared=str(prepared), out=tmp_path / "sweep", seed=0,
                                   gpus_per_trial=0.5, wandb="disabled"))
        finally:
            ray.shutdown()
    assert "the Ray cluster has no GPU: trials train on CPUs" in caplog.text
    trials = pd.read_parquet(tmp_path / "sweep" / "trials.parquet")
    assert trials.trial_id.nunique() == 3 and not trials.error.astype(bool).any()
    caches = [d for d in (prepared / "tokens").iterdir() if d.name.startswith("tiny-bert-v1-types2")]
    assert len(caches) == 1 and sorted(p.name for p in caches[0].glob("*.npy")) == [
        "dev_ids.npy", "dev_offsets.npy", "train_ids.npy", "train_offsets.npy"]
    cfg = export_config(tmp_path / "sweep")
    assert cfg["data"]["train_fraction"] == 1.0 and cfg["train"]["schedule_epochs"] == 2
    assert cfg["model"]["name"] == "text_finetune" and cfg["train"]["epochs"] in (1, 2)
    (tmp_path / "best.yaml").write_text(yaml.safe_dump(cfg))
    m = run(cfg, tmp_path / "final", seed=0)
    assert 0 <= m["dev_wf1"] <= 1


def test_pipeline_text_space_and_epochs(tmp_path):
    from mer_search.pipeline import PipelineOptions, Pipeline, stages, sweep_epochs
    from mer_search.search.space import SHIPPED as SPACES

    assert stages(True, "text_finetune")[0].space.resolve() == SPACES / "text_finetune.yaml"
    assert stages(True)[0].space.resolve() == SPACES / "text_any.yaml"
    assert sweep_epochs(10, SPACES / "text_finetune.yaml") == 3       # the space needs fewer than the budget gives
    assert sweep_epochs(10, SPACES / "text_any.yaml") == 10
    assert sweep_epochs(None, SPACES / "text_any.yaml") == 30
    with pytest.raises(ValueError, match="no space named 'text_bert' .*; shipped spaces: .*text_finetune"):
        Pipeline(PipelineOptions(meld_root=tmp_path, out=tmp_path / "o", text_space="text_bert"))
