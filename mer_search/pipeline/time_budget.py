"""--time-budget: each searched stage's share of what is left of it (parsing: config_io.parse_duration)."""

from __future__ import annotations

SWEEP_SHARE = 0.5      # of a stage's share of --time-budget, what its sweep may spend (the rest: refit, seeds)
FINETUNE_WEIGHT = 4.0  # a fine-tuning stage counts four against any other stage's one
FLOOR_S = 60.0         # a spent budget still lets each sweep run its first trial a while


def sweep_share_s(left_s: float, stage: str, todo: dict[str, bool]) -> float:
    """A stage's sweep's share of `left_s`: the searched stages still to run (`todo`: name -> fine-tunes)
    split it by weight, and a sweep may spend half its stage's share."""
    weight = {name: FINETUNE_WEIGHT if finetunes else 1.0 for name, finetunes in todo.items()}
    share = left_s * weight.get(stage, 1.0) / max(sum(weight.values()), 1.0) * SWEEP_SHARE
    return max(share, FLOOR_S)
