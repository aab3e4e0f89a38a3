"""Text models over token ids (`batch["tokens"]`, `batch["token_lengths"]`) or sentence embeddings."""

from __future__ import annotations

import math

import torch
from torch import nn

from mer_search.core.errors import ConfigError
from mer_search.models import fill_vector_dim, fill_vocab_size, register
from mer_search.models.common import NUM_CLASSES, Classifier, lengths_to_mask, masked_pool, mlp, pooled_dim


class TextMLP(Classifier):
    """Embedding, mean over real tokens, 1-3 hidden layers."""

    def __init__(self, vocab_size: int, emb_dim: int = 64, hidden: tuple[int, ...] = (128, 128),
                 dropout: float = 0.5, pad_id: int = 0, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        self.body, out = mlp(emb_dim, hidden, dropout)
        self.init_head(out, num_classes)

    def features(self, batch: dict) -> torch.Tensor:
        tokens = batch["tokens"]
        mask = lengths_to_mask(batch["token_lengths"], tokens.shape[1])
        return self.body(self.drop(masked_pool(self.embed(tokens), mask)))


class SequenceLSTM(nn.Module):
    """(B, T, D) + lengths -> pooled (B, H): packed LSTM, so padding never enters the state."""

    def __init__(self, in_dim: int, hidden: int, layers: int, bidirectional: bool, dropout: float, pooling: str):
        super().__init__()
        self.rnn = nn.LSTM(in_dim, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                           dropout=dropout if layers > 1 else 0.0)
        self.pooling = pooling
        self.out_dim = pooled_dim(hidden * (2 if bidirectional else 1), pooling)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        mask = lengths_to_mask(lengths, x.shape[1])
        if self.pooling == "last" and self.rnn.bidirectional:
            h = self.rnn.hidden_size
            fwd = masked_pool(out[..., :h], mask, "last")
            return torch.cat([fwd, out[:, 0, h:]], dim=-1)   # the backward direction ends at t=0
        return masked_pool(out, mask, self.pooling)


class TextLSTM(Classifier):
    def __init__(self, vocab_size: int, emb_dim: int = 32, hidden: int = 32, layers: int = 2,
                 bidirectional: bool = True, dropout: float = 0.3, pooling: str = "mean",
                 head_hidden: tuple[int, ...] = (), pad_id: int = 0, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        self.encoder = SequenceLSTM(emb_dim, hidden, layers, bidirectional, dropout, pooling)
        self.body, out = mlp(self.encoder.out_dim, head_hidden, dropout)
        self.init_head(out, num_classes)

    def features(self, batch: dict) -> torch.Tensor:
        x = self.drop(self.embed(batch["tokens"]))
        return self.body(self.encoder(x, batch["token_lengths"]))


class PositionalEncoding(nn.Module):
    def __init__(self, dim: int, max_len: int = 512):
        super().__init__()
        pos = torch.arange(max_len)[:, None]
        div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        pe = torch.zeros(max_len, dim)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)[:, : dim // 2]
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[: x.shape[1]]


class TextTransformer(Classifier):
    def __init__(self, vocab_size: int, emb_dim: int = 64, layers: int = 2, heads: int = 8,
                 ff_mult: int = 4, dropout: float = 0.1, pad_id: int = 0, max_len: int = 512,
                 num_classes: int = NUM_CLASSES):
        super().__init__()
        if emb_dim % heads:
            raise ConfigError(f"emb_dim {emb_dim} must be divisible by heads {heads}")
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.pos = PositionalEncoding(emb_dim, max_len)
        layer = nn.TransformerEncoderLayer(emb_dim, heads, ff_mult * emb_dim, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.drop = nn.Dropout(dropout)
        self.init_head(emb_dim, num_classes)

    def features(self, batch: dict) -> torch.Tensor:
        tokens = batch["tokens"]
        mask = lengths_to_mask(batch["token_lengths"], tokens.shape[1])
        x = self.drop(self.pos(self.embed(tokens)))
        x = self.encoder(x, src_key_padding_mask=~mask)
        return masked_pool(x, mask)


class EmbeddingMLP(Classifier):
    """An MLP head over a fixed per-utterance vector (`batch[key]`): sentence embeddings, functionals."""

    def __init__(self, input_dim: int, hidden: tuple[int, ...] = (256,), dropout: float = 0.3,
                 key: str = "embedding", num_classes: int = NUM_CLASSES):
        super().__init__()
        self.key = key
        self.drop = nn.Dropout(dropout)
        self.body, out = mlp(input_dim, hidden, dropout)
        self.init_head(out, num_classes)

    def features(self, batch: dict) -> torch.Tensor:
        # inputs arrive z-scored with train statistics (mer_search.data.corpus), so no norm layer here
        return self.body(self.drop(batch[self.key]))


@register("text_mlp", inputs={"tokens"}, sizes={"vocab_size": fill_vocab_size})
def text_mlp(vocab_size: int, emb_dim: int = 64, hidden: tuple[int, ...] = (128, 128), dropout: float = 0.5,
             num_classes: int = NUM_CLASSES):
    return TextMLP(vocab_size, emb_dim, tuple(hidden), dropout, num_classes=num_classes)


@register("text_lstm", inputs={"tokens"}, sizes={"vocab_size": fill_vocab_size})
def text_lstm(vocab_size: int, emb_dim: int = 32, hidden: int = 32, layers: int = 2, bidirectional: bool = True,
              dropout: float = 0.3, pooling: str = "mean", head_hidden: tuple[int, ...] = (),
              num_classes: int = NUM_CLASSES):
    return TextLSTM(vocab_size, emb_dim, hidden, layers, bidirectional, dropout, pooling, tuple(head_hidden),
                    num_classes=num_classes)


@register("text_transformer", inputs={"tokens"}, sizes={"vocab_size": fill_vocab_size})
def text_transformer(vocab_size: int, emb_dim: int = 64, layers: int = 2, heads: int = 8, ff_mult: int = 4,
                     dropout: float = 0.1, num_classes: int = NUM_CLASSES):
    return TextTransformer(vocab_size, emb_dim, layers, heads, ff_mult, dropout, num_classes=num_classes)


@register("text_pretrained", inputs={"embedding"}, sizes={"input_dim": fill_vector_dim("embedding")})
def text_pretrained(input_dim: int = 384, hidden: tuple[int, ...] = (256,), dropout: float = 0.3,
                    num_classes: int = NUM_CLASSES):
    return EmbeddingMLP(input_dim, tuple(hidden), dropout, key="embedding", num_classes=num_classes)
