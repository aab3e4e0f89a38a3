"""Dialogue context: an RNN over a dialogue's utterance vectors, in order.

Batches for these models are dialogue batches: the utterances of whole
dialogues, flat, plus `batch["dialogue_index"]` (dialogues, max_utts) holding
each utterance's flat row (-1 = padding). Logits come back in flat order, so
the loss is computed exactly as for utterance models.
"""

from __future__ import annotations

import torch
from torch import nn

from mer_search.core.errors import ConfigError
from mer_search.models import build_model, register, required_inputs
from mer_search.models.common import NUM_CLASSES


class DialogueRNN(nn.Module):
    def __init__(self, input_dim: int, rnn: str = "lstm", hidden: int = 128, layers: int = 2,
                 bidirectional: bool = True, dropout: float = 0.3):
        super().__init__()
        if rnn not in ("lstm", "gru"):
            raise ConfigError(f"unknown rnn {rnn!r}; valid: lstm, gru")
        cls = nn.LSTM if rnn == "lstm" else nn.GRU
        self.rnn = cls(input_dim, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                       dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.out_dim = hidden * (2 if bidirectional else 1)

    def forward(self, vectors: torch.Tensor, dialogue_index: torch.Tensor) -> torch.Tensor:
        """(B, D) utterance vectors -> (B, H) context-aware vectors, same flat order."""
        mask = dialogue_index >= 0
        seq = vectors[dialogue_index.clamp(min=0)] * mask.unsqueeze(-1).to(vectors.dtype)
        lengths = mask.sum(1).clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(self.drop(seq), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=seq.shape[1])
        flat = out.new_zeros(vectors.shape[0], out.shape[-1])
        flat[dialogue_index[mask]] = out[mask]
        return self.drop(flat)


class ContextModel(nn.Module):
    """Two-stage (`batch[feature_key]` holds precomputed vectors) or joint (an utterance encoder inside)."""

    def __init__(self, input_dim: int, encoder: nn.Module | None = None, feature_key: str = "features",
                 num_classes: int = NUM_CLASSES, **rnn):
        super().__init__()
        self.encoder = encoder
        self.feature_key = feature_key
        self.context = DialogueRNN(encoder.feature_dim if encoder is not None else input_dim, **rnn)
        self.feature_dim = self.context.out_dim
        self.head = nn.Linear(self.feature_dim, num_classes)

    def utterance_vectors(self, batch: dict) -> torch.Tensor:
        return self.encoder.features(batch) if self.encoder is not None else batch[self.feature_key]

    def features(self, batch: dict) -> torch.Tensor:
        return self.context(self.utterance_vectors(batch), batch["dialogue_index"])

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.logits(self.features(batch))


def _inputs(cfg: dict) -> set[str]:
    return required_inputs(cfg["utterance"]) if cfg.get("utterance") else {"features"}


def _input_dim(cfg: dict, data) -> int | None:
    return None if cfg.get("utterance") else data.vector_dim("features")     # joint: the encoder's own width


def _label(cfg: dict) -> str:
    return f"context {'bi' if cfg.get('bidirectional', True) else ''}{cfg.get('rnn', 'lstm')}"


@register("context", inputs=_inputs, sizes={"input_dim": _input_dim}, dialogues=True, label=_label)
def context(input_dim: int = 0, utterance: dict | None = None, rnn: str = "lstm", hidden: int = 128,
            layers: int = 2, bidirectional: bool = True, dropout: float = 0.3, num_classes: int = NUM_CLASSES):
    """`utterance`: a model config for joint training; without it, vectors come from a features dir."""
    encoder = build_model(utterance) if utterance else None
    if encoder is None and input_dim <= 0:
        raise ConfigError("context needs input_dim (two-stage, from the features) or an utterance model (joint)")
    return ContextModel(input_dim, encoder, rnn=rnn, hidden=hidden, layers=layers, bidirectional=bidirectional,
                        dropout=dropout, num_classes=num_classes)
