"""`mer-search predict`: a model bundle (or a checkpoint) applied to new dialogues in its dataset's CSV format.

The new rows go through the preparation the model was trained with, as fitted on its training data and
carried in the bundle (bundle.py: the format): text cleaning, speaker tags and vocabulary, audio settings, the
train statistics vectors are z-scored with. Only the new rows are prepared, then the bundle's parts run in
order, each writing the features the next reads. Label columns are optional: without them the output has
predictions only; with them, scores too.
"""

from __future__ import annotations

import tempfile
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd

from data_prep.schema import SPLITS, check_separator, load_schema
from mer_search.serving.bundle import DATASET, Bundle
from mer_search.serving.bundle import load as load_bundle
from mer_search.core.errors import ConfigError, UserError


class Predictor:
    """A bundle ready to label new dialogues: `mer_search.load(path).predict(csv)`."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle

    def predict(self, csv: str | Path | pd.DataFrame, clips: str | Path | None = None,
                split: str = "test") -> tuple[pd.DataFrame, dict | None]:
        """Label every row of a MELD-style CSV (a path or a DataFrame with its columns); scores when it has
        an Emotion column. `clips`: a MELD.Raw-style folder whose `split` clip folder holds its clips."""
        if self.bundle.needs_audio and clips is None:
            raise ConfigError(f"{self.bundle.path}: a speech model needs the clips: pass --corpus (clips=)")
        if split not in SPLITS:
            raise ConfigError(f"--split {split!r}: one of {', '.join(SPLITS)}")
        shown = "the DataFrame given to predict" if isinstance(csv, pd.DataFrame) else str(csv)
        user = _read_user_csv(csv)
        with tempfile.TemporaryDirectory(prefix="mer-predict-") as tmp:
            work = Path(tmp)
            (work / DATASET).write_text(self.bundle.dataset_text)
            schema = load_schema(work / DATASET)
            copy = schema.csv_path(work / "corpus", "test")       # the user's rows, as the schema's test CSV
            try:
                return self._predict(user, work, schema, clips, split)
            except UserError as e:           # name the user's file (and the bundle's schema), not the copies
                message = str(e).replace(str(copy), shown).replace(str(work / DATASET), f"{self.bundle.path / DATASET}")
                raise type(e)(message) from None

    def _predict(self, user: pd.DataFrame, work: Path, schema, clips, split: str) -> tuple[pd.DataFrame, dict | None]:
        from data_prep.audio import AudioParams
        from data_prep.prepare import PrepareOptions, prepare
        from data_prep.text import TextParams
        from mer_search.data.corpus import Corpus
        from mer_search.training.config import parse
        from mer_search.training.inputs import make_batches
        from mer_search.core.dirs import FeatureDir
        from mer_search.models import build_model
        from mer_search.training.ensemble import average, softmax
        from mer_search.training.train import metrics_from, pick_device
        from mer_search.training.train import predict as model_predict

        cols = schema.columns
        labelled = cols["label"] in user.columns
        root, prepared = work / "corpus", work / "prepared"
        root.mkdir()
        needed = [cols["text"], cols["speaker"], *schema.dialogue_columns, cols["utterance"]]
        if missing := [c for c in needed if c not in user.columns]:
            raise ConfigError(f"the CSV lacks column(s) {', '.join(missing)}: this model's dataset "
                              f"({schema.name}) needs {', '.join(needed)} (found: {', '.join(map(str, user.columns))})")
        for key, names in (("label", schema.labels), ("second_label", schema.second_labels)):
            if key in cols and cols[key] not in user.columns:
                user[cols[key]] = names[0]            # placeholders; no scores are computed without labels
        for key in ("start", "end"):              # times are kept, not used: absent ones read as unknown (NaN)
            if key in cols and cols[key] not in user.columns:
                user[cols[key]] = ""
        if schema.split_values:                   # one file for every split: these rows are its test rows
            user[cols["split"]] = schema.split_values.get("test", "test")
        user.to_csv(schema.csv_path(root, "test"), index=False)
        if self.bundle.needs_audio:
            (root / schema.clip_dirs["test"]).symlink_to(Path(clips).resolve() / schema.clip_dirs[split])
        settings = self.bundle.spec["settings"]
        audio, text = settings.get("audio") or {}, settings["text"]
        embeddings = next((p["embeddings"] for p in self.bundle.spec["parts"] if p.get("embeddings")), None)
        prepare(PrepareOptions(
            meld_root=root, out=prepared, splits=("test",), text_only=not self.bundle.needs_audio,
            dataset=str(work / DATASET),
            text=TextParams(**{f.name: text[f.name] for f in fields(TextParams) if f.name in text}),
            audio=AudioParams(**{f.name: audio[f.name] for f in fields(AudioParams) if f.name in audio}),
            shard_size=settings.get("shard_size", 64), text_embeddings=embeddings,
            fitted={"vocab": self.bundle.vocab, "speaker_tags": self.bundle.spec["speaker_tags"]}))
        corpus = Corpus(prepared)
        members = dict(self.bundle.members)         # part -> weight; a single model: its top part alone
        results = {}
        for p in self.bundle.spec["parts"]:
            data, model_cfg, _ = parse(self.bundle.checkpoints[p["name"]]["config"])
            data.prepared = str(prepared)
            data.feature_dirs = {k: str(work / "features" / v) for k, v in p["reads"].items()}
            for kind in p["inputs"]:
                if (p["name"], kind) in self.bundle.stats:
                    corpus.use_stats(kind, data, *self.bundle.stats[(p["name"], kind)])
            model = build_model(model_cfg)
            model.load_state_dict(self.bundle.checkpoints[p["name"]]["state_dict"])
            model.to(pick_device("auto"))       # a GPU where there is one; saved weights are CPU tensors
            feeds = any(p["name"] in q["reads"].values() for q in self.bundle.spec["parts"])
            res = model_predict(model, make_batches(corpus, "test", model_cfg, data, False, 0), with_features=feeds)
            if feeds:
                d = FeatureDir(work / "features" / p["name"])
                d.path.mkdir(parents=True)
                d.write_split("test", res, len(corpus.table("test")))
            if p["name"] in members:
                results[p["name"]] = res
        table = corpus.table("test")
        # each member's probabilities in row order, averaged with its weight in the members' order (as the
        # pipeline averaged them: the same floats); one member: its softmax
        names = list(members)
        order = {n: np.argsort(results[n]["row"], kind="stable") for n in names}
        probs = average([softmax(results[n]["logits"][order[n]].astype(np.float64)) for n in names],
                        [members[n] for n in names])
        first = names[0]
        res = {"row": np.asarray(results[first]["row"])[order[first]],
               "labels": np.asarray(results[first]["labels"])[order[first]]}
        rows = table.iloc[res["row"]]
        dialogue = cols["dialogue"] if isinstance(cols["dialogue"], str) else "dialogue"     # composite: the key
        out = pd.DataFrame({dialogue: (rows.dialogue_key if "dialogue_key" in rows else rows.dialogue_id).to_numpy(),
                            cols["utterance"]: rows.utterance_id.to_numpy(), cols["text"]: rows.text_raw.to_numpy(),
                            "predicted": [self.bundle.labels[i] for i in probs.argmax(1)]})
        for i, name in enumerate(self.bundle.labels):
            out[f"p_{name}"] = probs[:, i].round(6)
        metrics = None
        if labelled:
            out.insert(3, cols["label"], rows.emotion_name.to_numpy())
            exclude = schema.metric.exclude                # a micro-F1 dataset scores without this class too
            left_out = [n.lower() for n in self.bundle.labels].index(exclude.lower()) if exclude else None
            metrics = metrics_from(res["labels"], probs.argmax(1), float("nan"), "csv", probs.shape[1],
                                   exclude=left_out)
        order = np.lexsort((rows.utterance_id.to_numpy(), rows.dialogue_id.to_numpy()))
        return out.iloc[order].reset_index(drop=True), metrics


def _read_user_csv(csv) -> pd.DataFrame:
    if isinstance(csv, pd.DataFrame):
        return csv.fillna("").astype(str)         # as read from a CSV: strings, an empty cell empty
    path = Path(csv)
    if not path.is_file():
        raise ConfigError(f"{csv}: no such CSV file")
    try:
        check_separator(path, path.read_text(encoding="utf-8-sig"))
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ConfigError(f"{csv}: not a readable UTF-8 CSV ({str(e).splitlines()[0][:120]})") from None


def load(path: str | Path) -> Predictor:
    """A bundle folder, or a checkpoint (bundled on the fly with the models its feature dirs name)."""
    return Predictor(load_bundle(path))


def predict_csv(model: str | Path, csv: str | Path, corpus: str | Path | None = None,
                split: str = "test") -> tuple[pd.DataFrame, dict | None]:
    """Predictions (label + probability per emotion) for every CSV row; metrics when the CSV has labels.
    `corpus`: the folder whose `split` clip folder holds the clips (speech models)."""
    return load(model).predict(csv, corpus, split)
