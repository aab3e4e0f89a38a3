"""One config, end to end: data -> model -> fit -> run dir. What `mer-search train` and the search call.

Reading a config is config.py's; its sizes and batches from the prepared data, inputs.py's. A two-stage
context/fusion config (`utterance_stage`) trains its utterance model first and reads its features.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from data_prep.atomic import write_atomic, write_json_atomic
from mer_search import models
from mer_search.training.config import first_seed, parse
from mer_search.data.corpus import Batches, ChainedBatches, Corpus, DataConfig
from mer_search.core.dirs import RunDir, read_json
from mer_search.core.errors import ConfigError
from mer_search.training.features import extract_features
from mer_search.training.inputs import make_batches, resolve_sizes
from mer_search.models import build_model
from mer_search.training.train import (CheckpointWriter, ConsoleReporter, Reporter, TrainConfig, confusion, fit,
                              load_checkpoint, per_class, pin_threads, predict, score)

log = logging.getLogger(__name__)


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


