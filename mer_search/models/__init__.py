"""One registry of models: a config names a builder and gives its arguments.

Every model maps a batch (a dict of tensors, see mer_search.data) to logits with
`forward(batch)` and to the representation before its classifier with
`features(batch)`; `feature_dim` says how wide that representation is.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from torch import nn

REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def deco(builder):
        REGISTRY[name] = builder
        return builder

    return deco


def build_model(cfg: dict[str, Any]) -> nn.Module:
    """Build `cfg["name"]` with the rest of cfg as keyword arguments; unknown names or arguments fail clearly."""
    _load_all()
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(sorted(REGISTRY))}")
    builder = REGISTRY[name]
    params = inspect.signature(builder).parameters
    unknown = [k for k in cfg if k not in params]
    if unknown:
        raise ValueError(f"model {name!r} has no argument(s) {', '.join(unknown)}; "
                         f"valid: {', '.join(params)}")
    return builder(**cfg)


def model_names() -> list[str]:
    _load_all()
    return sorted(REGISTRY)


def builder_arguments(name: str) -> dict[str, inspect.Parameter]:
    _load_all()
    return dict(inspect.signature(REGISTRY[name]).parameters)


def _load_all() -> None:
    from mer_search.models import context, finetune, fusion, speech, text  # noqa: F401  (they register themselves)


_INPUTS = {"text_mlp": {"tokens"}, "text_lstm": {"tokens"}, "text_transformer": {"tokens"},
           "text_pretrained": {"embedding"}, "text_finetune": {"dialogue_text"},
           "speech_cnn2d": {"mel"}, "speech_cnn1d": {"mel"}, "speech_lstm": {"mel"}, "speech_stats": {"mel"},
           "speech_functionals": {"functionals"}}


def required_inputs(cfg: dict[str, Any]) -> set[str]:
    """Which batch entries a model config reads (tokens, mel, embedding, functionals, features...)."""
    name = cfg.get("name")
    if name == "context":
        return required_inputs(cfg["utterance"]) if cfg.get("utterance") else {"features"}
    if name == "fusion":
        t = required_inputs(cfg["text_model"]) if cfg.get("text_model") else {"features_text"}
        s = required_inputs(cfg["speech_model"]) if cfg.get("speech_model") else {"features_speech"}
        return t | s
    if name not in _INPUTS:
        _load_all()
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(sorted(REGISTRY))}")
    return set(_INPUTS[name])


def needs_dialogues(cfg: dict[str, Any]) -> bool:
    """Context models, and fusion with a context head, train on whole dialogues."""
    return cfg.get("name") == "context" or (cfg.get("name") == "fusion" and cfg.get("head") == "context")


def finetuned_encoder(cfg: dict[str, Any]) -> str | None:
    """The encoder a fine-tuned text model (alone or inside a context/fusion model) tokenizes for, if any."""
    if cfg.get("name") == "text_finetune":
        from mer_search.encoders import DEFAULT_ENCODER

        return cfg.get("encoder", DEFAULT_ENCODER)
    for key in ("utterance", "text_model"):
        if isinstance(cfg.get(key), dict):
            found = finetuned_encoder(cfg[key])
            if found:
                return found
    return None
