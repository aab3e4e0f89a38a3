"""A pretrained transformer encoder fine-tuned end to end, reading the dialogue around each utterance
(batch["input_ids"], ["attention_mask"], ["target_mask"]: see mer_search.data.dialogue_text).

Nothing here is specific to MiniLM: `encoder` names the offline MiniLM package (the default), any local
Hugging Face / sentence-transformers folder, or a hub id where the hub is reachable.
"""

from __future__ import annotations

import torch
from torch import nn

from mer_search.data.encoders import DEFAULT_ENCODER, load_encoder
from mer_search.core.errors import ConfigError
from mer_search.models import register
from mer_search.models.common import NUM_CLASSES, Classifier, masked_pool

POOLINGS = ("cls", "mean", "target")


class TextFinetune(Classifier):
    def __init__(self, encoder: str = DEFAULT_ENCODER, pooling: str = "cls", dropout: float = 0.1,
                 freeze_layers: int = 0, gradient_checkpointing: bool = False, num_classes: int = NUM_CLASSES):
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling {pooling!r}; valid: {', '.join(POOLINGS)}")
        self.encoder = load_encoder(encoder)
        self.pooling = pooling
        # the target's own tokens get segment id 1 where the encoder has segment embeddings (BERT), so the model
        # knows which utterance it classifies; RoBERTa-like encoders have one segment and read it from position
        self.use_segments = getattr(self.encoder.config, "type_vocab_size", 1) >= 2
        layers = self.layers()
        if not 0 <= freeze_layers <= len(layers):
            raise ConfigError(f"freeze_layers {freeze_layers}: the encoder has {len(layers)} layers")
        frozen = [self.embeddings()] + layers[:freeze_layers] if freeze_layers else []
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)
        if gradient_checkpointing:
            # transformers >= 5 names it activation checkpointing; non-reentrant works with frozen embeddings
            enable = getattr(self.encoder, "activation_checkpointing_enable", None)
            if enable is not None:
                enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                self.encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.drop = nn.Dropout(dropout)
        self.init_head(int(self.encoder.config.hidden_size), num_classes)

    def embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings() if not hasattr(self.encoder, "embeddings") \
            else self.encoder.embeddings

    def layers(self) -> list[nn.Module]:
        """The encoder's transformer blocks, bottom first (BERT/RoBERTa/MiniLM/MPNet: encoder.layer)."""
        for path in ("encoder.layer", "layer", "transformer.layer", "layers"):
            obj = self.encoder
            for part in path.split("."):
                obj = getattr(obj, part, None)
            if isinstance(obj, nn.ModuleList):
                return list(obj)
        raise ConfigError(f"cannot find the transformer blocks of {type(self.encoder).__name__}")

    def features(self, batch: dict) -> torch.Tensor:
        mask = batch["attention_mask"]
        kwargs = {"token_type_ids": batch["target_mask"]} if self.use_segments else {}
        hidden = self.encoder(input_ids=batch["input_ids"], attention_mask=mask, **kwargs).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = masked_pool(hidden, (batch["target_mask"] if self.pooling == "target" else mask).bool())
        return self.drop(pooled)

    def param_groups(self, lr: float, head_lr: float | None, layer_decay: float, weight_decay: float) -> list[dict]:
        """Layer-wise lr decay: the top block trains at lr, each block below at layer_decay times the one above,
        the embeddings below them all; the head at head_lr. No weight decay on biases and LayerNorms."""
        blocks = [self.embeddings()] + self.layers()
        depth = {id(p): i for i, m in enumerate(blocks) for p in m.parameters()}
        top = len(blocks) - 1
        groups: dict[tuple, dict] = {}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if name.startswith("head."):
                group_lr = head_lr or lr
            else:
                group_lr = lr * layer_decay ** (top - depth.get(id(p), top))
            decay = 0.0 if p.ndim == 1 else weight_decay
            group = groups.setdefault((group_lr, decay), {"params": [], "lr": group_lr, "weight_decay": decay})
            group["params"].append(p)
        return list(groups.values())


@register("text_finetune", inputs={"dialogue_text"}, tokenizer=lambda cfg: cfg.get("encoder", DEFAULT_ENCODER))
def text_finetune(encoder: str = DEFAULT_ENCODER, pooling: str = "cls", dropout: float = 0.1, freeze_layers: int = 0,
                  gradient_checkpointing: bool = False, num_classes: int = NUM_CLASSES):
    return TextFinetune(encoder, pooling, dropout, freeze_layers, gradient_checkpointing, num_classes=num_classes)
