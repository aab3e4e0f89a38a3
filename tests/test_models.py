"""Every model in the registry: builds, shapes, learns, stable features, checkpoint round trip, padding-blind."""

import copy

import numpy as np
import pytest
import torch

from mer_search.models import build_model, model_names, needs_dialogues, required_inputs
from mer_search.training.train import CheckpointWriter, load_checkpoint
from tiny_encoder import tiny_encoder

V, M, D = 50, 40, 16
TEXT = {"name": "text_lstm", "vocab_size": V, "emb_dim": 8, "hidden": 8}
SPEECH = {"name": "speech_cnn1d", "n_mels": M, "channels": 8}
CONFIGS = {
    "text_mlp": {"name": "text_mlp", "vocab_size": V, "emb_dim": 16, "hidden": [32, 16], "dropout": 0.1},
    "text_lstm": {"name": "text_lstm", "vocab_size": V, "emb_dim": 16, "hidden": 16, "layers": 2, "dropout": 0.1},
    "text_lstm_last_uni": {"name": "text_lstm", "vocab_size": V, "emb_dim": 16, "hidden": 16, "layers": 1,
                           "bidirectional": False, "pooling": "last", "head_hidden": [16], "dropout": 0.1},
    "text_lstm_max_bi_last": {"name": "text_lstm", "vocab_size": V, "emb_dim": 16, "hidden": 16,
                              "pooling": "last", "dropout": 0.1},
    "text_transformer": {"name": "text_transformer", "vocab_size": V, "emb_dim": 16, "layers": 1, "heads": 4,
                         "dropout": 0.0},
    "text_pretrained": {"name": "text_pretrained", "input_dim": D, "hidden": [32], "dropout": 0.1},
    "text_finetune": {"name": "text_finetune", "encoder": str(tiny_encoder()), "pooling": "cls", "dropout": 0.1},
    "text_finetune_target_no_segments": {"name": "text_finetune", "encoder": str(tiny_encoder(segments=False)),
                                         "pooling": "target", "dropout": 0.0},
    "text_finetune_mean_frozen_checkpointed": {"name": "text_finetune", "encoder": str(tiny_encoder()),
                                               "pooling": "mean", "freeze_layers": 1, "gradient_checkpointing": True},
    "speech_cnn2d": {"name": "speech_cnn2d", "n_mels": M, "channels": 8, "dropout": 0.1},
    "speech_cnn2d_reference": {"name": "speech_cnn2d", "n_mels": M, "channels": 8, "norm": "utterance",
                               "freq": "average", "pooling": "max"},
    "speech_cnn1d": {"name": "speech_cnn1d", "n_mels": M, "channels": 16, "dropout": 0.1},
    "speech_cnn1d_band_stats": {"name": "speech_cnn1d", "n_mels": M, "channels": 16, "norm": "band_instance",
                                "pooling": "stats"},
    "speech_lstm": {"name": "speech_lstm", "n_mels": M, "hidden": 16, "dropout": 0.1},
    "speech_lstm_none_stats": {"name": "speech_lstm", "n_mels": M, "hidden": 16, "norm": "none", "pooling": "stats"},
    "speech_stats": {"name": "speech_stats", "n_mels": M},
    "speech_stats_mlp_utterance": {"name": "speech_stats", "n_mels": M, "hidden": [16], "dropout": 0.1,
                                   "norm": "utterance"},
    "speech_functionals": {"name": "speech_functionals", "input_dim": D, "hidden": [32], "dropout": 0.1},
    "context": {"name": "context", "input_dim": D, "hidden": 16, "dropout": 0.1},
    "context_gru_joint": {"name": "context", "utterance": TEXT, "rnn": "gru", "hidden": 16, "dropout": 0.1,
                          "bidirectional": False},
    **{f"fusion_{k}_{h}": {"name": "fusion", "text_dim": D, "speech_dim": D + 4, "kind": k, "dim": 16,
                           "head": h, "dropout": 0.1, "context": {"hidden": 8}}
       for k in ("concat", "gated", "attention", "late", "residual") for h in ("linear", "context")},
    "fusion_joint": {"name": "fusion", "text_model": TEXT, "speech_model": SPEECH, "kind": "gated", "dim": 16},
}


def test_every_registered_model_is_covered():
    assert {c["name"] for c in CONFIGS.values()} == set(model_names())


def make_batch(cfg, n=6, seed=0, extra_pad=0, learnable=False):
    """A tiny batch with the inputs cfg needs; labels depend on the inputs when `learnable`."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 7
    batch = {"labels": labels, "row": torch.arange(n)}
    for key in required_inputs(cfg):
        if key == "tokens":
            lengths = torch.randint(2, 9, (n,), generator=g)
            tokens = torch.zeros(n, int(lengths.max()) + extra_pad, dtype=torch.long)
            for i, length in enumerate(lengths):
                tokens[i, :length] = torch.randint(2, V, (int(length),), generator=g)
                if learnable:
                    tokens[i, :length] = 2 + labels[i] * 5
            batch["tokens"], batch["token_lengths"] = tokens, lengths
        elif key == "dialogue_text":       # [CLS] context [SEP] target [SEP], 101/102 as in BERT's vocabulary
            lengths = torch.randint(5, 12, (n,), generator=g)
            ids = torch.zeros(n, int(lengths.max()) + extra_pad, dtype=torch.long)
            attention, target = torch.zeros_like(ids), torch.zeros_like(ids)
            for i, length in enumerate(lengths):
                body = torch.randint(1000, 2000, (int(length),), generator=g)
                if learnable:
                    body[:] = 1000 + labels[i] * 7
                ids[i, :length] = body
                ids[i, 0], ids[i, length - 1], ids[i, 2] = 101, 102, 102
                attention[i, :length] = 1
                target[i, 3: length - 1] = 1
            batch.update(input_ids=ids, attention_mask=attention, target_mask=target)
        elif key == "mel":
            lengths = torch.randint(1, 30, (n,), generator=g)
            lengths[0] = 1
            mel = torch.zeros(n, int(lengths.max()) + extra_pad, M)
            for i, length in enumerate(lengths):
                mel[i, :length] = torch.randn(int(length), M, generator=g)
                if learnable:   # a level and a flicker in the label's bands: every norm keeps one of them
                    flicker = 2.0 + 2.0 * (-1.0) ** torch.arange(int(length))
                    mel[i, :length, int(labels[i]) * 5: int(labels[i]) * 5 + 5] += flicker[:, None]
            batch["mel"], batch["mel_lengths"] = mel, lengths
        elif key.endswith("_logp"):         # an upstream model's log-probabilities (residual fusion)
            batch[key] = torch.log_softmax(torch.randn(n, 7, generator=g), -1)
        else:
            dim = D + 4 if key == "features_speech" else D
            x = torch.randn(n, dim, generator=g)
            if learnable:
                x[torch.arange(n), labels] += 4.0
            batch[key] = x
    if needs_dialogues(cfg):
        idx = torch.full((2, n - n // 2 + extra_pad), -1, dtype=torch.long)
        idx[0, : n // 2] = torch.arange(n // 2)
        idx[1, : n - n // 2] = torch.arange(n // 2, n)
        batch["dialogue_index"] = idx
    return batch


@pytest.fixture(params=sorted(CONFIGS), ids=str)
def cfg(request):
    return copy.deepcopy(CONFIGS[request.param])


def test_builds_and_shapes(cfg):
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    for n in (6, 9):
        batch = make_batch(cfg, n=n, seed=n)
        assert model(batch).shape == (n, 7)
        assert model.features(batch).shape == (n, model.feature_dim)


def test_learns_a_tiny_set(cfg):
    torch.manual_seed(0)
    model = build_model(cfg)
    batch = make_batch(cfg, n=14, learnable=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(batch), batch["labels"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


def test_checkpoint_round_trip(cfg, tmp_path):
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    batch = make_batch(cfg)
    CheckpointWriter(tmp_path, {"model": cfg}, "abc").save(model, 3, {"dev_wf1": 0.5}, best=True)
    ck = load_checkpoint(tmp_path / "best.pt")
    assert ck["config"]["model"] == cfg and ck["vocab_hash"] == "abc" and ck["epoch"] == 3
    fresh = build_model(ck["config"]["model"]).eval()
    fresh.load_state_dict(ck["state_dict"])
    torch.testing.assert_close(fresh(batch), model(batch))


def test_padding_does_not_change_outputs(cfg):
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    tight = make_batch(cfg, seed=1)
    padded = make_batch(cfg, seed=1, extra_pad=5)
    with torch.no_grad():
        torch.testing.assert_close(model(padded), model(tight), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model.features(padded), model.features(tight), rtol=1e-4, atol=1e-5)


def test_utterance_alone_equals_utterance_in_batch(cfg):
    """The strongest padding check: one utterance scored alone (no padding at all) vs inside a padded batch."""
    if needs_dialogues(cfg):
        pytest.skip("context models score dialogues, not utterances")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    batch = make_batch(cfg, n=6, seed=2)
    with torch.no_grad():
        full = model(batch)
        for i in range(6):
            one = {}
            for k, v in batch.items():
                one[k] = v[i: i + 1]
            if "tokens" in one:
                one["tokens"] = one["tokens"][:, : int(one["token_lengths"][0])]
            if "mel" in one:
                one["mel"] = one["mel"][:, : int(one["mel_lengths"][0])]
            if "input_ids" in one:
                n = int(one["attention_mask"].sum())
                one.update({k: one[k][:, :n] for k in ("input_ids", "attention_mask", "target_mask")})
            torch.testing.assert_close(model(one), full[i: i + 1], rtol=1e-4, atol=1e-5)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="valid names: context, fusion, speech_cnn1d"):
        build_model({"name": "bert"})
    with pytest.raises(ValueError, match="no argument\\(s\\) width"):
        build_model({"name": "text_mlp", "vocab_size": 5, "width": 3})


def test_features_are_seed_reproducible(cfg):
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        outs.append(build_model(cfg).eval().features(make_batch(cfg)).detach())
    np.testing.assert_array_equal(outs[0].numpy(), outs[1].numpy())
