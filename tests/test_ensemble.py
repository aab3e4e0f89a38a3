"""Ensembles: greedy selection with replacement on dev, its cross-validated check, and a bundle holding one."""

import numpy as np
import pytest

from mer_search.training import ensemble as e


def _onehot(pred, n=3, confidence=0.6):
    p = np.full((len(pred), n), (1 - confidence) / (n - 1))
    p[np.arange(len(pred)), pred] = confidence
    return p


def test_greedy_picks_with_replacement_and_keeps_the_best_prefix():
    labels = np.array([0, 0, 1, 1, 2, 2] * 10)
    # a is sure of classes 0 and 1 and unsure (wrong) on 2; b the same for 1 and 2 (wrong on 0); c is sure and
    # wrong everywhere: a and b together are right everywhere, each alone on two classes of three
    a = np.where((labels == 2)[:, None], _onehot(np.zeros_like(labels), confidence=0.4), _onehot(labels, confidence=0.9))
    b = np.where((labels == 0)[:, None], _onehot(np.ones_like(labels), confidence=0.4), _onehot(labels, confidence=0.9))
    c = _onehot((labels + 1) % 3, confidence=0.9)
    weights, score = e.greedy([a, b, c], labels)
    assert weights[2] == 0 and weights[0] >= 1 and weights[1] >= 1
    alone = max(e._wf1(labels, p) for p in (a, b, c))
    assert alone < 0.7 and score == 1.0 and score == pytest.approx(e._wf1(labels, e.average([a, b, c], weights)))
    # one member only: weight 1 on the best, the rest 0
    assert e.greedy([c, a], labels, rounds=1)[0] == [0, 1]


def test_the_cross_validated_choice_does_not_fit_dev_noise():
    """Members that are pure noise: in sample the selection scores above every member, held out it cannot."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    dialogues = np.arange(300) // 6
    noise = [e.softmax(rng.normal(size=(300, 3))) for _ in range(8)]
    chosen = e.select([e.Outputs(p, labels, dialogues) for p in noise])
    assert chosen.dev > max(e._wf1(labels, p) for p in noise)        # what selecting on dev alone would report
    assert chosen.cv < chosen.dev - 0.05                               # held out, the flattery is gone
    assert chosen.sure < e.SURE and not chosen.helps                   # and noise never becomes the answer
    informative = [_onehot(np.where(rng.random(300) < q, labels, (labels + 1) % 3)) for q in (0.7, 0.6, 0.65)]
    good = e.select([e.Outputs(p, labels, dialogues) for p in informative])
    assert good.cv > 0.6 and good.cv_single > 0.6


def test_an_ensemble_bundle_predicts_its_dev_score(prepared, synth_corpus, tmp_path):
    """Two trained models (text, speech) as one bundle: predict averages their probabilities with the weights
    and reproduces the ensemble's dev score exactly; the card lists members and weights."""
    from mer_search import load
    from mer_search.serving.bundle import write_bundle
    from mer_search.training.experiment import run
    from mer_search.training.train import f1_scores

    paths = []
    for name, model in (("text", {"name": "text_mlp", "emb_dim": 16, "hidden": [16]}),
                        ("speech", {"name": "speech_cnn1d", "channels": 8, "norm": "train_stats"})):
        cfg = {"data": {"prepared": str(prepared), "batch_size": 8}, "model": model,
               "train": {"epochs": 2, "lr": 0.01, "patience": 0}}
        run(cfg, tmp_path / name, seed=0)
        paths.append(str(tmp_path / name / "best.pt"))
    weights = [2, 1]
    dev = [e.outputs(p, ("dev",))["dev"] for p in paths]
    probs = e.average([d.probs for d in dev], weights)
    expected = f1_scores(dev[0].labels, probs.argmax(1), probs.shape[1])[1]
    bundle = write_bundle(paths, tmp_path / "bundle", weights=weights, card={"row": "ensemble"})
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "member1 (weight 2)" in card and "member2 (weight 1)" in card and paths[1] in card
    predictions, metrics = load(bundle).predict(synth_corpus / "dev_sent_emo.csv", clips=synth_corpus, split="dev")
    assert f"{metrics['csv_wf1']:.6f}" == f"{expected:.6f}"
    got = predictions[[c for c in predictions.columns if c.startswith("p_")]].to_numpy()
    assert np.abs(got.sum(1) - 1).max() < 1e-4
    with pytest.raises(ValueError, match="one positive integer weight per member"):
        write_bundle(paths, tmp_path / "bad", weights=[1])
