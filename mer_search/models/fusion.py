"""Fusion of text and speech utterance vectors: concat, gated, attention (cross-modal), late.

Vectors come from feature dirs (`batch["features_text"]`, `batch["features_speech"]`,
two-stage) or from encoders trained jointly. The fused vector goes to a linear
classifier or, with `head: context`, through the dialogue context RNN.
"""

from __future__ import annotations

import torch
from torch import nn

from mer_search.errors import ConfigError
from mer_search.models import build_model, register, required_inputs
from mer_search.models.common import NUM_CLASSES
from mer_search.models.context import DialogueRNN

KINDS = ("concat", "gated", "attention", "late")


class Fusion(nn.Module):
    def __init__(self, text_dim: int, speech_dim: int, kind: str = "concat", dim: int = 128,
                 dropout: float = 0.3, heads: int = 4, head: str = "linear", context: dict | None = None,
                 text_encoder: nn.Module | None = None, speech_encoder: nn.Module | None = None,
                 num_classes: int = NUM_CLASSES):
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(f"unknown fusion kind {kind!r}; valid: {', '.join(KINDS)}")
        if head not in ("linear", "context"):
            raise ConfigError(f"unknown fusion head {head!r}; valid: linear, context")
        if kind == "attention" and dim % heads:
            raise ConfigError(f"fusion dim {dim} must be divisible by heads {heads}")
        self.kind, self.head_kind = kind, head
        self.text_encoder, self.speech_encoder = text_encoder, speech_encoder
        t = text_encoder.feature_dim if text_encoder is not None else text_dim
        s = speech_encoder.feature_dim if speech_encoder is not None else speech_dim
        self.drop = nn.Dropout(dropout)
        if kind == "concat":
            fused = t + s
        else:
            self.proj_t, self.proj_s = nn.Linear(t, dim), nn.Linear(s, dim)
            fused = dim
        if kind == "gated":
            self.gate = nn.Linear(t + s, dim)
        if kind == "attention":
            self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
            self.modality = nn.Parameter(torch.zeros(2, dim))
        if kind == "late":
            self.mix = nn.Parameter(torch.zeros(2))          # softmax weights of the two modalities' logits
        ctx = dict(context or {})
        self.ctx_t = self.ctx_s = None
        if head == "context":
            self.ctx_t = DialogueRNN(fused if kind != "late" else dim, **ctx)
            self.ctx_s = DialogueRNN(dim, **ctx) if kind == "late" else None
            out = self.ctx_t.out_dim
        else:
            out = fused
        self.feature_dim = out if kind != "late" else 2 * out
        if kind == "late":
            self.cls_t, self.cls_s = nn.Linear(out, num_classes), nn.Linear(out, num_classes)
        else:
            self.head = nn.Linear(out, num_classes)

    def _inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.text_encoder.features(batch) if self.text_encoder is not None else batch["features_text"]
        s = self.speech_encoder.features(batch) if self.speech_encoder is not None else batch["features_speech"]
        return self.drop(t), self.drop(s)

    def _fuse(self, t: torch.Tensor, s: torch.Tensor):
        if self.kind == "concat":
            return torch.cat([t, s], -1)
        ht, hs = torch.tanh(self.proj_t(t)), torch.tanh(self.proj_s(s))
        if self.kind == "gated":
            g = torch.sigmoid(self.gate(torch.cat([t, s], -1)))
            return g * ht + (1 - g) * hs
        if self.kind == "attention":
            tokens = torch.stack([ht, hs], 1) + self.modality          # each modality attends to both
            out, _ = self.attn(tokens, tokens, tokens, need_weights=False)
            return out.mean(1)
        return ht, hs                                                 # late: kept apart until the logits

    def _context(self, x: torch.Tensor, rnn: DialogueRNN | None, batch: dict) -> torch.Tensor:
        return rnn(x, batch["dialogue_index"]) if self.head_kind == "context" else x

    def features(self, batch: dict) -> torch.Tensor:
        fused = self._fuse(*self._inputs(batch))
        if self.kind == "late":
            return torch.cat([self._context(fused[0], self.ctx_t, batch),
                              self._context(fused[1], self.ctx_s, batch)], -1)
        return self._context(fused, self.ctx_t, batch)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.logits(self.features(batch))

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """late: each modality's classifier on its half of the features, mixed; else one head."""
        if self.kind != "late":
            return self.head(z)
        zt, zs = z.chunk(2, dim=-1)
        w = torch.softmax(self.mix, 0)
        return w[0] * self.cls_t(zt) + w[1] * self.cls_s(zs)


def _inputs(cfg: dict) -> set[str]:
    t = required_inputs(cfg["text_model"]) if cfg.get("text_model") else {"features_text"}
    s = required_inputs(cfg["speech_model"]) if cfg.get("speech_model") else {"features_speech"}
    return t | s


def _dim(key: str, encoder: str):
    """A modality's width from its feature dir, unless an encoder config makes it (joint training)."""
    return lambda cfg, data: None if cfg.get(encoder) else data.vector_dim(key)


@register("fusion", inputs=_inputs, sizes={"text_dim": _dim("features_text", "text_model"),
                                          "speech_dim": _dim("features_speech", "speech_model")},
          dialogues=lambda cfg: cfg.get("head") == "context",
          label=lambda cfg: f"fusion {cfg.get('kind', 'concat')}, {cfg.get('head', 'linear')} head")
def fusion(text_dim: int = 0, speech_dim: int = 0, kind: str = "concat", dim: int = 128, dropout: float = 0.3,
           heads: int = 4, head: str = "linear", context: dict | None = None, text_model: dict | None = None,
           speech_model: dict | None = None, num_classes: int = NUM_CLASSES):
    """`text_model`/`speech_model`: encoder configs for joint training; without them, feature dirs feed it."""
    te = build_model(text_model) if text_model else None
    se = build_model(speech_model) if speech_model else None
    if (te is None and text_dim <= 0) or (se is None and speech_dim <= 0):
        raise ConfigError("fusion needs text_dim/speech_dim (from feature dirs) or text_model/speech_model configs")
    return Fusion(text_dim, speech_dim, kind, dim, dropout, heads, head, context, te, se, num_classes=num_classes)
