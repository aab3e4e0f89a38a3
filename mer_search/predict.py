"""`mer-search predict`: apply a trained checkpoint to a MELD-style CSV (and its clips).

The CSV goes through the very `prepare` the model was trained on: same text cleaning,
tokens, speaker tags and vocabulary (rebuilt from the training table and checked
against the checkpoint's vocabulary hash), same audio settings. Vectors are z-scored
with the training split's statistics, as in training. Emotion/Sentiment columns are
optional: without them the output has predictions only; with them, scores too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd

from data_prep import meld
from data_prep.audio import AudioParams
from data_prep.prepare import PrepareOptions, prepare
from data_prep.reader import load_manifest, localize
from data_prep.text import TextParams
from mer_search.data import Corpus
from mer_search.experiment import ConfigError, make_batches, parse
from mer_search.models import build_model, required_inputs
from mer_search.train import load_checkpoint, metrics_from
from mer_search.train import predict as model_predict


def _timestamp(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _train_csv(table: pd.DataFrame, path: Path) -> None:
    """The training rows back as a MELD CSV: prepare rebuilds the same vocabulary and speaker tags from it."""
    pd.DataFrame({"Sr No.": range(1, len(table) + 1), "Utterance": table.text_raw, "Speaker": table.speaker,
                  "Emotion": table.emotion_name, "Sentiment": table.sentiment_name,
                  "Dialogue_ID": table.dialogue_id, "Utterance_ID": table.utterance_id,
                  "StartTime": table.start_s.map(_timestamp), "EndTime": table.end_s.map(_timestamp)}
                 ).to_csv(path, index=False)


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src.resolve(), dst)


def predict_csv(checkpoint: str | Path, csv: str | Path, meld_root: str | Path | None = None, split: str = "test",
                work: str | Path | None = None) -> tuple[pd.DataFrame, dict | None]:
    """Predictions (label + probability per emotion) for every CSV row; metrics when the CSV has labels."""
    ck = load_checkpoint(checkpoint)
    data, model_cfg, _ = parse(ck["config"])
    inputs = required_inputs(model_cfg)
    if inputs & {"features", "features_text", "features_speech"}:
        raise ConfigError(f"{checkpoint}: a two-stage model reads another model's features; predict with the "
                          f"utterance model, or train a joint model")
    prepared = localize(data.prepared)
    manifest = load_manifest(prepared)
    settings = manifest["settings"]
    if "mel" in inputs and meld_root is None:
        raise ConfigError(f"{checkpoint}: a speech model needs the clips: pass --meld-root")
    if split not in meld.SPLITS:
        raise ConfigError(f"--split {split!r}: one of {', '.join(meld.SPLITS)}")
    if not Path(csv).is_file():
        raise ConfigError(f"{csv}: no such CSV file")
    try:
        meld.check_separator(Path(csv), Path(csv).read_text(encoding="utf-8-sig"))
        user = pd.read_csv(csv, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ConfigError(f"{csv}: not a readable UTF-8 CSV ({str(e).splitlines()[0][:120]})") from None
    labelled = "Emotion" in user.columns
    tmp = Path(work or tempfile.mkdtemp(prefix="mer-predict-"))
    try:
        root, out = tmp / "meld", tmp / "prepared"
        root.mkdir(parents=True, exist_ok=True)
        for col, value in (("Emotion", "neutral"), ("Sentiment", "neutral")):
            if col not in user.columns:
                user[col] = value            # placeholders; no scores are computed without labels
        user.to_csv(root / "test_sent_emo.csv", index=False)
        _train_csv(pd.read_parquet(prepared / "train.parquet"), root / "train_sent_emo.csv")
        needs_audio = "mel" in inputs or "functionals" in inputs
        if needs_audio:
            _link(Path(meld_root) / meld.CLIP_DIRS[split], root / meld.CLIP_DIRS["test"])
        audio = AudioParams(**{f.name: settings["audio"][f.name] for f in fields(AudioParams)
                               if f.name in (settings.get("audio") or {})}) if needs_audio else AudioParams()
        given = settings["text"]
        text = TextParams(**{f.name: given[f.name] for f in fields(TextParams) if f.name in given})
        prepare(PrepareOptions(meld_root=root, out=out, splits=("test",), text_only=not needs_audio, text=text,
                               audio=audio, text_embeddings=data.embeddings if "embedding" in inputs else None))
        for rel in ("train.parquet", f"embeddings/{data.embeddings}/train.npy", "functionals/train.npy"):
            if (prepared / rel).exists() and not (out / rel).exists():
                _link(prepared / rel, out / rel)      # training statistics for z-scoring, as in training
        corpus = Corpus(out)
        if corpus.vocab_hash != ck["vocab_hash"]:
            raise ConfigError(f"{checkpoint}: the vocabulary rebuilt from {prepared} differs from the one the "
                              f"model was trained on; was {prepared} prepared again with other settings?")
        data.prepared = str(out)
        model = build_model(model_cfg)
        model.load_state_dict(ck["state_dict"])
        res = model_predict(model, make_batches(corpus, "test", model_cfg, data, False, 0))
        table = corpus.table("test")
    finally:
        if work is None:
            shutil.rmtree(tmp, ignore_errors=True)
    logits = res["logits"] - res["logits"].max(1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    rows = table.iloc[res["row"]]
    out_df = pd.DataFrame({"Dialogue_ID": rows.dialogue_id.to_numpy(), "Utterance_ID": rows.utterance_id.to_numpy(),
                           "Utterance": rows.text_raw.to_numpy(),
                           "predicted": [meld.EMOTIONS[i] for i in probs.argmax(1)]})
    for i, name in enumerate(meld.EMOTIONS):
        out_df[f"p_{name}"] = probs[:, i].round(6)
    metrics = None
    if labelled:
        out_df.insert(3, "Emotion", rows.emotion_name.to_numpy())
        metrics = metrics_from(res["labels"], probs.argmax(1), float("nan"), "csv", probs.shape[1])
    return out_df.sort_values(["Dialogue_ID", "Utterance_ID"]).reset_index(drop=True), metrics
