"""Pieces the models share: masked pooling and small MLP heads."""

from __future__ import annotations

import torch
from torch import nn

from mer_search.core.errors import ConfigError

# a model's classes come from the prepared data's labels.json (the registry fills num_classes); this default,
# MELD's seven emotions as prepare writes them there, serves configs saved before num_classes was filled in
NUM_CLASSES = 7


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool, True on real positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


POOLINGS = ("mean", "max", "stats", "last")


def pooled_dim(dim: int, how: str) -> int:
    """Width after masked_pool: statistics pooling gives mean and standard deviation side by side."""
    return 2 * dim if how == "stats" else dim


def masked_pool(x: torch.Tensor, mask: torch.Tensor, how: str = "mean") -> torch.Tensor:
    """Pool (B, T, D) over the real positions of mask (B, T); "stats" is x-vector statistics pooling."""
    m = mask.unsqueeze(-1).to(x.dtype)
    if how in ("mean", "stats"):
        n = m.sum(1).clamp(min=1.0)
        mean = (x * m).sum(1) / n
        if how == "mean":
            return mean
        var = (((x - mean.unsqueeze(1)) * m) ** 2).sum(1) / n
        return torch.cat([mean, torch.sqrt(var + 1e-5)], dim=-1)
    if how == "max":
        return x.masked_fill(~mask.unsqueeze(-1), torch.finfo(x.dtype).min).amax(1)
    if how == "last":
        idx = (mask.sum(1) - 1).clamp(min=0)
        return x[torch.arange(x.shape[0], device=x.device), idx]
    raise ConfigError(f"unknown pooling {how!r}; valid: {', '.join(POOLINGS)}")


def mlp(in_dim: int, hidden: list[int] | tuple[int, ...], dropout: float) -> tuple[nn.Sequential, int]:
    """Linear-ReLU-Dropout blocks; returns the stack and its output width."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.ReLU(), nn.Dropout(dropout)]
        in_dim = h
    return nn.Sequential(*layers), in_dim


class Classifier(nn.Module):
    """Base: subclasses define `features(batch)` and `feature_dim`; logits are a linear layer on top."""

    feature_dim: int

    def init_head(self, dim: int, num_classes: int = NUM_CLASSES) -> None:
        self.feature_dim = dim
        self.head = nn.Linear(dim, num_classes)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from `features(batch)`'s output (features and predictions in one pass)."""
        return self.head(features)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.logits(self.features(batch))
