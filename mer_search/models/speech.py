"""Speech models over log-mel frames (`batch["mel"]` (B, T, n_mels), `batch["mel_lengths"]`).

Every step is masked, so padding a batch never changes an utterance's output:
normalisation statistics, convolutions and pooling see only real frames.
"""

from __future__ import annotations

import torch
from torch import nn

from mer_search.models import register
from mer_search.models.common import Classifier, lengths_to_mask, masked_pool, mlp
from mer_search.models.text import EmbeddingMLP, SequenceLSTM


def masked_instance_norm(x: torch.Tensor, mask: torch.Tensor, per_band: bool, eps: float = 1e-5) -> torch.Tensor:
    """Normalise (B, T, M) over real frames: per mel band (1D CNN, LSTM) or over all bands (2D CNN)."""
    m = mask.unsqueeze(-1).to(x.dtype)
    dims = (1,) if per_band else (1, 2)
    count = m.sum(dims, keepdim=True) * (1 if per_band else x.shape[2])
    mean = (x * m).sum(dims, keepdim=True) / count.clamp(min=1)
    var = (((x - mean) * m) ** 2).sum(dims, keepdim=True) / count.clamp(min=1)
    return (x - mean) / torch.sqrt(var + eps) * m


class SpeechCNN2D(Classifier):
    """Instance norm, 2 x (conv 3x3, ReLU, max pool 2), dropout, global average pool."""

    def __init__(self, n_mels: int = 40, channels: int = 20, dropout: float = 0.3, kernel: int = 3):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(1, channels, kernel, padding=kernel // 2),
                                    nn.Conv2d(channels, channels, kernel, padding=kernel // 2)])
        self.drop = nn.Dropout(dropout)
        self.init_head(channels)

    def features(self, batch: dict) -> torch.Tensor:
        x, lengths = batch["mel"], batch["mel_lengths"]
        mask = lengths_to_mask(lengths, x.shape[1])
        x = masked_instance_norm(x, mask, per_band=False).unsqueeze(1)        # (B, 1, T, M)
        for conv in self.convs:
            x = torch.relu(conv(x)) * mask[:, None, :, None]
            pool_time = 2 if x.shape[2] > 1 else 1       # a one-frame batch keeps its frame
            x = nn.functional.max_pool2d(x, (pool_time, 2))
            lengths = (lengths // pool_time).clamp(min=1)
            mask = lengths_to_mask(lengths, x.shape[2])
            x = x * mask[:, None, :, None]
        x = self.drop(x).mean(3).transpose(1, 2)                              # (B, T', C)
        return masked_pool(x, mask)


class SpeechCNN1D(Classifier):
    """Instance norm, dropout, 2 x (conv1d over time with mel bands as channels, ReLU, max pool 2), average pool."""

    def __init__(self, n_mels: int = 40, channels: int = 64, kernel: int = 5, dropout: float = 0.3):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.convs = nn.ModuleList([nn.Conv1d(n_mels, channels, kernel, padding=kernel // 2),
                                    nn.Conv1d(channels, channels, kernel, padding=kernel // 2)])
        self.init_head(channels)

    def features(self, batch: dict) -> torch.Tensor:
        x, lengths = batch["mel"], batch["mel_lengths"]
        mask = lengths_to_mask(lengths, x.shape[1])
        x = self.drop(masked_instance_norm(x, mask, per_band=True)).transpose(1, 2)   # (B, M, T)
        for conv in self.convs:
            x = torch.relu(conv(x)) * mask[:, None, :]
            if x.shape[2] > 1:
                x = nn.functional.max_pool1d(x, 2)
                lengths = (lengths // 2).clamp(min=1)
                mask = lengths_to_mask(lengths, x.shape[2])
                x = x * mask[:, None, :]
        return masked_pool(x.transpose(1, 2), mask)


class SpeechLSTM(Classifier):
    """The text LSTM classifier fed with (normalised) log-mel frames instead of embeddings."""

    def __init__(self, n_mels: int = 40, hidden: int = 64, layers: int = 2, bidirectional: bool = True,
                 dropout: float = 0.3, pooling: str = "mean", head_hidden: tuple[int, ...] = ()):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = SequenceLSTM(n_mels, hidden, layers, bidirectional, dropout, pooling)
        self.body, out = mlp(self.encoder.out_dim, head_hidden, dropout)
        self.init_head(out)

    def features(self, batch: dict) -> torch.Tensor:
        x, lengths = batch["mel"], batch["mel_lengths"]
        x = masked_instance_norm(x, lengths_to_mask(lengths, x.shape[1]), per_band=True)
        return self.body(self.encoder(self.drop(x), lengths))


@register("speech_cnn2d")
def speech_cnn2d(n_mels: int = 40, channels: int = 20, dropout: float = 0.3, kernel: int = 3):
    return SpeechCNN2D(n_mels, channels, dropout, kernel)


@register("speech_cnn1d")
def speech_cnn1d(n_mels: int = 40, channels: int = 64, kernel: int = 5, dropout: float = 0.3):
    return SpeechCNN1D(n_mels, channels, kernel, dropout)


@register("speech_lstm")
def speech_lstm(n_mels: int = 40, hidden: int = 64, layers: int = 2, bidirectional: bool = True,
                dropout: float = 0.3, pooling: str = "mean", head_hidden: tuple[int, ...] = ()):
    return SpeechLSTM(n_mels, hidden, layers, bidirectional, dropout, pooling, tuple(head_hidden))


@register("speech_functionals")
def speech_functionals(input_dim: int = 88, hidden: tuple[int, ...] = (128,), dropout: float = 0.3):
    return EmbeddingMLP(input_dim, tuple(hidden), dropout, key="functionals")
