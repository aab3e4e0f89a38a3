"""Fusion of text and speech utterance vectors: concat, gated, attention (cross-modal), late, residual.

Vectors come from feature dirs (`batch["features_text"]`, `batch["features_speech"]`,
two-stage) or from encoders trained jointly. The fused vector goes to a linear
classifier or, with `head: context`, through the dialogue context RNN.

`residual` starts as its better input: its logits are a mix of the two upstream models' log-probabilities
(stored beside their features) that begins all on the one with the higher dev score, plus a correction
from both modalities' vectors that begins at zero. Training keeps that start unless dev improves on it
(`keeps_its_start`), so the fusion cannot end below its better input on dev, and ignoring a useless
modality is where it begins, not something it has to learn.
"""

from __future__ import annotations

import torch
from torch import nn

from mer_search.core.errors import ConfigError
from mer_search.models import build_model, register, required_inputs
from mer_search.models.common import NUM_CLASSES
from mer_search.models.context import DialogueRNN

KINDS = ("concat", "gated", "attention", "late", "residual")
LEADS = ("text", "speech")


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


class ResidualFusion(nn.Module):
    """logits = a_t * logp_t + a_s * logp_s + correction(z_t, z_s); a starts at the lead's one-hot, the
    correction's last layer at zero: at the start it predicts exactly what the lead modality's model did."""

    keeps_its_start = True          # fit() evaluates the start and keeps it unless an epoch beats it on dev

    def __init__(self, text_dim: int, speech_dim: int, lead: str, dim: int = 128, dropout: float = 0.3,
                 head: str = "linear", context: dict | None = None, num_classes: int = NUM_CLASSES):
        super().__init__()
        if lead not in LEADS:
            raise ConfigError(f"fusion lead {lead!r}: one of {', '.join(LEADS)} (filled from the feature dirs' "
                              f"dev scores)")
        if head not in ("linear", "context"):
            raise ConfigError(f"unknown fusion head {head!r}; valid: linear, context")
        self.head_kind, self.num_classes = head, num_classes
        self.mix = nn.Parameter(torch.tensor([1.0, 0.0] if lead == "text" else [0.0, 1.0]))
        self.drop = nn.Dropout(dropout)
        self.proj = nn.Linear(text_dim + speech_dim, dim)
        self.ctx = DialogueRNN(dim, **dict(context or {})) if head == "context" else None
        hidden = self.ctx.out_dim if self.ctx is not None else dim
        self.correction = nn.Linear(hidden, num_classes)
        nn.init.zeros_(self.correction.weight)
        nn.init.zeros_(self.correction.bias)
        self.feature_dim = hidden + 2 * num_classes

    def features(self, batch: dict) -> torch.Tensor:
        """The correction's hidden vector, with the two log-probabilities it is added to (logits() splits them)."""
        h = torch.tanh(self.proj(self.drop(torch.cat([batch["features_text"], batch["features_speech"]], -1))))
        if self.ctx is not None:
            h = self.ctx(h, batch["dialogue_index"])
        return torch.cat([self.drop(h), batch["features_text_logp"], batch["features_speech_logp"]], -1)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        c = self.num_classes
        h, logp_t, logp_s = z[:, :-2 * c], z[:, -2 * c:-c], z[:, -c:]
        return self.mix[0] * logp_t + self.mix[1] * logp_s + self.correction(h)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.logits(self.features(batch))


def _inputs(cfg: dict) -> set[str]:
    if cfg.get("kind") == "residual":
        return {"features_text", "features_speech", "features_text_logp", "features_speech_logp"}
    t = required_inputs(cfg["text_model"]) if cfg.get("text_model") else {"features_text"}
    s = required_inputs(cfg["speech_model"]) if cfg.get("speech_model") else {"features_speech"}
    return t | s


def _dim(key: str, encoder: str):
    """A modality's width from its feature dir, unless an encoder config makes it (joint training)."""
    return lambda cfg, data: None if cfg.get(encoder) else data.vector_dim(key)


def _lead(cfg: dict, data) -> str | None:
    """residual: the modality whose model scored higher on dev (its feature dir says), where the fusion starts."""
    if cfg.get("kind") != "residual":
        return None
    text, speech = data.feature_score("features_text"), data.feature_score("features_speech")
    return "speech" if speech > text else "text"


@register("fusion", inputs=_inputs, sizes={"text_dim": _dim("features_text", "text_model"),
                                          "speech_dim": _dim("features_speech", "speech_model"),
                                          "lead": _lead},
          dialogues=lambda cfg: cfg.get("head") == "context",
          label=lambda cfg: f"fusion {cfg.get('kind', 'concat')}, {cfg.get('head', 'linear')} head")
def fusion(text_dim: int = 0, speech_dim: int = 0, kind: str = "concat", dim: int = 128, dropout: float = 0.3,
           heads: int = 4, head: str = "linear", context: dict | None = None, text_model: dict | None = None,
           speech_model: dict | None = None, lead: str = "text", num_classes: int = NUM_CLASSES):
    """`text_model`/`speech_model`: encoder configs for joint training; without them, feature dirs feed it.
    `lead` (residual): the modality it starts from, filled from the feature dirs."""
    if kind == "residual":
        if text_model or speech_model:
            raise ConfigError("fusion kind residual starts from two trained models' outputs: give feature dirs, "
                              "not text_model/speech_model")
        return ResidualFusion(text_dim, speech_dim, lead, dim, dropout, head, context, num_classes)
    te = build_model(text_model) if text_model else None
    se = build_model(speech_model) if speech_model else None
    if (te is None and text_dim <= 0) or (se is None and speech_dim <= 0):
        raise ConfigError("fusion needs text_dim/speech_dim (from feature dirs) or text_model/speech_model configs")
    return Fusion(text_dim, speech_dim, kind, dim, dropout, heads, head, context, te, se, num_classes=num_classes)
