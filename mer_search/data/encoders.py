"""Where a pretrained transformer comes from: the offline MiniLM folder, an encoder assembled into the cache
(all-mpnet-base-v2: encoder_cache.py), any local folder, or (if the user names one on a machine that reaches
it) a Hugging Face hub model. Both the model and its tokenizer load here,
so a missing or broken folder fails the same clear way wherever it is used."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from data_prep.embeddings import DEFAULT as DEFAULT_ENCODER  # the same offline MiniLM the frozen embeddings use
from data_prep.embeddings import model_path
from data_prep.errors import PrepError
from mer_search.data.encoder_cache import ENCODERS, installed_path
from mer_search.core.errors import UserError

_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "spiece.model",
                    "sentencepiece.bpe.model", "tokenizer_config.json", "special_tokens_map.json")


class EncoderError(UserError, ValueError):
    """An encoder that cannot be loaded; the message names it and says what to do."""


def encoder_source(name: str) -> str:
    """A local folder for `name`: the package's MiniLM folder for the default, the path itself for a folder,
    else the name unchanged (a hub model id, loaded only where the user's machine can reach the hub)."""
    if name == DEFAULT_ENCODER:
        try:
            return str(model_path(name))
        except PrepError as e:
            raise EncoderError(f"encoder {e}") from None
    if name in ENCODERS:         # assembled once into the cache (`mer-search encoders install NAME`)
        return str(installed_path(name))
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        if not path.is_dir() or not (path / "config.json").exists():
            raise EncoderError(f"encoder {name}: not a model folder (no config.json); give a Hugging Face / "
                               f"sentence-transformers model directory")
        return str(path)
    return name


def _load(kind: str, name: str, loader):
    source = encoder_source(name)
    local = Path(source).is_dir()
    try:
        return loader(source, local_files_only=local or os.environ.get("HF_HUB_OFFLINE") == "1")
    except (OSError, ValueError, EnvironmentError, KeyError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        where = f"folder {source}" if local else "the Hugging Face hub (is it reachable, and the name right?)"
        raise EncoderError(f"encoder {name}: cannot load its {kind} from {where}: {first}") from None


@functools.lru_cache(maxsize=8)
def load_tokenizer(name: str):
    """One tokenizer per encoder and process: train and dev data, and every special-token lookup, share it."""
    from transformers import AutoTokenizer

    return _load("tokenizer", name, AutoTokenizer.from_pretrained)


def load_encoder(name: str):
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()       # a bar per model load would flood every trial's log
    return _load("weights", name, AutoModel.from_pretrained)


def tokenizer_fingerprint(name: str) -> str:
    """A short hash of the tokenizer's files (or of the hub name): keys the token cache."""
    source = encoder_source(name)
    h = hashlib.sha256(name.encode())
    if Path(source).is_dir():
        for f in _TOKENIZER_FILES:
            p = Path(source) / f
            if p.exists():
                h.update(f.encode() + p.read_bytes())
    return h.hexdigest()[:12]
