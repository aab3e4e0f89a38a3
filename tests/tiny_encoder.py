"""Tiny randomly initialised encoder folders (MiniLM's tokenizer, a 2-layer body): fast registry tests, and proof
that nothing in text_finetune is specific to MiniLM (a BERT-like body with segments, a RoBERTa-like one without)."""

import shutil
import tempfile
from pathlib import Path

ROOT = Path(tempfile.gettempdir()) / "mer-search-test-encoders"
_TOKENIZER = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def tiny_encoder(segments: bool = True) -> Path:
    """A saved model folder: BERT with 2 segment types, or 1 (as RoBERTa has); made once per machine."""
    import torch
    from transformers import BertConfig, BertModel

    from mer_search.data.encoders import DEFAULT_ENCODER, encoder_source

    path = ROOT / f"tiny-bert-v1-types{2 if segments else 1}"
    if (path / "config.json").exists():
        return path
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=256, type_vocab_size=2 if segments else 1)
    partial = ROOT / f".{path.name}.{id(cfg)}"
    BertModel(cfg).save_pretrained(partial)
    for name in _TOKENIZER:
        shutil.copy(Path(encoder_source(DEFAULT_ENCODER)) / name, partial / name)
    try:
        partial.rename(path)
    except OSError:          # made meanwhile by another process
        shutil.rmtree(partial, ignore_errors=True)
    return path
