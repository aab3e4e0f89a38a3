"""Text preparation: repair, normalise, tokenize (offline nltk), speaker tags, vocabulary."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

import ftfy
from nltk.tokenize import NLTKWordTokenizer

PAD, UNK = "<pad>", "<unk>"
OTHER_SPEAKER = "<spk:other>"

# After ftfy has repaired mojibake and straightened quotes, fold the typography
# MELD still carries into the ASCII forms the tokenizer knows.
_FOLD = str.maketrans({"\u2026": "...", "\u2014": " -- ", "\u2013": " - ", "\u00a0": " ",
                       "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_TOKENIZER = NLTKWordTokenizer()  # needs no punkt data, unlike nltk.word_tokenize's default


@dataclass(frozen=True)
class TextParams:
    lowercase: bool = True
    speaker_tags: bool = True
    speaker_top_k: int = 6        # train's k most frequent speakers get their own tag
    min_freq: int = 2             # train count below which a token maps to <unk>


def clean_text(raw: str) -> str:
    """Repair encoding damage (e.g. '\\x92', 'Ã©', 'Â'), straighten quotes, collapse whitespace."""
    fixed = ftfy.fix_text(raw, uncurl_quotes=True, fix_c1_controls=True, normalization="NFC")
    fixed = fixed.translate(_FOLD)
    return _SPACES.sub(" ", fixed).strip()


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """nltk's word tokenizer per sentence; sentences split on .!? + space (punkt is not available offline)."""
    tokens = [t for sent in _SENTENCE_END.split(text) for t in _TOKENIZER.tokenize(sent)]
    return [t.lower() for t in tokens] if lowercase else tokens


def speaker_tags(train_speakers: Iterable[str], top_k: int) -> dict[str, str]:
    """Map train's top_k speakers to their own tag; everyone else shares OTHER_SPEAKER."""
    counts = Counter(train_speakers)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
    return {name: f"<spk:{re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_')}>" for name, _ in top}


def build_vocab(token_lists: Iterable[list[str]], min_freq: int, always: Iterable[str] = ()) -> dict[str, int]:
    """Vocabulary from train only: pad=0, unk=1, then `always` (speaker tags), then by count."""
    counts = Counter(t for toks in token_lists for t in toks)
    vocab = {PAD: 0, UNK: 1}
    for t in always:
        vocab.setdefault(t, len(vocab))
    for tok, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if n >= min_freq:
            vocab.setdefault(tok, len(vocab))
    return vocab


def encode(tokens: list[str], vocab: dict[str, int]) -> list[int]:
    unk = vocab[UNK]
    return [vocab.get(t, unk) for t in tokens]
