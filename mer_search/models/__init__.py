"""One registry of models: a config names a builder and gives its arguments.

Every model maps a batch (a dict of tensors, see mer_search.data.corpus) to logits with
`forward(batch)` and to the representation before its classifier with
`features(batch)`; `feature_dim` says how wide that representation is.

A model registers everything the rest of the system needs to know about it, beside its builder:
the batch entries it reads, which of its arguments come from the prepared data (and how), what it takes
from the training data once built (e.g. per-band statistics), whether it trains on whole dialogues, its
label in the summary table, and the encoder whose tokenizer its text needs. Adding a model is one module
here (found by itself) or anywhere on the path named in
MER_SEARCH_MODELS (comma-separated modules), plus a space.
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import os
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from torch import nn

from mer_search.core.errors import ConfigError

NESTED = ("utterance", "text_model", "speech_model")       # arguments that hold a whole model config
PLUGINS_ENV = "MER_SEARCH_MODELS"


class DataSizes(Protocol):
    """What the prepared data tells a model's builder: vocabulary size, mel bands, vector widths."""

    vocab_size: int
    n_mels: int
    num_classes: int

    def vector_dim(self, kind: str) -> int: ...

    def feature_score(self, kind: str) -> float: ...      # the dev score of the model a feature dir came from


class TrainData(Protocol):
    """What a built model may take from the training split (`from_data` hooks): per-band log-mel statistics."""

    def train_stats(self) -> Any: ...


Fill = Callable[[dict, DataSizes], Any]        # (the model config, the data) -> an argument's value, or None


@dataclass
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]
    inputs: Callable[[dict], set[str]]             # batch entries the model reads
    sizes: dict[str, Fill] = field(default_factory=dict)    # arguments filled from the prepared data
    dialogues: Callable[[dict], bool] = lambda cfg: False     # trains on whole dialogues
    label: Callable[[dict], str] = lambda cfg: cfg["name"]    # its architecture in the summary table
    tokenizer: Callable[[dict], str | None] = lambda cfg: None  # the encoder whose tokenizer its text needs
    # (model, its config, the training data) -> None: what the built model takes from the training split; and
    # (its config, the training data) -> None: the same reads, to fail before a sweep starts when data lacks them
    from_data: Callable[[nn.Module, dict, TrainData], None] | None = None
    check_data: Callable[[dict, TrainData], None] | None = None


REGISTRY: dict[str, ModelSpec] = {}


def register(name: str, inputs: set[str] | Callable[[dict], set[str]], sizes: dict[str, Fill] | None = None,
             dialogues: bool | Callable[[dict], bool] = False, label: Callable[[dict], str] | None = None,
             tokenizer: Callable[[dict], str | None] | None = None,
             from_data: Callable[[nn.Module, dict, TrainData], None] | None = None,
             check_data: Callable[[dict, TrainData], None] | None = None):
    """Register a builder under `name` with what the system needs to know of the model (see ModelSpec)."""
    def deco(builder):
        fills = dict(sizes or {})
        if "num_classes" in inspect.signature(builder).parameters:
            fills["num_classes"] = fill_num_classes          # every classifier: as many as labels.json names
        if callable(inputs):
            read = inputs
        else:
            read = lambda cfg, fixed=frozenset(inputs): set(fixed)      # noqa: E731
        REGISTRY[name] = ModelSpec(name, builder, read, fills,
                                   dialogues if callable(dialogues) else (lambda cfg, d=dialogues: d),
                                   label or (lambda cfg: cfg["name"]), tokenizer or (lambda cfg: None),
                                   from_data, check_data)
        return builder

    return deco


def fill_num_classes(cfg: dict, data: DataSizes) -> int:
    return data.num_classes


def fill_vocab_size(cfg: dict, data: DataSizes) -> int:
    return data.vocab_size


def fill_n_mels(cfg: dict, data: DataSizes) -> int:
    return data.n_mels


def fill_vector_dim(kind: str) -> Fill:
    """The width of the prepared or extracted vectors of `kind` (embedding, functionals, features...)."""
    return lambda cfg, data: data.vector_dim(kind)


def spec(name: str | None) -> ModelSpec:
    _load_all()
    if name not in REGISTRY:
        raise ConfigError(f"unknown model {name!r}; valid names: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def build_model(cfg: dict[str, Any]) -> nn.Module:
    """Build `cfg["name"]` with the rest of cfg as keyword arguments; unknown names or arguments fail clearly."""
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    builder = spec(name).builder
    params = inspect.signature(builder).parameters
    unknown = [k for k in cfg if k not in params]
    if unknown:
        raise ConfigError(f"model {name!r} has no argument(s) {', '.join(unknown)}; "
                          f"valid: {', '.join(params)}")
    try:
        return builder(**cfg)
    except (ValueError, RuntimeError) as e:     # an argument out of range, as torch says (dropout 1.5, dim -3)
        raise ConfigError(f"model {name!r}: {str(e).splitlines()[0]}") from None


def walk(cfg: dict[str, Any], where: str = "model") -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, config) for a model config and every model config nested in it (utterance, text_model,
    speech_model), parents before children: the one traversal of nested models."""
    yield where, cfg
    for key in NESTED:
        if isinstance(cfg.get(key), dict):
            yield from walk(cfg[key], f"{where}.{key}")


def prepare_from_data(model: nn.Module, cfg: dict[str, Any], data: TrainData) -> None:
    """Give a built model what it (or a model nested in it) takes from the training data."""
    for _, node in walk(cfg):
        hook = spec(node.get("name")).from_data
        if hook is not None:
            hook(model, node, data)


def check_data(cfg: dict[str, Any], data: TrainData) -> None:
    """Raise unless the training data holds what the model (and those nested in it) will take from it."""
    for _, node in walk(cfg):
        check = spec(node.get("name")).check_data
        if check is not None:
            check(node, data)


def resolve_sizes(cfg: dict[str, Any], data: DataSizes) -> dict[str, Any]:
    """The config with every argument its model (and the models nested in it) takes from the data filled in;
    nested models first, so that a model's size may read its encoder's."""
    cfg = copy.deepcopy(cfg)
    for _, node in reversed(list(walk(cfg))):
        for arg, fill in spec(node.get("name")).sizes.items():
            value = fill(node, data)
            if value is not None:
                node[arg] = value
    return cfg


def derived_arguments() -> set[str]:
    """Arguments some model fills from the prepared data: never searched or fixed in a space."""
    _load_all()
    return {arg for s in REGISTRY.values() for arg in s.sizes}


def model_names() -> list[str]:
    _load_all()
    return sorted(REGISTRY)


def builder_arguments(name: str) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(spec(name).builder).parameters)


def model_argument_types(name: str) -> dict[str, Any]:
    """A model's config keys -> the type each takes (from its builder's annotations)."""
    from mer_search.core.config_io import argument_types

    return argument_types(spec(name).builder)


_loaded: set[str] = set()


@functools.cache
def _package_modules() -> tuple[str, ...]:
    """The model modules in this package (listed once: _load_all runs on every registry lookup)."""
    return tuple(f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if m.name != "common")


def _load_all() -> None:
    """Import every model module in this package, and those MER_SEARCH_MODELS names (they register themselves)."""
    modules = [*_package_modules(), *(m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip())]
    for module in modules:
        if module not in _loaded:
            try:
                importlib.import_module(module)
            except ImportError as e:
                if module.startswith(__name__):
                    raise
                raise ConfigError(f"{PLUGINS_ENV}: cannot import {module!r} ({e})") from None
            _loaded.add(module)


def required_inputs(cfg: dict[str, Any]) -> set[str]:
    """Which batch entries a model config reads (tokens, mel, embedding, functionals, features...)."""
    return spec(cfg.get("name")).inputs(cfg)


def needs_dialogues(cfg: dict[str, Any]) -> bool:
    """Context models, and fusion with a context head, train on whole dialogues."""
    return spec(cfg.get("name")).dialogues(cfg)


def model_label(cfg: dict[str, Any]) -> str:
    return spec(cfg.get("name")).label(cfg)


def finetuned_encoder(cfg: dict[str, Any]) -> str | None:
    """The encoder a fine-tuned text model (alone or inside a context/fusion model) tokenizes for, if any."""
    return next(filter(None, (spec(node.get("name")).tokenizer(node) for _, node in walk(cfg))), None)
