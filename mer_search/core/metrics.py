"""Which way each metric improves: the one definition that training, the search, checkpoint pruning, W&B
summaries and reports all read."""

from __future__ import annotations

from mer_search.core.errors import ConfigError

MODES = {"dev_wf1": "max", "dev_mf1": "max", "dev_acc": "max", "dev_loss": "min", "n_params": "min",
         "dev_microf1": "max"}
# what a space or train.metric may select on (dev_microf1: on a dataset whose schema scores micro F1 without a class)
SELECTABLE = ("dev_wf1", "dev_mf1", "dev_acc", "dev_loss", "dev_microf1")


def dataset_metric(manifest: dict) -> str:
    """What a prepared corpus's dataset is scored by on dev (its schema's metric, recorded in the manifest):
    dev_microf1 for micro F1 without a class, else dev_wf1. Sweeps select on it, the pipeline chooses rows,
    seeds and fusion inputs by it."""
    metric = (manifest.get("dataset") or {}).get("metric") or {}
    return "dev_microf1" if metric.get("name") == "micro_f1" else "dev_wf1"


def mode_of(metric: str) -> str:
    if metric not in MODES:
        raise ConfigError(f"unknown metric {metric!r}; valid: {', '.join(SELECTABLE)}")
    return MODES[metric]


def better(new: float, old: float | None, mode: str) -> bool:
    """Whether `new` improves on `old` (None: nothing yet) for a metric of this mode."""
    return old is None or (new < old if mode == "min" else new > old)
