"""Speech models over log-mel frames (`batch["mel"]` (B, T, n_mels), `batch["mel_lengths"]`).

Every step is masked, so padding a batch never changes an utterance's output:
normalisation statistics, convolutions and pooling see only real frames.

Normalisation (`norm`, every speech model) decides what a model can hear.
The reference z-scored each mel band over the utterance's own frames
(`band_instance`): that erases each band's level, and with it pitch and
loudness, so on speech whose emotion lives there every model predicted the
majority class. The other choices keep those differences:
    utterance     one mean/std over all bands and frames (the reference 2D CNN's instance norm)
    train_stats   per-band mean/std over the training split, computed by `prepare`
    none          a fixed affine scaling
All but `band_instance` first floor the log-mel at LOGMEL_FLOOR, so digital
silence (-100) does not dominate a clip's statistics.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from data_prep.reader import LOGMEL_FLOOR
from mer_search.core.errors import ConfigError
from mer_search.models import fill_n_mels, fill_vector_dim, register
from mer_search.models.common import NUM_CLASSES, POOLINGS, Classifier, lengths_to_mask, masked_pool, mlp, pooled_dim
from mer_search.models.text import EmbeddingMLP, SequenceLSTM

NORMS = ("train_stats", "utterance", "band_instance", "none")
DEFAULT_NORM = "train_stats"       # measured best on the realistic synthetic corpus: bench/RESULTS.md
FIXED_SHIFT, FIXED_SCALE = 5.0, 5.0  # `none`: (x + 5) / 5 puts speech log-mel (about -10..5) near [-1, 2]
POOLS = ("mean", "max", "stats")


class MelNorm(nn.Module):
    """Normalise (B, T, M) log-mel over real frames; padding stays zero. Train statistics are buffers,
    so a checkpoint carries the ones it was trained with (predict needs no training data)."""

    def __init__(self, n_mels: int, mode: str = DEFAULT_NORM, eps: float = 1e-5):
        super().__init__()
        if mode not in NORMS:
            raise ConfigError(f"unknown norm {mode!r}; valid: {', '.join(NORMS)}")
        self.mode, self.eps = mode, eps
        self.register_buffer("band_mean", torch.zeros(n_mels))
        self.register_buffer("band_std", torch.ones(n_mels))

    def set_train_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.band_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.band_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp(min=self.eps))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)
        if self.mode != "band_instance":
            x = x.clamp(min=LOGMEL_FLOOR)
        if self.mode == "train_stats":
            return (x - self.band_mean) / self.band_std * m
        if self.mode == "none":
            return (x + FIXED_SHIFT) / FIXED_SCALE * m
        dims = (1,) if self.mode == "band_instance" else (1, 2)
        count = m.sum(dims, keepdim=True) * (1 if self.mode == "band_instance" else x.shape[2])
        mean = (x * m).sum(dims, keepdim=True) / count.clamp(min=1)
        var = (((x - mean) * m) ** 2).sum(dims, keepdim=True) / count.clamp(min=1)
        return (x - mean) / torch.sqrt(var + self.eps) * m


def set_train_stats(model: nn.Module, stats: Callable[[], tuple[np.ndarray, np.ndarray]]) -> None:
    """Give every `train_stats` MelNorm in a model (speech models alone or inside fusion/context) the
    training split's per-band mean and std; `stats` is called only if one needs them."""
    norms = [m for m in model.modules() if isinstance(m, MelNorm) and m.mode == "train_stats"]
    if norms:
        mean, std = stats()
        for m in norms:
            m.set_train_stats(mean, std)


def uses_train_stats(cfg: dict) -> bool:
    """Whether this speech model config normalises log-mel with train statistics (no norm named: the
    builder's default)."""
    from mer_search.models import builder_arguments

    norm = builder_arguments(cfg["name"]).get("norm")
    return norm is not None and cfg.get("norm", norm.default) == "train_stats"


def _take_train_stats(model: nn.Module, cfg: dict, data) -> None:
    if uses_train_stats(cfg):
        set_train_stats(model, data.train_stats)


def _check_train_stats(cfg: dict, data) -> None:
    if uses_train_stats(cfg):
        data.train_stats()


def _check_pool(pooling: str) -> None:
    if pooling not in POOLS:
        raise ConfigError(f"unknown pooling {pooling!r}; valid: {', '.join(POOLS)}")


TRAIN_STATS = {"from_data": _take_train_stats, "check_data": _check_train_stats}


class SpeechCNN2D(Classifier):
    """Norm, 2 x (conv 3x3, ReLU, max pool 2), dropout, then per frame either the average over frequency
    (`freq: average`, the reference) or every (channel, band) kept (`freq: keep`), pooled over time.

    Averaging over frequency leaves pitch and formants only as local texture; keeping the bands lets the
    model see where in the spectrum the energy sits, which is what carries pitch and voice quality."""

    def __init__(self, n_mels: int = 40, channels: int = 20, dropout: float = 0.3, kernel: int = 3,
                 norm: str = DEFAULT_NORM, pooling: str = "mean", freq: str = "keep", num_classes: int = NUM_CLASSES):
        super().__init__()
        _check_pool(pooling)
        if freq not in ("average", "keep"):
            raise ConfigError(f"unknown freq {freq!r}; valid: average, keep")
        self.norm, self.pooling, self.freq = MelNorm(n_mels, norm), pooling, freq
        self.convs = nn.ModuleList([nn.Conv2d(1, channels, kernel, padding=kernel // 2),
                                    nn.Conv2d(channels, channels, kernel, padding=kernel // 2)])
        self.drop = nn.Dropout(dropout)
        per_frame = channels * (n_mels // 2 // 2) if freq == "keep" else channels
        self.init_head(pooled_dim(per_frame, pooling), num_classes)

    def features(self, batch: dict) -> torch.Tensor:
        x, lengths = batch["mel"], batch["mel_lengths"]
        mask = lengths_to_mask(lengths, x.shape[1])
        x = self.norm(x, mask).unsqueeze(1)                                   # (B, 1, T, M)
        for conv in self.convs:
            x = torch.relu(conv(x)) * mask[:, None, :, None]
            pool_time = 2 if x.shape[2] > 1 else 1       # a one-frame batch keeps its frame
            x = nn.functional.max_pool2d(x, (pool_time, 2))
            lengths = (lengths // pool_time).clamp(min=1)
            mask = lengths_to_mask(lengths, x.shape[2])
            x = x * mask[:, None, :, None]
        x = self.drop(x)                                                      # (B, C, T', M')
        if self.freq == "average":
            x = x.mean(3).transpose(1, 2)                                     # (B, T', C)
        else:
            x = x.permute(0, 2, 1, 3).flatten(2)                              # (B, T', C * M')
        return masked_pool(x, mask, self.pooling)


class SpeechCNN1D(Classifier):
    """Norm, dropout, 2 x (conv1d over time with mel bands as channels, ReLU, max pool 2), pool over time."""

    def __init__(self, n_mels: int = 40, channels: int = 64, kernel: int = 5, dropout: float = 0.3,
                 norm: str = DEFAULT_NORM, pooling: str = "mean", num_classes: int = NUM_CLASSES):
        super().__init__()
        _check_pool(pooling)
        self.norm, self.pooling = MelNorm(n_mels, norm), pooling
        self.drop = nn.Dropout(dropout)
        self.convs = nn.ModuleList([nn.Conv1d(n_mels, channels, kernel, padding=kernel // 2),
                                    nn.Conv1d(channels, channels, kernel, padding=kernel // 2)])
        self.init_head(pooled_dim(channels, pooling), num_classes)

    def features(self, batch: dict) -> torch.Tensor:
        x, lengths = batch["mel"], batch["mel_lengths"]
        mask = lengths_to_mask(lengths, x.shape[1])
        x = self.drop(self.norm(x, mask)).transpose(1, 2)                    # (B, M, T)
        for conv in self.convs:
            x = torch.relu(conv(x)) * mask[:, None, :]
            if x.shape[2] > 1:
                x = nn.functional.max_pool1d(x, 2)
                lengths = (lengths // 2).clamp(min=1)
                mask = lengths_to_mask(lengths, x.shape[2])
                x = x * mask[:, None, :]
        return masked_pool(x.transpose(1, 2), mask, self.pooling)


class SpeechLSTM(Classifier):
    """The text LSTM classifier fed with normalised log-mel frames instead of embeddings."""

    def __init__(self, n_mels: int = 40, hidden: int = 64, layers: int = 2, bidirectional: bool = True,
                 dropout: float = 0.3, pooling: str = "mean", head_hidden: tuple[int, ...] = (),
                 norm: str = DEFAULT_NORM, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.norm = MelNorm(n_mels, norm)
        self.drop = nn.Dropout(dropout)
        self.encoder = SequenceLSTM(n_mels, hidden, layers, bidirectional, dropout, pooling)
        self.body, out = mlp(self.encoder.out_dim, head_hidden, dropout)
        self.init_head(out, num_classes)

    def features(self, batch: dict) -> torch.Tensor:
        x, lengths = batch["mel"], batch["mel_lengths"]
        x = self.norm(x, lengths_to_mask(lengths, x.shape[1]))
        return self.body(self.encoder(self.drop(x), lengths))


class SpeechStats(Classifier):
    """Per-band mean and std of the normalised log-mel, and the clip's log length, into a linear layer
    (or a small MLP): the floor every speech model is held against, and a fast first rung."""

    def __init__(self, n_mels: int = 40, hidden: tuple[int, ...] = (), dropout: float = 0.0,
                 norm: str = DEFAULT_NORM, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.norm = MelNorm(n_mels, norm)
        self.drop = nn.Dropout(dropout)
        self.body, out = mlp(2 * n_mels + 1, hidden, dropout)
        self.init_head(out, num_classes)

    def features(self, batch: dict) -> torch.Tensor:
        x, lengths = batch["mel"], batch["mel_lengths"]
        mask = lengths_to_mask(lengths, x.shape[1])
        stats = masked_pool(self.norm(x, mask), mask, "stats")
        log_len = torch.log(lengths.clamp(min=1).to(x.dtype)).unsqueeze(1) - 5.0   # 150 frames -> 0
        return self.body(self.drop(torch.cat([stats, log_len], dim=1)))


@register("speech_cnn2d", inputs={"mel"}, sizes={"n_mels": fill_n_mels}, **TRAIN_STATS)
def speech_cnn2d(n_mels: int = 40, channels: int = 20, dropout: float = 0.3, kernel: int = 3,
                 norm: str = DEFAULT_NORM, pooling: str = "mean", freq: str = "keep", num_classes: int = NUM_CLASSES):
    return SpeechCNN2D(n_mels, channels, dropout, kernel, norm, pooling, freq, num_classes=num_classes)


@register("speech_cnn1d", inputs={"mel"}, sizes={"n_mels": fill_n_mels}, **TRAIN_STATS)
def speech_cnn1d(n_mels: int = 40, channels: int = 64, kernel: int = 5, dropout: float = 0.3,
                 norm: str = DEFAULT_NORM, pooling: str = "mean", num_classes: int = NUM_CLASSES):
    return SpeechCNN1D(n_mels, channels, kernel, dropout, norm, pooling, num_classes=num_classes)


@register("speech_lstm", inputs={"mel"}, sizes={"n_mels": fill_n_mels}, **TRAIN_STATS)
def speech_lstm(n_mels: int = 40, hidden: int = 64, layers: int = 2, bidirectional: bool = True,
                dropout: float = 0.3, pooling: str = "mean", head_hidden: tuple[int, ...] = (),
                norm: str = DEFAULT_NORM, num_classes: int = NUM_CLASSES):
    if pooling not in POOLINGS:
        raise ConfigError(f"unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}")
    return SpeechLSTM(n_mels, hidden, layers, bidirectional, dropout, pooling, tuple(head_hidden), norm,
                      num_classes=num_classes)


@register("speech_stats", inputs={"mel"}, sizes={"n_mels": fill_n_mels}, **TRAIN_STATS)
def speech_stats(n_mels: int = 40, hidden: tuple[int, ...] = (), dropout: float = 0.0, norm: str = DEFAULT_NORM,
                 num_classes: int = NUM_CLASSES):
    return SpeechStats(n_mels, tuple(hidden), dropout, norm, num_classes=num_classes)


@register("speech_functionals", inputs={"functionals"}, sizes={"input_dim": fill_vector_dim("functionals")})
def speech_functionals(input_dim: int = 88, hidden: tuple[int, ...] = (128,), dropout: float = 0.3,
                       num_classes: int = NUM_CLASSES):
    return EmbeddingMLP(input_dim, tuple(hidden), dropout, key="functionals", num_classes=num_classes)
