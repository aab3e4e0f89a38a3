"""`mer-search predict` runs a CSV through the same preparation the model was trained on: on the dev CSV it
reproduces the dev scores measured in training, for text and for speech models (whose train statistics travel
in the checkpoint: predict prepares only the new CSV), labelled or not."""


import json

import pandas as pd
import pytest
from click.testing import CliRunner

from mer_search.cli import main
from mer_search.training.experiment import run


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
    assert r.exit_code == 1 and "needs the clips: pass --corpus" in r.stderr


def test_a_bad_row_is_named_in_the_users_file(trained, synth_corpus, tmp_path):
    """predict copies the rows into a working folder: its errors still name the user's file and row."""
    import mer_search
    from mer_search.core.errors import UserError

    ckpt, _ = trained["text"]
    rows = pd.read_csv(synth_corpus / "dev_sent_emo.csv", dtype=str, keep_default_na=False)
    rows.loc[3, "Emotion"] = "happy"
    mine = tmp_path / "my rows.csv"
    rows.to_csv(mine, index=False)
    r = CliRunner().invoke(main, ["predict", str(ckpt), "--csv", str(mine)])
    assert r.exit_code == 1, r.output
    assert f"{mine}: row 4" in r.stderr and "'happy'" in r.stderr and "mer-predict-" not in r.stderr, r.stderr
    with pytest.raises(UserError, match=r"the DataFrame given to predict: row 4 .*'happy'"):
        mer_search.load(ckpt).predict(rows)


def test_a_bundle_keeps_its_schema_when_the_schema_file_is_gone(synth_corpus, tmp_path):
    """Prepared with a schema file that is deleted afterwards (another machine, a moved venv): the bundle still
    reads that dataset's own columns, never MELD's; an older prepared dir without its copy says how to fix it."""
    import json
    import shutil

    from data_prep.prepare import PrepareOptions, prepare
    from data_prep.schema import shipped
    from helpers import emorynlp_corpus
    from mer_search.serving.bundle import write_bundle
    from mer_search.core.errors import ConfigError

    root = emorynlp_corpus(tmp_path / "emory", synth_corpus)
    schema = tmp_path / "schemas" / "my_emory.yaml"
    schema.parent.mkdir()
    shutil.copyfile(shipped()["emorynlp"], schema)
    prepared = tmp_path / "prepared"
    prepare(PrepareOptions(meld_root=root, out=prepared, dataset=str(schema), text_only=True))
    cfg = {"data": {"prepared": str(prepared), "batch_size": 8}, "model": {"name": "text_mlp", "emb_dim": 8},
           "train": {"epochs": 1, "patience": 0}}
    metrics = run(cfg, tmp_path / "run", seed=0)
    shutil.rmtree(schema.parent)                                          # the schema file is gone
    bundle = write_bundle(tmp_path / "run" / "best.pt", tmp_path / "bundle")
    r = CliRunner().invoke(main, ["predict", str(bundle), "--csv", str(root / "emorynlp_dev_final.csv"),
                                  "--out", str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    assert f"weighted F1 {metrics['dev_wf1']:.4f}" in r.output            # EmoryNLP's columns, read as prepared
    written = pd.read_csv(tmp_path / "p.csv", dtype=str)
    assert written.dialogue.str.count("/").eq(2).all()                    # EmoryNLP's composite scene key
    (prepared / "dataset.yaml").unlink()                                  # as a dir prepared by an older version
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["dataset"]["schema"] == str(schema)
    with pytest.raises(ConfigError, match="which is gone.*rerun the same `mer-search prepare`"):
        write_bundle(tmp_path / "run" / "best.pt", tmp_path / "bundle2")


def _as_if_saved_on_a_gpu(src, dst):
    """The checkpoint's payload saved again with every tensor's storage tagged cuda:0, as torch.save writes a
    GPU-trained state (this machine has no GPU to train one)."""
    import torch
    from torch import serialization

    payload = torch.load(src, map_location="cpu", weights_only=True)
    tag = serialization.location_tag
    serialization.location_tag = lambda storage: "cuda:0"
    try:
        torch.save(payload, dst)
    finally:
        serialization.location_tag = tag


def test_a_checkpoint_saved_on_a_gpu_predicts_on_cpus(trained, synth_corpus, prepared, tmp_path):
    import torch

    from mer_search.core.dirs import FeatureDir
    from mer_search.training.features import extract_features

    ckpt, metrics = trained["text"]
    gpu = tmp_path / "gpu" / "best.pt"
    gpu.parent.mkdir()
    _as_if_saved_on_a_gpu(ckpt, gpu)
    with pytest.raises(RuntimeError, match="CUDA"):           # the file really says cuda:0 ...
        torch.load(gpu, weights_only=True)
    r = CliRunner().invoke(main, ["predict", str(gpu), "--csv", str(synth_corpus / "dev_sent_emo.csv"),
                                  "--out", str(tmp_path / "pred.csv")])
    assert r.exit_code == 0, r.output                          # ... and predict maps it to this CPU
    assert f"weighted F1 {metrics['dev_wf1']:.4f}" in r.output
    feats = extract_features(gpu, tmp_path / "features")
    assert json.loads(FeatureDir(feats).manifest.read_text())["dev_wf1"] == pytest.approx(metrics["dev_wf1"])
