"""What a config's model reads from the prepared data: its sizes (vocabulary, mel bands, vector widths)
and its batches, and whether the data holds them at all (checked before a sweep starts)."""

from __future__ import annotations

from mer_search import models
from mer_search.training.config import parse
from mer_search.data.corpus import Batches, Corpus, DataConfig, SplitData
from mer_search.core.dirs import FeatureDir
from mer_search.core.errors import ConfigError
from mer_search.core.metrics import dataset_metric
from mer_search.models import finetuned_encoder, needs_dialogues, required_inputs


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
