"""--time-budget: a duration as typed, and each searched stage's share of what is left of it."""

from __future__ import annotations

import re

from mer_search.errors import ConfigError

SWEEP_SHARE = 0.5      # of a stage's share of --time-budget, what its sweep may spend (the rest: refit, seeds)
FINETUNE_WEIGHT = 4.0  # a fine-tuning stage counts four against any other stage's one
FLOOR_S = 60.0         # a spent budget still lets each sweep run its first trial a while


def parse_duration(text: str) -> float:
    """'2h', '90m', '1h30m', '45s' or plain seconds -> seconds."""
    t = str(text).strip().lower()
    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?", t)
    if not t or not m or not any(m.groups()):
        raise ConfigError(f"--time-budget {text!r}: give a duration like 2h, 90m, 1h30m or 600s")
    h, mins, secs = (float(g) if g else 0.0 for g in m.groups())
    total = h * 3600 + mins * 60 + secs
    if total <= 0:
        raise ConfigError(f"--time-budget {text!r}: must be longer than zero")
    return total


def sweep_share_s(left_s: float, stage: str, todo: dict[str, bool]) -> float:
    """A stage's sweep's share of `left_s`: the searched stages still to run (`todo`: name -> fine-tunes)
    split it by weight, and a sweep may spend half its stage's share."""
    weight = {name: FINETUNE_WEIGHT if finetunes else 1.0 for name, finetunes in todo.items()}
    share = left_s * weight.get(stage, 1.0) / max(sum(weight.values()), 1.0) * SWEEP_SHARE
    return max(share, FLOOR_S)
