"""Training configs as files: find a shipped one, load it, check every value's type, split it into sections.

A config is plain YAML with sections `data` (DataConfig), `model` (a registry config) and `train`
(TrainConfig); two-stage context/fusion adds `utterance_stage`, and a config a sweep exported adds `source`.
Everything that reads a config without training it (bundle, export, pipeline, cli) needs this module only.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from pathlib import Path
from typing import Any

from mer_search import models
from mer_search.core.config_io import field_types, load_yaml, type_problem
from mer_search.data.corpus import CLASS_BALANCE, DATA_RANGES, DataConfig
from mer_search.core.errors import ConfigError
from mer_search.models import model_argument_types, model_names
from mer_search.training.train import TRAIN_RANGES, TrainConfig

SECTIONS = ("data", "model", "train", "utterance_stage", "source")


SHIPPED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


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


def first_seed(cfg: dict) -> int:
    """A config's train.seed is where its seeds start (seeds k, k+1, ...; 0 when it names none)."""
    seed = (cfg.get("train") or {}).get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"train.seed: {seed!r} must be a whole number >= 0 (the first seed of the run)")
    return seed
