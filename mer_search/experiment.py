"""One config, end to end: data -> model -> fit -> run dir. What `mer-search train` and the search call.

A config is plain YAML with sections `data` (DataConfig), `model` (a registry
config) and `train` (TrainConfig); sizes that come from the data (vocabulary,
mel bands, vector widths) are filled in here. Two-stage context/fusion adds
`utterance_stage`: an utterance config trained first, whose features feed the model.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from data_prep.atomic import write_atomic, write_json_atomic
from mer_search.data import CLASS_BALANCE, DATA_RANGES, Batches, ChainedBatches, Corpus, DataConfig, SplitData
from mer_search.dirs import RunDir
from mer_search.config_io import field_types, load_yaml, type_problem
from mer_search.errors import ConfigError
from mer_search.metrics import dataset_metric
from mer_search import models
from mer_search.models import (build_model, finetuned_encoder, model_argument_types, model_names, needs_dialogues,
                               required_inputs)
from mer_search.train import (TRAIN_RANGES, CheckpointWriter, ConsoleReporter, Reporter, TrainConfig, confusion, fit,
                              per_class, pin_threads, predict, score)

log = logging.getLogger(__name__)
SECTIONS = ("data", "model", "train", "utterance_stage", "source")


SHIPPED_CONFIGS = Path(__file__).resolve().parent / "configs"


def find_config(name: str | Path) -> Path:
    """A config file, or the name of a shipped reference config (mer_search/configs/NAME.yaml)."""
    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    if (SHIPPED_CONFIGS / f"{name}.yaml").is_file():
        return SHIPPED_CONFIGS / f"{name}.yaml"
    names = ", ".join(sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.yaml")))
    raise ConfigError(f"no config file {name!r} and no shipped config of that name; shipped: {names}")


def load_config(path: str | Path) -> dict:
    """A training config from YAML (1e-3 reads as a number), its sections' value types checked."""
    cfg = load_yaml(path, ConfigError, "config file")
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise ConfigError(f"{path}: expected a mapping with at least a `model` section")
    check_types(cfg, str(path))
    return cfg


def check_types(cfg: dict, source: str, prefix: str = "") -> None:
    """Every value a config sets has the type its field or builder argument declares; a wrong one is one
    ConfigError naming the source, the key, the expected type and the value. Unknown keys are parse's to name."""
    for section, cls, ranges in (("data", DataConfig, DATA_RANGES), ("train", TrainConfig, TRAIN_RANGES)):
        values = _legacy_data(cfg.get(section)) if section == "data" else cfg.get(section)
        if values is not None and not isinstance(values, dict):
            raise ConfigError(f"{source}: {prefix}{section}: expected a mapping, got {values!r}")
        types = field_types(cls)
        for key, value in (values or {}).items():
            problem = key in types and (type_problem(value, [types[key]]) or
                                        (key in ranges and ranges[key].problem(value)))
            if problem:
                raise ConfigError(f"{source}: {prefix}{section}.{key}: {problem}")
    _check_model_types(cfg.get("model"), source, f"{prefix}model")
    if isinstance(cfg.get("utterance_stage"), dict):
        check_types(cfg["utterance_stage"], source, f"{prefix}utterance_stage.")


def _check_model_types(model: Any, source: str, where: str) -> None:
    if not isinstance(model, dict):
        raise ConfigError(f"{source}: {where}: expected a mapping with a name, got {model!r}")
    for path, node in models.walk(model, where):
        if node.get("name") not in model_names():
            continue          # build_model names the valid ones
        types = model_argument_types(node["name"])
        for key, value in node.items():
            if key in models.NESTED and isinstance(value, dict):     # walk visits it
                continue
            problem = key in types and type_problem(value, [types[key]])
            if problem:
                raise ConfigError(f"{source}: {path}.{key}: {problem}")


def final_config(cfg: dict, prepared: str | None = None, epochs: int | None = None, train_on: str = "train") -> dict:
    """A config as `mer-search train` runs it: its overrides applied; train+dev trains on both for the
    config's fixed epoch count (nothing held out to stop early or to step a plateau schedule on)."""
    cfg = copy.deepcopy(cfg)
    if prepared:
        cfg.setdefault("data", {})["prepared"] = prepared
    if epochs:
        cfg.setdefault("train", {})["epochs"] = epochs
    if train_on == "train+dev":
        cfg.setdefault("data", {})["train_splits"] = ["train", "dev"]
        cfg.setdefault("train", {}).update(patience=0)
        if cfg["train"].get("schedule") == "plateau":
            cfg["train"]["schedule"] = "none"
    elif train_on != "train":
        raise ConfigError(f"train_on {train_on!r}: train or train+dev")
    return cfg


def _dataclass_from(cls, section: dict | None, where: str):
    section = dict(section or {})
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(section) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    return cls(**section)


def parse(cfg: dict, source: str = "config") -> tuple[DataConfig, dict, TrainConfig]:
    unknown = sorted(set(cfg) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    check_types(cfg, source)
    data = _dataclass_from(DataConfig, _legacy_data(cfg.get("data")), "data")
    train = _dataclass_from(TrainConfig, cfg.get("train"), "train")
    if not data.prepared:
        raise ConfigError("data.prepared: the output dir of `mer-search prepare` is required")
    if data.class_balance not in CLASS_BALANCE:
        raise ConfigError(f"data.class_balance {data.class_balance!r}: one of {', '.join(CLASS_BALANCE)}")
    return data, copy.deepcopy(cfg["model"]), train


def _legacy_data(section: dict | None) -> dict | None:
    """Configs written before class_balance said `class_weights: true/false`; read them as they meant."""
    if not section or "class_weights" not in section:
        return section
    section = dict(section)
    old = section.pop("class_weights")
    section.setdefault("class_balance", "weights" if old else "none")
    return section


class CorpusSizes:
    """What the prepared data says of a model's sizes (models.DataSizes), read only when a model asks."""

    def __init__(self, corpus: Corpus, data: DataConfig):
        self.corpus, self.data = corpus, data

    @property
    def vocab_size(self) -> int:
        return len(self.corpus.vocab)

    @property
    def n_mels(self) -> int:
        return self.corpus.n_mels

    @property
    def num_classes(self) -> int:
        return self.corpus.num_classes

    def vector_dim(self, kind: str) -> int:
        return int(self.corpus.vectors(kind, "train", self.data).shape[1])

    def feature_score(self, kind: str) -> float:
        from mer_search.features import FeatureDir

        return FeatureDir(self.data.feature_dirs.get(kind, "")).dev_score(dataset_metric(self.corpus.manifest))


def resolve_sizes(model_cfg: dict, corpus: Corpus, data: DataConfig) -> dict:
    """Fill vocab_size / n_mels / *_dim from the prepared data (and nested encoder configs): each model's
    registration says which of its arguments come from where."""
    return models.resolve_sizes(model_cfg, CorpusSizes(corpus, data))


def make_batches(corpus: Corpus, split: str, model_cfg: dict, data: DataConfig, train: bool, seed: int) -> Batches:
    split_data = SplitData(corpus, split, required_inputs(model_cfg), data, train=train,
                           encoder=finetuned_encoder(model_cfg))
    try:
        return Batches(split_data, data.batch_size if train else max(64, data.batch_size), shuffle=train, seed=seed,
                       dialogues=needs_dialogues(model_cfg), bucket=data.bucket,
                       balanced=train and data.class_balance == "sampler")
    except ValueError as e:
        raise ConfigError(str(e)) from None


@dataclass
class Experiment:
    """One config, set up to train (recipe style: setup -> fit -> evaluate; `run` saves). What `mer-search
    train` and every search trial run."""
    config: dict                   # the full config as trained: sizes filled in, every default spelled out
    data: DataConfig
    model_cfg: dict
    train: TrainConfig
    corpus: Corpus
    train_batches: Batches | ChainedBatches
    dev_batches: Batches | None    # None: dev is part of the training data
    model: nn.Module
    seed: int

    @classmethod
    def setup(cls, cfg: dict, seed: int) -> "Experiment":
        """Parse a config, open its data, build batches and the seeded model."""
        data, model_cfg, train = parse(cfg)
        train.seed = seed
        corpus = Corpus(data.prepared)
        if train.metric == "dev_microf1" and corpus.metric_exclude is None:
            raise ConfigError(f"train.metric dev_microf1: {data.prepared}'s dataset scores no micro F1 (its schema "
                              f"would say metric: {{name: micro_f1, exclude: LABEL}}); use dev_wf1")
        model_cfg = resolve_sizes(model_cfg, corpus, data)
        unknown = [s for s in data.train_splits if s not in ("train", "dev")]
        if unknown or "train" not in data.train_splits:
            raise ConfigError(f"data.train_splits {data.train_splits}: use [train] or [train, dev]")
        tr = make_batches(corpus, "train", model_cfg, data, True, seed)
        if data.class_balance in ("weights", "sqrt_weights"):
            train.class_weights = tr.data.class_weights(1.0 if data.class_balance == "weights" else 0.5).tolist()
        dev = make_batches(corpus, "dev", model_cfg, data, False, seed)
        if "dev" in data.train_splits:     # a final model on train + dev: dev is no longer held out
            tr = ChainedBatches([tr, make_batches(corpus, "dev", model_cfg, data, True, seed + 1)], seed)
            dev = None
        torch.manual_seed(seed)
        model = build_model(model_cfg)
        models.prepare_from_data(model, model_cfg, corpus)
        full = {**cfg, "data": asdict(data), "model": model_cfg, "train": asdict(train)}
        return cls(full, data, model_cfg, train, corpus, tr, dev, model, seed)

    @property
    def n_params(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))

    def fit(self, reporter: Reporter, checkpoint_dir: str | Path, resume: dict | None = None):
        """Train; the model ends holding its best dev weights; checkpoints each epoch into `checkpoint_dir`."""
        writer = CheckpointWriter(checkpoint_dir, self.config, self.corpus.vocab_hash)
        return fit(self.model, self.train_batches, self.dev_batches, self.train, reporter, writer, resume=resume)

    def evaluate(self, splits: tuple[str, ...]) -> dict:
        """Metrics, confusion matrix and per-class scores on each split that is prepared and held out."""
        metrics: dict = {}
        for split in splits:
            if split not in self.corpus.splits or (split == "dev" and self.dev_batches is None):
                continue        # not prepared, or trained on
            res = predict(self.model, make_batches(self.corpus, split, self.model_cfg, self.data, False, self.seed))
            preds = res["logits"].argmax(1)
            metrics.update(score(res, split))
            n = res["logits"].shape[1]
            metrics[f"{split}_confusion"] = confusion(res["labels"], preds, n).tolist()
            metrics[f"{split}_per_class"] = per_class(res["labels"], preds, n)
        return metrics


def run(cfg: dict, out: str | Path, seed: int = 0, reporter: Reporter | None = None,
        splits: tuple[str, ...] = ("dev",), reuse: bool = False) -> dict:
    """Train one config with one seed into the run dir `out`; returns the final metrics. `reuse`: a run dir
    that holds this very training already (same config and seed, finished) is kept, and scored on any split
    it lacks, instead of trained again (the pipeline's refit of its exported config is its seed 0). A two-stage
    config reuses its utterance stage the same way, and itself only where that stage is older than it."""
    run_dir = RunDir(out)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    cfg = copy.deepcopy(cfg)
    if cfg.get("utterance_stage"):
        from mer_search.features import extract_features

        stage = copy.deepcopy(cfg["utterance_stage"])
        stage.setdefault("data", {}).setdefault("prepared", cfg.get("data", {}).get("prepared", ""))
        run(stage, run_dir.utterance_stage().path, seed, reporter=None, reuse=reuse)
        feats = extract_features(run_dir.utterance_stage().best, run_dir.features)
        cfg.setdefault("data", {}).setdefault("feature_dirs", {})
        key = cfg["data"].pop("feature_key", "features")
        cfg["data"]["feature_dirs"][key] = str(feats)
    exp = Experiment.setup(cfg, seed)
    if reuse:
        done = _trained_before(run_dir, exp, seed, splits)
        if done is not None:
            return done
    log.info("training on %d CPU thread(s) (train.threads)", pin_threads(exp.train.threads))
    write_atomic(run_dir.config, lambda p: p.write_text(yaml.safe_dump(exp.config, sort_keys=False)))
    log.info("config:\n%s", yaml.safe_dump(exp.config, sort_keys=False))
    history = exp.fit(reporter or ConsoleReporter(), run_dir.path)
    metrics = {"seed": seed, "best_epoch": history.best_epoch, "params": exp.n_params, **exp.evaluate(splits)}
    write_json_atomic(run_dir.history, history.epochs)
    write_json_atomic(run_dir.metrics, metrics)
    return metrics


def _trained_before(run_dir: RunDir, exp: Experiment, seed: int, splits: tuple[str, ...]) -> dict | None:
    """The metrics of a finished run of exactly this config and seed in `run_dir` (scored on the splits it
    lacks), or None."""
    from mer_search.dirs import read_json
    from mer_search.train import load_checkpoint

    done = read_json(run_dir.metrics)
    if not (isinstance(done, dict) and done.get("seed") == seed and run_dir.best.exists()
            and run_dir.config.exists()):
        return None
    stage = run_dir.utterance_stage().best      # trained again after this run finished: its features changed
    if stage.exists() and stage.stat().st_mtime > run_dir.metrics.stat().st_mtime:
        return None
    def trained(config: dict) -> dict:        # what decides the training (an export's `source` does not)
        return {k: v for k, v in config.items() if k != "source"}

    if trained(yaml.safe_load(run_dir.config.read_text())) != trained(yaml.safe_load(yaml.safe_dump(exp.config))):
        return None
    missing = tuple(s for s in splits if f"{s}_wf1" not in done)
    if missing:
        exp.model.load_state_dict(load_checkpoint(run_dir.best)["state_dict"])
        done.update(exp.evaluate(missing))
        write_json_atomic(run_dir.metrics, done)
    log.info("seed %d: this training is in %s already (same config and seed): kept", seed, run_dir.path)
    return done


def first_seed(cfg: dict) -> int:
    """A config's train.seed is where its seeds start (seeds k, k+1, ...; 0 when it names none)."""
    seed = (cfg.get("train") or {}).get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"train.seed: {seed!r} must be a whole number >= 0 (the first seed of the run)")
    return seed


def run_seeds(cfg: dict, out: str | Path, seeds: int, reporter: Reporter | None = None,
              splits: tuple[str, ...] = ("dev",), reuse: bool = False) -> dict:
    """Several seeds, from the config's train.seed on; the summary gives mean and std of every metric."""
    run_dir = RunDir(out)
    start = first_seed(cfg)
    with run_dir.lock():
        per_seed = [run(cfg, run_dir.seed(s).path, s, reporter, splits, reuse) for s in range(start, start + seeds)]
        return _summarize(per_seed, run_dir)


def _summarize(per_seed: list[dict], run_dir: RunDir) -> dict:
    seeds = len(per_seed)
    keys = [k for k in per_seed[0] if k.startswith(("dev_", "test_")) and "_f1_" not in k
            and isinstance(per_seed[0][k], float)]
    summary = {"seeds": seeds, "per_seed": per_seed,
               **{k: {"mean": float(np.mean([m[k] for m in per_seed])),
                      "std": float(np.std([m[k] for m in per_seed]))} for k in keys}}
    for split in ("dev", "test"):
        if f"{split}_confusion" in per_seed[0]:
            summary[f"{split}_confusion"] = np.sum([m[f"{split}_confusion"] for m in per_seed], axis=0).tolist()
            summary[f"{split}_per_class"] = {k: np.mean([m[f"{split}_per_class"][k] for m in per_seed], axis=0).tolist()
                                             for k in per_seed[0][f"{split}_per_class"]}
    write_json_atomic(run_dir.summary, summary)      # last: its presence marks the run finished
    return summary


class _WithParams:
    """Adds the model's parameter count to every report (a search objective, and a column in reports)."""

    def __init__(self, reporter: Reporter, n_params: int):
        self.reporter, self.n_params = reporter, n_params

    def report(self, epoch: int, metrics: dict) -> None:
        self.reporter.report(epoch, {**metrics, "n_params": self.n_params})


def train_trial(cfg: dict, workdir: str | Path, reporter: Reporter, resume: dict | None = None, seed: int = 0):
    """One search trial: reports every epoch and can continue from a checkpoint payload. The sweep's --seed
    seeds every trial (a space cannot fix train.seed)."""
    exp = Experiment.setup(cfg, seed)
    if resume:
        exp.model.load_state_dict(resume["state_dict"])
    return exp.fit(_WithParams(reporter, exp.n_params), workdir, resume=resume), exp.model


def check_data(cfg: dict) -> None:
    """Raise (ValueError/KeyError/FileNotFoundError) unless the prepared data holds what this config reads."""
    data, model_cfg, _ = parse(cfg)
    corpus = Corpus(data.prepared)
    model_cfg = resolve_sizes(model_cfg, corpus, data)
    inputs = required_inputs(model_cfg)
    split = SplitData(corpus, "train", inputs, data, train=True, encoder=finetuned_encoder(model_cfg))
    Batches(split, data.batch_size, shuffle=False, dialogues=needs_dialogues(model_cfg),
            balanced=data.class_balance == "sampler")       # sampler x dialogue batches: the same error as a run
    models.check_data(model_cfg, corpus)
