"""A model bundle carries a whole chain (utterance models, their features, context and fusion heads) and the
fitted preparation: predicting the dev CSV through it reproduces the dev score measured in training."""

import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from data_prep.synth import EMOTIONS
import mer_search
from mer_search.serving.bundle import Bundle, chain, load, write_bundle
from mer_search.serving.predict import Predictor
from mer_search.cli import main
from mer_search.core.errors import ConfigError
from mer_search.training.experiment import run
from mer_search.training.features import extract_features


@pytest.fixture(scope="module")
def trained_chain(prepared, tmp_path_factory):
    """text -> text_context; speech; fusion (residual, context head) of text_context and speech."""
    root = tmp_path_factory.mktemp("chain")

    def train(name, model, epochs=3, **data):
        cfg = {"data": {"prepared": str(prepared), "batch_size": 8, **data}, "model": model,
               "train": {"epochs": epochs, "lr": 0.01, "patience": 0}}
        metrics = run(cfg, root / name, seed=0)
        extract_features(root / name / "best.pt", root / "features" / name)
        return metrics

    scores = {"text": train("text", {"name": "text_mlp", "emb_dim": 16, "hidden": [16]}),
              "speech": train("speech", {"name": "speech_cnn1d", "channels": 8})}
    scores["text_context"] = train("text_context", {"name": "context", "hidden": 8},
                                   feature_dirs={"features": str(root / "features" / "text")})
    scores["fusion"] = train("fusion", {"name": "fusion", "kind": "residual", "dim": 8, "head": "context",
                                        "context": {"hidden": 8}},
                             feature_dirs={"features_text": str(root / "features" / "text_context"),
                                           "features_speech": str(root / "features" / "speech")})
    return root, scores


def test_the_chain_is_read_from_the_feature_dirs(trained_chain):
    root, _ = trained_chain
    parts = chain(root / "fusion" / "best.pt")
    assert [p.name for p in parts] == ["speech", "text", "text_context", "model"]      # each after what it reads
    assert parts[-1].reads == {"features_text": "text_context", "features_speech": "speech"}
    assert parts[2].reads == {"features": "text"} and parts[0].reads == parts[1].reads == {}


@pytest.mark.parametrize("top", ["text_context", "fusion"])
def test_predicting_dev_through_a_bundle_reproduces_its_dev_score(trained_chain, synth_corpus, tmp_path, top):
    root, scores = trained_chain
    bundle = write_bundle(root / top / "best.pt", tmp_path / "bundle", card={"row": top})
    assert json.loads((bundle / "bundle.json").read_text())["card"]["row"] == top
    assert "## Parts" in (bundle / "MODEL_CARD.md").read_text()
    b = Bundle(bundle)
    df, metrics = Predictor(b).predict(synth_corpus / "dev_sent_emo.csv", clips=synth_corpus, split="dev")
    assert metrics["csv_wf1"] == pytest.approx(scores[top]["dev_wf1"], abs=1e-12), (metrics, scores[top])
    assert len(df) == len(pd.read_csv(synth_corpus / "dev_sent_emo.csv").drop_duplicates(["Dialogue_ID", "Utterance_ID"]))
    assert {f"p_{e}" for e in b.labels} <= set(df.columns)


def test_the_cli_predicts_through_a_bundle_and_a_two_stage_checkpoint(trained_chain, synth_corpus, tmp_path):
    root, scores = trained_chain
    r = CliRunner().invoke(main, ["bundle", str(root / "text_context" / "best.pt"), "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    for model in (tmp_path / "b", root / "text_context" / "best.pt"):      # a checkpoint: bundled on the fly
        r = CliRunner().invoke(main, ["predict", str(model), "--csv", str(synth_corpus / "dev_sent_emo.csv"),
                                      "--out", str(tmp_path / "p.csv")])
        assert r.exit_code == 0, r.output
        assert f"weighted F1 {scores['text_context']['dev_wf1']:.4f}" in r.output


def test_a_broken_bundle_is_one_clear_error(trained_chain, tmp_path):
    root, _ = trained_chain
    good = write_bundle(root / "text_context" / "best.pt", tmp_path / "good")
    missing = shutil.copytree(good, tmp_path / "missing")
    (missing / "parts" / "text.pt").unlink()
    with pytest.raises(ConfigError, match=r"part text \(parts/text.pt\) is missing"):
        Bundle(missing)
    changed = shutil.copytree(good, tmp_path / "changed")
    vocab = json.loads((changed / "vocab.json").read_text())
    (changed / "vocab.json").write_text(json.dumps({**vocab, "newword": len(vocab)}))
    with pytest.raises(ConfigError, match="vocab.json is not the vocabulary its parts were trained on"):
        Bundle(changed)
    with pytest.raises(ConfigError, match="not a model bundle"):
        load(tmp_path)
    r = CliRunner().invoke(main, ["predict", str(missing), "--csv", str(tmp_path / "none.csv")])
    assert r.exit_code != 0


def test_the_python_api_predicts_a_dataframe(trained_chain, synth_corpus):
    root, scores = trained_chain
    dev = pd.read_csv(synth_corpus / "dev_sent_emo.csv", dtype=str, keep_default_na=False)
    new = dev[dev.Dialogue_ID == dev.Dialogue_ID.iloc[0]].drop(columns=["Emotion", "Sentiment"])
    df, metrics = mer_search.load(root / "text_context" / "best.pt").predict(new)
    assert metrics is None and len(df) == len(new) and set(df.predicted) <= set(EMOTIONS)
    assert df.Utterance.tolist() == new.sort_values("Utterance_ID", key=lambda c: c.astype(int)).Utterance.tolist()
    # a text model needs no times: only the columns that carry the dialogue
    bare = new.drop(columns=["StartTime", "EndTime", "Season", "Episode"])
    again, _ = mer_search.load(root / "text_context" / "best.pt").predict(bare)
    assert again.predicted.tolist() == df.predicted.tolist()
    with pytest.raises(ConfigError, match=r"^the CSV lacks column\(s\) Speaker: .* needs Utterance, Speaker, "):
        mer_search.load(root / "text_context" / "best.pt").predict(bare.drop(columns=["Speaker"]))


def test_a_bundle_needs_neither_the_training_data_nor_its_prepared_dir(prepared, synth_corpus, tmp_path):
    copy = shutil.copytree(prepared, tmp_path / "prepared")
    cfg = {"data": {"prepared": str(copy), "batch_size": 8}, "model": {"name": "text_mlp", "emb_dim": 8, "hidden": [8]},
           "train": {"epochs": 2, "lr": 0.01}}
    dev = run(cfg, tmp_path / "run", seed=0)["dev_wf1"]
    write_bundle(tmp_path / "run" / "best.pt", tmp_path / "bundle")
    shutil.rmtree(copy)
    shutil.rmtree(tmp_path / "run")
    _, metrics = mer_search.load(tmp_path / "bundle").predict(synth_corpus / "dev_sent_emo.csv")
    assert metrics["csv_wf1"] == pytest.approx(dev, abs=1e-12)
