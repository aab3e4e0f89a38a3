"""A model bundle: one folder with everything a trained model needs to label new dialogues.

A two-stage model reads other models' features (a context model reads an utterance model's; a fusion
reads a text and a speech model's, or their context models'). The bundle holds that whole chain:

    bundle.json      the parts in the order they run, which features each reads from which part, the
                     fitted preparation (text and audio settings, speaker tags), the label set, scores;
                     for an ensemble (format 2) its members: the parts whose probabilities are averaged,
                     each with its integer weight
    vocab.json       the training vocabulary (its hash is checked against every part's)
    labels.json      the label set, in class-id order
    dataset.yaml     the corpus's schema as it was prepared: which columns a new CSV has
    parts/NAME.pt    each part's checkpoint (loaded with weights_only=True)
    stats/NAME.KIND.npy  train mean and std of each vector input a part z-scores (embeddings,
                     functionals, upstream features), so new rows are scaled as the training rows were
    MODEL_CARD.md    data, scores, each part's config, the code's version

This module is the format (write, read, check); predict.py runs a bundle on new rows.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from data_prep.atomic import write_json_atomic
from data_prep.reader import PreparedDir
from data_prep.schema import shipped
from data_prep.text import OTHER_SPEAKER
from mer_search.core.dirs import read_json
from mer_search.core.errors import ConfigError

BUNDLE_JSON = "bundle.json"
DATASET = PreparedDir.DATASET   # the schema of the corpus it was trained on: what a new CSV looks like
VOCAB = PreparedDir.VOCAB
LABELS = PreparedDir.LABELS
FORMAT = 1
ENSEMBLE_FORMAT = 2     # with members; a single model's bundle stays format 1, readable by older versions
TOP = "model"        # the part whose outputs are the predictions (one model)
RAW_INPUTS = {"tokens", "mel", "dialogue_text"}      # prepared, not z-scored vectors


@dataclass
class Part:
    name: str
    checkpoint: Path
    reads: dict[str, str]          # feature key (features, features_text, ...) -> the part that writes it


def _feature_keys(model_cfg: dict, feature_dirs: dict) -> list[str]:
    from mer_search.data.corpus import LOGP
    from mer_search.models import required_inputs

    return sorted(k for k in required_inputs(model_cfg) if not k.endswith(LOGP) and k in feature_dirs)


def chain(checkpoint: str | Path | list, tops: list[str] | None = None) -> list[Part]:
    """The parts a checkpoint needs, upstream first: each feature dir it reads names the checkpoint it came
    from (`mer-search features` records it). Several checkpoints (an ensemble's members, named `tops`): one
    chain holding each, a part they share once."""
    from mer_search.training.config import parse
    from mer_search.core.dirs import FeatureDir
    from mer_search.training.train import load_checkpoint

    parts: dict[str, Part] = {}          # checkpoint path -> part
    names: set[str] = set()

    def visit(path: Path, name: str) -> str:
        key = str(path.resolve())
        if key in parts:
            return parts[key].name
        if not path.is_file():
            raise ConfigError(f"{path}: no such checkpoint (a feature dir in the chain names it)")
        data, model_cfg, _ = parse(load_checkpoint(path)["config"], str(path))
        reads = {}
        for k in _feature_keys(model_cfg, data.feature_dirs):
            manifest = read_json(FeatureDir(data.feature_dirs[k]).manifest)
            if not isinstance(manifest, dict) or "checkpoint" not in manifest:
                raise ConfigError(f"{path}: reads {k} from {data.feature_dirs[k]}, which names no checkpoint "
                                  f"(not written by `mer-search features`)")
            reads[k] = visit(Path(manifest["checkpoint"]), Path(data.feature_dirs[k]).name)
        unique, i = name, 2
        while unique in names:
            unique, i = f"{name}_{i}", i + 1
        names.add(unique)
        parts[key] = Part(unique, path, reads)
        return unique

    for path, top in zip(checkpoint if isinstance(checkpoint, list) else [checkpoint], tops or [TOP]):
        visit(Path(path), top)
    return list(parts.values())          # insertion order: a part after every part it reads


def member_name(i: int) -> str:
    return f"member{i + 1}"


def _commit() -> str:
    """The code's version, and its git commit where it runs from a checkout."""
    from mer_search import __version__

    try:
        sha = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"mer-search {__version__}" + (f" (commit {sha})" if sha else "")


def write_bundle(checkpoint: str | Path | list, out: str | Path, card: dict | None = None,
                 weights: list[int] | None = None) -> Path:
    """Bundle `checkpoint` and every part it reads features from into `out` (replaced whole). A list of
    checkpoints with their integer `weights`: an ensemble, whose predictions average their probabilities."""
    from mer_search.data.corpus import Corpus
    from mer_search.training.config import parse
    from mer_search.models import required_inputs
    from mer_search.training.train import load_checkpoint

    out = Path(out)
    ensemble = isinstance(checkpoint, list)
    if ensemble and (weights is None or len(weights) != len(checkpoint) or min(weights) < 1):
        raise ConfigError("an ensemble bundle needs one positive integer weight per member")
    tops = [member_name(i) for i in range(len(checkpoint))] if ensemble else None
    parts = chain(checkpoint, tops)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "parts").mkdir(parents=True)
    (tmp / "stats").mkdir()
    described, prepared, corpus, configs = [], None, None, {}
    for part in parts:
        ck = load_checkpoint(part.checkpoint)
        data, model_cfg, _ = parse(ck["config"], str(part.checkpoint))
        if corpus is None:
            prepared, corpus = data.prepared, Corpus(data.prepared)
        if ck["vocab_hash"] != corpus.vocab_hash:
            raise ConfigError(f"{part.checkpoint}: trained on another prepared dir than {prepared}: a bundle's "
                              f"parts share one preparation")
        shutil.copyfile(part.checkpoint, tmp / "parts" / f"{part.name}.pt")
        inputs = sorted(required_inputs(model_cfg))
        for kind in inputs:
            if kind not in RAW_INPUTS and not kind.endswith("_logp"):
                mean, std = corpus.train_vector_stats(kind, data)
                np.save(tmp / "stats" / f"{part.name}.{kind}.npy", np.stack([mean, std]), allow_pickle=False)
        described.append({"name": part.name, "file": f"parts/{part.name}.pt", "reads": part.reads,
                          "inputs": inputs, "model": model_cfg["name"], "source": str(part.checkpoint),
                          "embeddings": data.embeddings if "embedding" in inputs else None})
        configs[part.name] = ck["config"]
    root = PreparedDir(corpus.root)
    train = corpus.table("train")
    tags = {s: t for s, t in zip(train.speaker, train.speaker_tag) if t and t != OTHER_SPEAKER}
    shutil.copyfile(prepared_schema(root, corpus.manifest), tmp / DATASET)
    shutil.copyfile(root.file(root.VOCAB), tmp / VOCAB)
    shutil.copyfile(root.file(root.LABELS), tmp / LABELS)
    manifest = corpus.manifest
    card = dict(card or {})
    card.setdefault("data", {"prepared": str(prepared), "splits": {s: v.get("rows") for s, v in
                                                                    manifest.get("splits", {}).items()}})
    card["code"] = _commit()
    spec = {"format": ENSEMBLE_FORMAT if ensemble else FORMAT, "parts": described, "vocab_hash": corpus.vocab_hash,
            "settings": manifest["settings"], "speaker_tags": tags, "card": card}
    if ensemble:        # a member met again upstream of another keeps its first name: ask the chain
        by_path = {str(p.checkpoint.resolve()): p.name for p in parts}
        spec["members"] = [{"part": by_path[str(Path(c).resolve())], "weight": int(w)}
                           for c, w in zip(checkpoint, weights)]
        card["members"] = [f"{m['part']} (weight {m['weight']}): {c}" for m, c in zip(spec["members"], checkpoint)]
    write_json_atomic(tmp / BUNDLE_JSON, spec)
    (tmp / "MODEL_CARD.md").write_text(_card_text(card, described, configs))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def prepared_schema(prepared: PreparedDir, manifest: dict) -> Path:
    """The schema a prepared dir was made with: its own copy (dataset.yaml, written since prepare records it);
    in an older dir, the file its manifest names, or MELD's for a dir prepared before schemas existed. Never a
    guess: an older dir whose schema file is gone is an error saying how to record it."""
    own = prepared.file(prepared.DATASET)
    if own.is_file():
        return own
    recorded = (manifest.get("dataset") or {}).get("schema")
    if recorded is None:                          # prepared before dataset schemas: MELD was the only corpus
        return shipped()["meld"]
    if Path(recorded).is_file():
        return Path(recorded)
    raise ConfigError(f"{prepared.path}: prepared with the dataset schema {recorded}, which is gone, by a version "
                      f"that did not keep a copy: rerun the same `mer-search prepare` (it reuses the finished work "
                      f"and records the schema's text in {prepared.DATASET}) with --dataset naming that schema")


def _card_text(card: dict, parts: list[dict], configs: dict) -> str:
    lines = ["# Model card", "", f"Row: {card.get('row', 'a single model')}", f"Code: {card['code']}", ""]
    if card.get("members"):
        lines += ["## Members (their probabilities averaged with these weights)", ""]
        lines += [f"- {m}" for m in card["members"]] + [""]
    if card.get("scores"):
        lines += ["## Scores (weighted F1 where no other metric is named)", ""]
        lines += [f"- {k}: {v}" for k, v in card["scores"].items()] + [""]
    lines += ["## Data", "", f"Prepared from {card['data']['prepared']}: "
              + ", ".join(f"{s} {n} utterances" for s, n in card["data"]["splits"].items()), "",
              "## Parts (in the order they run)", ""]
    for p in parts:
        reads = ", ".join(f"{k} from {v}" for k, v in p["reads"].items()) or "the utterance itself"
        lines += [f"### {p['name']}: {p['model']} (reads {reads})", "", "```yaml",
                  yaml.safe_dump(configs[p["name"]], sort_keys=False).strip(), "```", ""]
    return "\n".join(lines)


class Bundle:
    """A bundle folder, checked whole on load: every part present, one vocabulary throughout."""

    def __init__(self, path: str | Path):
        from mer_search.data.corpus import vocab_hash
        from mer_search.training.train import load_checkpoint

        self.path = Path(path)
        spec = read_json(self.path / BUNDLE_JSON)
        if not isinstance(spec, dict) or spec.get("format") not in (FORMAT, ENSEMBLE_FORMAT):
            raise ConfigError(f"{self.path}: not a model bundle (no readable {BUNDLE_JSON}); `mer-search pipeline` "
                              f"writes one under OUT/bundle")
        self.spec = spec
        if not (self.path / DATASET).is_file():
            raise ConfigError(f"bundle {self.path}: {DATASET} (the schema of its corpus) is missing")
        for p in spec["parts"]:
            if not (self.path / p["file"]).is_file():
                raise ConfigError(f"bundle {self.path}: part {p['name']} ({p['file']}) is missing")
        vocab = json.loads((self.path / VOCAB).read_text())
        self.vocab_hash = vocab_hash(vocab)
        if self.vocab_hash != spec["vocab_hash"]:
            raise ConfigError(f"bundle {self.path}: {VOCAB} is not the vocabulary its parts were trained on")
        self.checkpoints = {p["name"]: load_checkpoint(self.path / p["file"]) for p in spec["parts"]}
        for name, ck in self.checkpoints.items():
            if ck["vocab_hash"] != self.vocab_hash:
                raise ConfigError(f"bundle {self.path}: part {name} was trained on another vocabulary")
        self.vocab = vocab
        self.dataset_text = (self.path / DATASET).read_text()     # kept: a bundle made on the fly is deleted
        self.labels = json.loads((self.path / LABELS).read_text())["emotion"]
        self.stats = {(p["name"], kind): np.load(path, allow_pickle=False)
                      for p in spec["parts"] for kind in p["inputs"]
                      if (path := self.path / "stats" / f"{p['name']}.{kind}.npy").exists()}

    @property
    def members(self) -> list[tuple[str, int]]:
        """(part, weight) of each model whose probabilities are averaged: one model's bundle, its top part."""
        if "members" in self.spec:
            return [(m["part"], m["weight"]) for m in self.spec["members"]]
        return [(TOP, 1)]

    @property
    def needs_audio(self) -> bool:
        return any({"mel", "functionals"} & set(p["inputs"]) for p in self.spec["parts"])


def load(path: str | Path) -> Bundle:
    """A bundle folder, or a single checkpoint (bundled on the fly with the chain its feature dirs name)."""
    path = Path(path)
    if path.is_dir():
        return Bundle(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such bundle or checkpoint")
    with tempfile.TemporaryDirectory(prefix="mer-bundle-") as tmp:
        return Bundle(write_bundle(path, Path(tmp) / "bundle"))      # read whole into memory on load
