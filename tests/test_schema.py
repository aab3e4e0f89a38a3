"""Dataset schemas: MELD as one declaration among several; composite keys, list-literal speakers, both time
formats, and every mistake in a schema or a CSV named by file and key or row."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_prep.errors import PrepError
from data_prep.schema import load_schema, parse_schema, parse_speaker, parse_time, read_split, shipped
from helpers import EMORY, emorynlp_corpus, table_digest

def test_every_shipped_schema_loads():
    assert {"meld", "emorynlp", "iemocap_example"} <= set(shipped())
    for name in shipped():
        s = load_schema(name)
        assert s.name == name and len(s.labels) >= 2
    assert load_schema("emorynlp").dialogue_columns == ["Season", "Episode", "Scene_ID"]
    meld = load_schema("meld")
    assert meld.labels == ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
    assert meld.audio.rule == "meld" and meld.row_label == "Sr No."


# what MELD's own CSV reader (data_prep/meld.py's read_annotations, removed once MELD was read through its
# schema like every corpus) made of these CSVs, at 01098ae: helpers.table_digest of its tables
MELD_READER_DIGESTS = {("synth", "train"): "4f320dca7df3af31", ("synth", "dev"): "c672f43ad0060882",
                       ("synth", "test"): "698c837ac37c4256", ("real", "train"): "32f453b261058d9c",
                       ("real", "dev"): "162eddaf44d7c3b4"}


def _same_as_meld_reader(root, split, corpus):
    new = read_split(load_schema("meld"), root, split)
    assert table_digest(new) == MELD_READER_DIGESTS[(corpus, split)], split
    assert "dialogue_key" not in new and "clip" not in new     # numbered dialogues; its clip rule finds clips


def test_the_meld_schema_reads_as_the_meld_reader_did(synth_corpus):
    for split in ("train", "dev", "test"):
        _same_as_meld_reader(synth_corpus, split, "synth")


@pytest.mark.real_meld
def test_the_meld_schema_reads_real_meld_as_the_meld_reader_did(meld_dir):
    for split in ("train", "dev"):
        _same_as_meld_reader(meld_dir, split, "real")


def test_the_digest_sees_a_changed_row(synth_corpus):
    t = read_split(load_schema("meld"), synth_corpus, "dev")
    before = table_digest(t)
    t.loc[3, "text_raw"] += "!"
    assert table_digest(t) != before


def test_an_emorynlp_shaped_corpus_reads_with_composite_keys_and_list_speakers(synth_corpus, tmp_path):
    root = emorynlp_corpus(tmp_path / "emory", synth_corpus)
    schema = load_schema("emorynlp")
    t = read_split(schema, root, "train")
    src = pd.read_csv(synth_corpus / "train_sent_emo.csv", dtype=str, keep_default_na=False)
    # one dialogue per (Season, Episode, Scene_ID), numbered in order of appearance; MELD's dialogues map 1:1
    assert t.dialogue_id.nunique() == src.Dialogue_ID.nunique() == t.dialogue_key.nunique()
    assert t.dialogue_key.iloc[0] == "1/1/0" and t.dialogue_id.iloc[0] == 0
    assert (t.groupby("dialogue_id").dialogue_key.nunique() == 1).all()
    assert t.speaker.tolist() == src.Speaker.str.strip().tolist()
    assert set(t.emotion_name) <= set(EMORY) and (t.sentiment_name == "").all()
    assert t.utterance_id.min() == 1
    old = read_split(load_schema("meld"), synth_corpus, "train")
    np.testing.assert_array_equal(t.start_s.to_numpy(), old.start_s.to_numpy())   # HH:MM:SS.mmm read as ,mmm


def test_speakers_and_times():
    assert parse_speaker("['Monica Geller']", "x") == "Monica Geller"
    assert parse_speaker("['Ross Geller', 'Rachel Green']", "x") == "Ross Geller & Rachel Green"
    assert parse_speaker(" Joey ", "x") == "Joey"
    with pytest.raises(PrepError, match="f.csv: row 3: speaker .* is not a list literal"):
        parse_speaker("[__import__('os').system('echo pwned')]", "f.csv: row 3")      # read as data, never run
    with pytest.raises(PrepError, match="not a list of names"):
        parse_speaker("[1, 2]", "x")
    assert parse_time("0:16:16,059") == parse_time("00:16:16.059") == pytest.approx(976.059)
    assert np.isnan(parse_time("16:16"))


def test_a_label_outside_the_set_names_the_row_and_the_valid_set(synth_corpus, tmp_path):
    root = emorynlp_corpus(tmp_path / "emory", synth_corpus)
    path = root / "emorynlp_dev_final.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[2, "Emotion"] = "Bored"
    df.to_csv(path, index=False)
    with pytest.raises(PrepError, match=r"emorynlp_dev_final.csv: row 3: Emotion 'Bored' is not in the label set "
                                        r"\(Joyful, Mad, Peaceful, Neutral, Sad, Powerful, Scared\)"):
        read_split(load_schema("emorynlp"), root, "dev")


BASE = {"name": "x", "splits": {"train": {"csv": "t.csv"}}, "labels": ["a", "b"],
        "columns": {"text": "T", "speaker": "S", "label": "L", "dialogue": "D", "utterance": "U"}}


@pytest.mark.parametrize("change, message", [
    ({"labls": []}, "labls: unknown key"),
    ({"labels": ["a"]}, "labels: a list of at least two"),
    ({"labels": ["a", "A"]}, "labels: names must differ"),
    ({"columns": {**BASE["columns"], "label": ""}}, "columns.label: a column name"),
    ({"columns": {k: v for k, v in BASE["columns"].items() if k != "text"}}, "columns.text: required"),
    ({"columns": {**BASE["columns"], "start": "S0"}}, "columns.end: give both start and end"),
    ({"columns": {**BASE["columns"], "speeker": "X"}}, "columns.speeker: unknown"),
    ({"splits": {"valid": {"csv": "v.csv"}, "train": {"csv": "t.csv"}}}, "splits.valid: unknown split"),
    ({"file": "all.csv"}, "file: one file for every split needs columns.split"),
    ({"speaker_format": "json"}, "speaker_format: 'json'"),
    ({"audio": {"clip": "{dialog}.wav"}, "splits": {"train": {"csv": "t", "clips": "c"}}}, "audio.clip: .*unknown field"),
    ({"audio": {"clip": "a.wav"}}, "splits: audio needs each split's clip folder"),
    ({"metric": {"name": "micro_f1", "exclude": "c"}}, "metric.exclude: 'c' is not in labels"),
    ({"metric": {"name": "weighted_f1", "exclude": "a"}}, "metric.exclude: only micro_f1"),
    ({"metric": {"name": "accuracy"}}, "metric: a mapping with name"),
])
def test_schema_mistakes_name_the_file_and_key(tmp_path, change, message):
    with pytest.raises(PrepError, match=f"^{tmp_path / 's.yaml'}: {message}"):
        parse_schema({**BASE, **change}, tmp_path / "s.yaml")


def test_one_file_with_a_split_column(tmp_path):
    raw = {**BASE, "file": "all.csv", "columns": {**BASE["columns"], "split": "Part"},
           "splits": {"train": {"value": "tr"}, "dev": {"value": "dv"}}}
    schema = parse_schema(raw, tmp_path / "s.yaml")
    pd.DataFrame({"T": ["hi", "yo", "ok"], "S": ["a", "b", "a"], "L": ["a", "B", "b"], "D": ["7", "7", "8"],
                  "U": ["0", "1", "0"], "Part": ["tr", "tr", "dv"]}).to_csv(tmp_path / "all.csv", index=False)
    train, dev = read_split(schema, tmp_path, "train"), read_split(schema, tmp_path, "dev")
    assert train.text_raw.tolist() == ["hi", "yo"] and train.emotion_name.tolist() == ["a", "b"]
    assert dev.dialogue_id.tolist() == [8] and dev.csv_row.tolist() == [1]
    with pytest.raises(PrepError, match="--dataset nope: neither a shipped dataset"):
        load_schema("nope")


def test_the_datasets_command_lists_the_shipped_schemas():
    from click.testing import CliRunner

    from mer_search.cli import main

    r = CliRunner().invoke(main, ["datasets"])
    assert r.exit_code == 0, r.output
    lines = {line.split()[0]: line for line in r.output.splitlines()}
    assert set(lines) == set(shipped())
    assert "7 labels (Joyful, Mad, Peaceful, Neutral, Sad, Powerful, Scared)" in lines["emorynlp"]
    assert "text only" in lines["emorynlp"] and "audio" in lines["meld"]


def test_prepare_follows_a_schema_and_meld_through_a_plain_schema_gives_its_tables(synth_corpus, tmp_path):
    """MELD declared without its clip rule prepares the same text tables (one reader for every corpus); an
    EmoryNLP-shaped corpus prepares with its labels, recorded for every later command."""
    import json

    import yaml

    from data_prep.prepare import PrepareOptions, prepare

    raw = yaml.safe_load(shipped()["meld"].read_text())
    del raw["audio"]
    plain = tmp_path / "plain_meld.yaml"
    plain.write_text(yaml.safe_dump(raw))
    for name, dataset in (("meld", "meld"), ("plain", str(plain))):
        prepare(PrepareOptions(meld_root=synth_corpus, out=tmp_path / name, text_only=True, dataset=dataset))
    for split in ("train", "dev", "test"):
        a = pd.read_parquet(tmp_path / "meld" / f"{split}.parquet")
        b = pd.read_parquet(tmp_path / "plain" / f"{split}.parquet")
        pd.testing.assert_frame_equal(a, b)
    assert json.loads((tmp_path / "plain" / "manifest.json").read_text())["settings"]["dataset"] == str(plain)
    assert "dataset" not in json.loads((tmp_path / "meld" / "manifest.json").read_text())["settings"]

    root = emorynlp_corpus(tmp_path / "emory", synth_corpus)
    manifest = prepare(PrepareOptions(meld_root=root, out=tmp_path / "emory_prepared", dataset="emorynlp"))
    assert manifest["settings"]["text_only"] is True          # the schema has no audio
    assert manifest["dataset"]["name"] == "emorynlp" and manifest["dataset"]["labels"] == list(EMORY)
    labels = json.loads((tmp_path / "emory_prepared" / "labels.json").read_text())
    assert labels == {"emotion": list(EMORY), "sentiment": []}
    t = pd.read_parquet(tmp_path / "emory_prepared" / "train.parquet")
    assert (t.emotion_name.map(EMORY.index) == t.emotion).all() and (t.sentiment == -1).all()


@pytest.mark.e2e
@pytest.mark.ray
def test_an_emorynlp_corpus_through_the_cli(synth_corpus, tmp_path, monkeypatch):
    """prepare --dataset emorynlp, sweep, export, train, bundle and predict: EmoryNLP's seven labels all along."""
    import json

    from click.testing import CliRunner

    from conftest import SWEEP_SPACE
    from mer_search.cli import main

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    root = emorynlp_corpus(tmp_path / "emory", synth_corpus)
    run = CliRunner().invoke
    prepared = tmp_path / "prepared"
    r = run(main, ["prepare", "--meld-root", str(root), "--out", str(prepared), "--dataset", "emorynlp"])
    assert r.exit_code == 0, r.output
    space = tmp_path / "space.yaml"
    space.write_text(SWEEP_SPACE.format(path=space).replace("num_samples: 12", "num_samples: 2")
                     .replace("max_epochs: 6", "max_epochs: 3"))
    r = run(main, ["sweep", str(space), "--prepared", str(prepared), "--out", str(tmp_path / "sweep"),
                   "--wandb", "disabled"])
    assert r.exit_code == 0, r.output
    r = run(main, ["export", str(tmp_path / "sweep"), "--out", str(tmp_path / "best.yaml")])
    assert r.exit_code == 0, r.output
    r = run(main, ["train", str(tmp_path / "best.yaml"), "--out", str(tmp_path / "final"), "--wandb", "disabled"])
    assert r.exit_code == 0, r.output
    assert "Joyful" in r.output and "Scared" in r.output                  # per-class report in EmoryNLP's names
    dev = json.loads((tmp_path / "final" / "seed_0" / "metrics.json").read_text())["dev_wf1"]
    r = run(main, ["predict", str(tmp_path / "final" / "seed_0" / "best.pt"), "--csv",
                   str(root / "emorynlp_dev_final.csv"), "--out", str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    assert f"weighted F1 {dev:.4f}" in r.output
    p = pd.read_csv(tmp_path / "p.csv")
    assert {f"p_{e}" for e in EMORY} <= set(p.columns) and set(p.predicted) <= set(EMORY)
    assert p.dialogue.iloc[0] == "1/1/0" and "Emotion" in p.columns         # the composite key as written


def test_data_checks_report_empty_utterances_order_gaps_and_leaks(synth_corpus, tmp_path, caplog):
    from data_prep.prepare import PrepareOptions, prepare

    root = emorynlp_corpus(tmp_path / "emory", synth_corpus)
    train = pd.read_csv(root / "emorynlp_train_final.csv", dtype=str, keep_default_na=False)
    dev = pd.read_csv(root / "emorynlp_dev_final.csv", dtype=str, keep_default_na=False)
    train.loc[0, "Utterance"] = "  "                                        # an empty utterance
    first = train[(train.Season == train.Season[0]) & (train.Episode == train.Episode[0])
                  & (train.Scene_ID == train.Scene_ID[0])]
    train = train.drop(index=first.index[1])                                 # a gap in the first scene's order
    last = train.iloc[-1]
    leaked = train[(train.Season == last.Season) & (train.Episode == last.Episode) & (train.Scene_ID == last.Scene_ID)
                   ].assign(Season="99", Episode="1", Scene_ID="0")         # a whole train scene copied into dev
    pd.concat([dev, leaked]).to_csv(root / "emorynlp_dev_final.csv", index=False)
    train.to_csv(root / "emorynlp_train_final.csv", index=False)
    with caplog.at_level("WARNING"):
        prepare(PrepareOptions(meld_root=root, out=tmp_path / "p", dataset="emorynlp"))
    q = pd.read_csv(tmp_path / "p" / "quirks.csv")
    assert q[q.kind == "empty"].shape[0] == 1 and (q[q.kind == "empty"].action == "kept").all()
    gaps = q[q.kind == "order"]
    assert len(gaps) >= 1 and "utterance ids [2] absent" in gaps.problem.iloc[0]
    leaks = q[q.kind == "leak"]
    assert len(leaks) >= 1 and (leaks.split == "dev").all()
    assert any("train and dev share" in r.message and "identical row" in r.message for r in caplog.records)
    assert len(pd.read_parquet(tmp_path / "p" / "train.parquet")) == len(train)     # every row kept


def test_a_dailydialog_style_metric_leaves_one_class_out():
    """micro F1 over the classes but the excluded one, on known predictions, as sklearn counts it."""
    from sklearn.metrics import f1_score

    from mer_search.training.train import metrics_from

    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 0])
    preds = np.array([0, 1, 0, 1, 0, 2, 0, 3, 3, 2])
    m = metrics_from(labels, preds, 0.0, "dev", 4, exclude=0)
    # classes 1-3: true positives 1 + 1 + 1 = 3; predicted as 1-3: 6; truly 1-3: 6 -> 2 * 3 / 12
    assert m["dev_microf1"] == pytest.approx(0.5)
    assert m["dev_microf1"] == pytest.approx(f1_score(labels, preds, labels=[1, 2, 3], average="micro"))
    assert "dev_microf1" not in metrics_from(labels, preds, 0.0, "dev", 4)
    schema = parse_schema({**BASE, "labels": ["neutral", "happy"], "metric": {"name": "micro_f1", "exclude": "neutral"}},
                          Path("dd.yaml"))
    assert schema.metric.exclude == "neutral"


def test_a_dataset_scored_by_micro_f1_reports_it_in_training(synth_corpus, tmp_path):
    import yaml

    from data_prep.prepare import PrepareOptions, prepare
    from mer_search.training.experiment import run

    root = emorynlp_corpus(tmp_path / "emory", synth_corpus)
    raw = yaml.safe_load(shipped()["emorynlp"].read_text())
    raw["metric"] = {"name": "micro_f1", "exclude": "Neutral"}
    schema = tmp_path / "dd.yaml"
    schema.write_text(yaml.safe_dump(raw))
    prepare(PrepareOptions(meld_root=root, out=tmp_path / "p", dataset=str(schema)))
    m = run({"data": {"prepared": str(tmp_path / "p")}, "model": {"name": "text_mlp", "emb_dim": 8, "hidden": [8]},
             "train": {"epochs": 1, "metric": "dev_microf1"}}, tmp_path / "run", seed=0)
    assert 0 <= m["dev_microf1"] <= 1 and m["dev_microf1"] != m["dev_wf1"]
    from mer_search.core.dirs import FeatureDir
    from mer_search.training.features import extract_features

    features = FeatureDir(extract_features(tmp_path / "run" / "best.pt", tmp_path / "features"))
    assert features.dev_score("dev_microf1") == pytest.approx(m["dev_microf1"])     # what a fusion leads with
    # predict scores a labelled CSV by the dataset's metric too: dev through the model gives its dev scores
    import mer_search
    from data_prep.schema import load_schema

    _, scores = mer_search.load(tmp_path / "run" / "best.pt").predict(load_schema(schema).csv_path(root, "dev"))
    assert scores["csv_microf1"] == pytest.approx(m["dev_microf1"]) and scores["csv_wf1"] == pytest.approx(m["dev_wf1"])
    from mer_search.core.errors import ConfigError

    with pytest.raises(ConfigError, match="dev_microf1: .* scores no micro F1"):
        run({"data": {"prepared": str(_plain(tmp_path, root))}, "model": {"name": "text_mlp"},
             "train": {"epochs": 1, "metric": "dev_microf1"}}, tmp_path / "r2", seed=0)


def _plain(tmp_path, root):
    from data_prep.prepare import PrepareOptions, prepare

    prepare(PrepareOptions(meld_root=root, out=tmp_path / "plain", dataset="emorynlp"))
    return tmp_path / "plain"


def test_a_micro_f1_dataset_steers_the_sweep_and_the_pipeline_answer(synth_corpus, tmp_path):
    """A schema scored by micro F1 without a class: sweeps select on dev_microf1; the pipeline picks its best
    row and each stage's seed by it, and its table shows it."""
    import json

    import yaml

    from data_prep.prepare import PrepareOptions, prepare
    from mer_search.pipeline import Pipeline, PipelineOptions
    from mer_search.search.sweep import SweepOptions, _new_plan

    root = emorynlp_corpus(tmp_path / "emory", synth_corpus)
    raw = yaml.safe_load(shipped()["emorynlp"].read_text())
    raw["metric"] = {"name": "micro_f1", "exclude": "Neutral"}
    (tmp_path / "dd.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "pipe"
    prepare(PrepareOptions(meld_root=root, out=out / "prepared", dataset=str(tmp_path / "dd.yaml")))
    space = tmp_path / "s.yaml"
    space.write_text("search: {metric: dev_wf1, max_epochs: 1, num_samples: 1}\nfixed: {model.name: text_mlp}\n")
    plan = _new_plan(SweepOptions(space=str(space), prepared=str(out / "prepared"), out=tmp_path / "sw"), tmp_path / "sw")
    assert plan.metric == "dev_microf1" and plan.base["train.metric"] == "dev_microf1"
    p = Pipeline(PipelineOptions(meld_root=root, out=out, text_only=True, dataset=str(tmp_path / "dd.yaml"),
                                 text_space="text_mlp"))
    for stage, scores in (("text", [0.2, 0.5]), ("text_context", [0.45, 0.4])):    # micro F1 per seed
        (out / "final" / stage).mkdir(parents=True)
        (out / "configs").mkdir(exist_ok=True)
        (out / "configs" / f"{stage}.yaml").write_text("model: {name: text_mlp}\n")
        per_seed = [{"seed": i, "dev_wf1": 0.9 - v, "dev_microf1": v} for i, v in enumerate(scores)]
        (out / "final" / stage / "summary.json").write_text(json.dumps({
            "seeds": 2, "per_seed": per_seed, "dev_wf1": {"mean": 0.9 - np.mean(scores), "std": 0.0},
            "dev_acc": {"mean": 0.5, "std": 0.0}, "dev_microf1": {"mean": float(np.mean(scores)), "std": 0.0}}))
    stage, _ = p.best_row()
    assert p.metric == "dev_microf1" and stage.name == "text_context"      # 0.425 against 0.35 (wF1 says text)
    assert p.chosen_seed("text").path.name.endswith("1") and p.chosen_seed("text_context").path.name.endswith("0")
    table = p.summary()
    assert "| dev micro F1 |" in table and "0.425 +- 0.000" in table and "rows scored by micro f1" in table


def test_a_declared_clip_template_prepares_audio(synth_corpus, tmp_path):
    """Clips found through a schema's template (here MELD's layout without MELD's own rules): decoded into
    shards like MELD's; a clip the template names but the folder lacks is missing audio, reported."""
    import yaml

    from data_prep.prepare import PrepareOptions, prepare

    raw = yaml.safe_load(shipped()["meld"].read_text())
    raw["audio"] = {"clip": "dia{dialogue}_utt{utterance}.mp4"}         # no quirks: meld
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    manifest = prepare(PrepareOptions(meld_root=synth_corpus, out=tmp_path / "p", dataset=str(tmp_path / "s.yaml"),
                                      splits=("dev",), shard_size=16))     # train's text is read, its clips not
    dev = pd.read_parquet(tmp_path / "p" / "dev.parquet")
    missing = json_truth(synth_corpus)["missing"]
    assert {(d, u) for s, d, u in missing if s == "dev"} == \
        set(zip(dev[dev.audio_status == "missing"].dialogue_id, dev[dev.audio_status == "missing"].utterance_id))
    assert (dev.audio_status == "ok").sum() >= len(dev) - 3 and dev[dev.audio_status == "ok"].length.min() > 0
    assert manifest["settings"]["audio"] is not None and any(k.startswith("audio/dev/") for k in manifest["files"])


def json_truth(root):
    import json

    return json.loads((root / "synth_truth.json").read_text())


# MELD prepared by the code before dataset schemas (commit b016d5e) from _fixed_meld_corpus: a digest of the
# tables' values, vocab.json and labels.json (values, not file bytes: Parquet's bytes vary with pyarrow's version)
MELD_DIGEST_BEFORE_SCHEMAS = "7d52157de4e2d0c559614154b7e329903fc4e6876018b8f4e16b41474f8361ab"


def test_the_meld_schema_reproduces_the_prepared_digest_from_before_schemas(tmp_path):
    from data_prep.prepare import PrepareOptions, prepare

    _fixed_meld_corpus(tmp_path / "raw")
    prepare(PrepareOptions(meld_root=tmp_path / "raw", out=tmp_path / "p", splits=("train", "dev"), text_only=True,
                           dataset="meld"))
    assert _content_digest(tmp_path / "p") == MELD_DIGEST_BEFORE_SCHEMAS


def _fixed_meld_corpus(root: Path) -> None:
    """A fixed MELD-format corpus (text only): speakers, mojibake, duplicates, odd times."""
    names = ["Joey", "Ross", "Rachel", "Phoebe", "Monica", "Chandler", "Gunther", "Mr. Geller"]
    emotions = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]
    sentiments = {"neutral": "neutral", "joy": "positive", "surprise": "positive"}
    words = ["okay", "so", "the coffee", "I can\x92t", "caf\u00c3\u00a9", "what?!", "no way", "it\u2019s over", "wow"]
    root.mkdir(parents=True, exist_ok=True)
    for split, dialogues in (("train", 12), ("dev", 4)):
        rows = []
        for d in range(dialogues):
            for u in range(3 + (d * 7) % 5):
                i = d * 11 + u * 5 + (split == "dev")
                e = emotions[i % 7]
                text = f"{words[i % 9]}, {words[(i * 3) % 9]} {names[i % 8]}!"
                rows.append({"Sr No.": len(rows) + 1, "Utterance": text,
                             "Speaker": names[(i * 5) % 8], "Emotion": e, "Sentiment": sentiments.get(e, "negative"),
                             "Dialogue_ID": d, "Utterance_ID": u, "Season": 1, "Episode": 1,
                             "StartTime": f"00:0{u}:1{d % 10},{100 + i:03d}",
                             "EndTime": f"00:0{u}:2{d % 10},{200 + i:03d}"})
        pd.DataFrame(rows).to_csv(root / f"{split}_sent_emo.csv", index=False)


def _content_digest(prepared: Path) -> str:
    h = hashlib.sha256()
    for split in ("train", "dev"):
        df = pd.read_parquet(prepared / f"{split}.parquet")
        for col in df.columns:
            values = [v.tolist() if isinstance(v, np.ndarray) else v for v in df[col]]
            h.update(json.dumps([col, values], default=str).encode())
    for name in ("vocab.json", "labels.json"):
        h.update((prepared / name).read_bytes())
    return h.hexdigest()
