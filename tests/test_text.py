"""Text preparation, on the real MELD CSVs where they are present."""

import pandas as pd
import pytest

from data_prep.schema import parse_time as parse_timestamp
from data_prep.prepare import PrepareOptions, prepare
from data_prep.text import OTHER_SPEAKER, UNK, build_vocab, clean_text, tokenize


@pytest.mark.parametrize("raw, clean", [
    ("you\x92re", "you're"),                          # a C1 control standing for a cp1252 quote
    ("Caf\u00c3\u00a9 au lait", "Café au lait"),       # UTF-8 read as latin-1
    ("don\u00e2\u20ac\u2122t", "don't"),               # ’ after a double decoding
    ("\u201cHi!\u201d  she said\u2026", '"Hi!" she said...'),
    ("to\u2014you-you", "to -- you-you"),
    ("  spaced\t\nout  ", "spaced out"),
])
def test_clean_text_repairs_mojibake(raw, clean):
    assert clean_text(raw) == clean


def test_tokenize_splits_sentences_without_punkt():
    assert tokenize("This sounds like a hernia. You have to go!") == [
        "this", "sounds", "like", "a", "hernia", ".", "you", "have", "to", "go", "!"]
    assert tokenize("Don't", lowercase=False) == ["Do", "n't"]


def test_vocab_pad_unk_and_min_freq():
    vocab = build_vocab([["a", "b", "a"], ["c", "a", "b"]], min_freq=2, always=["<spk:x>"])
    assert vocab == {"<pad>": 0, "<unk>": 1, "<spk:x>": 2, "a": 3, "b": 4}


def test_timestamps():
    assert parse_timestamp("00:16:16,059") == pytest.approx(976.059)
    assert parse_timestamp("0:09:10,633") == pytest.approx(550.633)
    assert parse_timestamp("garbage") != parse_timestamp("garbage")  # NaN


@pytest.fixture(scope="module")
def real_tables(meld_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("real_text")
    manifest = prepare(PrepareOptions(meld_root=meld_dir, out=out, splits=("train", "dev"), text_only=True))
    return manifest, pd.read_parquet(out / "train.parquet"), pd.read_parquet(out / "dev.parquet"), out


@pytest.mark.real_meld
def test_real_rows_and_labels(real_tables):
    manifest, train, dev, _ = real_tables
    assert (len(train), len(dev)) == (9989, 1109)
    assert train["dialogue_id"].nunique() == 1038 and dev["dialogue_id"].nunique() == 114
    assert train["emotion_name"].value_counts().to_dict() == {
        "neutral": 4710, "joy": 1743, "surprise": 1205, "anger": 1109, "sadness": 683, "disgust": 271, "fear": 268}
    assert dev["emotion_name"].value_counts().to_dict() == {
        "neutral": 470, "joy": 163, "anger": 153, "surprise": 150, "sadness": 111, "fear": 40, "disgust": 22}
    assert train["sentiment_name"].value_counts().to_dict() == {"neutral": 4710, "negative": 2945, "positive": 2334}
    # the integer labels follow labels.json's order
    assert (train["emotion"] == train["emotion_name"].map(
        ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"].index)).all()
    assert manifest["complete"] and manifest["splits"]["train"]["rows"] == 9989


@pytest.mark.real_meld
def test_real_known_rows_repaired_and_tokenized(real_tables):
    _, train, dev, _ = real_tables
    first = train.iloc[0]
    assert first["text_raw"].startswith("also I was the point person on my company\u2019s")
    assert first["text"] == "also I was the point person on my company's transition from the KL-5 to GR-6 system."
    assert list(first["tokens"]) == ["<spk:chandler>", "also", "i", "was", "the", "point", "person", "on", "my",
                                     "company", "'s", "transition", "from", "the", "kl-5", "to", "gr-6",
                                     "system", "."]
    row = train[(train.dialogue_id == 14) & (train.utterance_id == 2)].iloc[0]
    assert row["text"] == "But that's not enough. So... So...here's a key to my apartment."
    quoted = dev[(dev.dialogue_id == 112) & (dev.utterance_id == 1)].iloc[0]
    assert quoted["text"].startswith('"Good-bye Phoebe and Ursula.')
    # no curly quotes or ellipsis characters survive anywhere
    for df in (train, dev):
        assert not df["text"].str.contains("[\u2018\u2019\u201c\u201d\u2026\u0080-\u009f]").any()


@pytest.mark.real_meld
def test_real_vocab_is_train_only(real_tables):
    import json

    _, train, dev, out = real_tables
    vocab = json.loads((out / "vocab.json").read_text())
    train_tokens = {t for toks in train["tokens"] for t in toks}
    assert set(vocab) - {"<pad>", "<unk>", OTHER_SPEAKER} <= train_tokens
    dev_only = {t for toks in dev["tokens"] for t in toks} - set(vocab)
    assert dev_only, "dev has words train lacks"
    ids = dict(zip(dev["utterance_id"].astype(str) + "/" + dev["dialogue_id"].astype(str), dev["token_ids"]))
    assert all(len(i) > 0 for i in ids.values())
    unk_rate = sum((t == vocab[UNK]).sum() for t in dev["token_ids"]) / sum(len(t) for t in dev["token_ids"])
    assert 0.01 < unk_rate < 0.15
    tags = train["speaker_tag"].value_counts()
    assert set(tags.index) == {"<spk:joey>", "<spk:ross>", "<spk:rachel>", "<spk:phoebe>", "<spk:monica>",
                               "<spk:chandler>", OTHER_SPEAKER}
