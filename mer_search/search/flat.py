"""Flat dotted keys (how spaces and Tune configs name parameters) to the nested training config.

Kept apart from space.py so that a Ray worker can use it without importing torch.
"""

from __future__ import annotations

from typing import Any


def nest(flat: dict[str, Any]) -> dict:
    """{'model.emb_dim': 64, 'train.lr': 1e-3} -> {'model': {'emb_dim': 64}, 'train': {'lr': 1e-3}}."""
    out: dict = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out
