"""`mer-search predict` runs a CSV through the same preparation the model was trained on: on the dev CSV it
reproduces the dev scores measured in training, for text and for speech models (whose train statistics travel
in the checkpoint: predict prepares only the new CSV), labelled or not."""


import pandas as pd
import pytest
from click.testing import CliRunner

from mer_search.cli import main
from mer_search.experiment import run


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    runs = {}
    for name, model in (("text", {"name": "text_mlp", "emb_dim": 16, "hidden": [16]}),
                        ("speech", {"name": "speech_cnn1d", "channels": 8, "norm": "train_stats"})):
        cfg = {"data": {"prepared": str(prepared), "batch_size": 8}, "model": model,
               "train": {"epochs": 2, "lr": 0.01, "patience": 0}}
        metrics = run(cfg, out / name, seed=0)
        runs[name] = (out / name / "best.pt", metrics)
    return runs


@pytest.mark.parametrize("kind", ["text", "speech"])
def test_predict_reproduces_dev_scores(kind, trained, synth_corpus, tmp_path):
    ckpt, metrics = trained[kind]
    out = tmp_path / "pred.csv"
    args = ["predict", str(ckpt), "--csv", str(synth_corpus / "dev_sent_emo.csv"), "--out", str(out)]
    if kind == "speech":
        args += ["--meld-root", str(synth_corpus), "--split", "dev"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out)
    dev = pd.read_csv(synth_corpus / "dev_sent_emo.csv")
    assert len(df) == len(dev.drop_duplicates(["Dialogue_ID", "Utterance_ID"]))
    probs = df[[c for c in df.columns if c.startswith("p_")]]
    assert probs.shape[1] == 7 and (probs.sum(axis=1) - 1).abs().max() < 1e-4
    assert (df.predicted == probs.idxmax(1).str[2:]).all()
    assert f"weighted F1 {metrics['dev_wf1']:.4f}" in r.output, (r.output, metrics["dev_wf1"])


def test_predict_without_labels_and_mistakes(trained, synth_corpus, tmp_path):
    ckpt, _ = trained["text"]
    unlabelled = tmp_path / "new.csv"
    pd.read_csv(synth_corpus / "dev_sent_emo.csv").drop(columns=["Emotion", "Sentiment"]).to_csv(unlabelled, index=False)
    r = CliRunner().invoke(main, ["predict", str(ckpt), "--csv", str(unlabelled), "--out", str(tmp_path / "a.csv")])
    assert r.exit_code == 0 and "weighted F1" not in r.output
    r = CliRunner().invoke(main, ["predict", str(ckpt), "--csv", str(synth_corpus / "dev_sent_emo.csv"),
                                  "--out", str(tmp_path / "b.csv")])
    assert r.exit_code == 0
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert "Emotion" not in a.columns and a.predicted.tolist() == b.predicted.tolist()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"Utterance,Speaker\n\xec\x92 hi,Joey\n")
    r = CliRunner().invoke(main, ["predict", str(ckpt), "--csv", str(bad)])
    assert r.exit_code == 1 and "not a readable UTF-8 CSV" in r.stderr
    speech, _ = trained["speech"]
    r = CliRunner().invoke(main, ["predict", str(speech), "--csv", str(synth_corpus / "dev_sent_emo.csv")])
    assert r.exit_code == 1 and "needs the clips: pass --meld-root" in r.stderr
