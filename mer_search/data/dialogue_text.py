"""The dialogue as a fine-tuned encoder's input: "Speaker: text" of the target utterance with up to
`context_window` earlier (and `future_window` later) utterances of the same dialogue.

    [CLS] past_k [SEP] ... past_1 [SEP] target [SEP] future_1 [SEP] ... future_m [SEP]

Each utterance is tokenized once per encoder and cached beside the prepared data
(prepared/tokens/ENCODER-HASH/{split}_ids.npy + _offsets.npy), so a window or a
max_length is a trial's choice, not a new `prepare`, and no epoch or trial tokenizes
again. Truncation keeps the target whole and cuts the context from its far end:
the nearest neighbours are kept first (past_1, future_1, past_2, ...), and the one
that no longer fits is cut on the side away from the target.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from data_prep.atomic import write_json_atomic, write_npy_atomic
from data_prep.reader import cache_base
from mer_search.data.encoders import DEFAULT_ENCODER, load_tokenizer, tokenizer_fingerprint
from mer_search.core.errors import ConfigError

log = logging.getLogger(__name__)
CACHE_MAX_TOKENS = 512          # per utterance; longer ones are cut once, at tokenization


def utterance_string(speaker: str, text: str) -> str:
    return f"{speaker}: {text}" if speaker else text


def _cache_dir(prepared: Path, encoder: str) -> Path:
    name = encoder if encoder == DEFAULT_ENCODER else Path(encoder).name or "encoder"   # hub ids: the model part
    key = f"{name}-{tokenizer_fingerprint(encoder)}"
    d = Path(prepared) / "tokens" / key
    try:
        d.mkdir(parents=True, exist_ok=True)
        return d
    except OSError:         # read-only prepared data: a per-user cache keyed the same way, plus the data's path
        where = hashlib.sha256(str(Path(prepared).resolve()).encode()).hexdigest()[:8]
        d = cache_base() / "tokens" / f"{where}-{key}"
        d.mkdir(parents=True, exist_ok=True)
        return d


def utterance_tokens(prepared: Path, split: str, table: pd.DataFrame, encoder: str) -> tuple[np.ndarray, np.ndarray]:
    """(flat ids, offsets) of each table row's "Speaker: text", without special tokens; computed once per
    (prepared data, encoder) and reused by every trial after (a file lock: parallel trials tokenize once)."""
    d = _cache_dir(prepared, encoder)
    ids_path, off_path, index_path = d / f"{split}_ids.npy", d / f"{split}_offsets.npy", d / "index.json"
    texts = [utterance_string(s, t) for s, t in zip(table["speaker"], table["text"])]
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()     # a re-prepared table is tokenized anew

    def cached():
        index = json.loads(index_path.read_text()) if index_path.exists() else {}
        if index.get(split, {}).get("texts_sha256") == digest and ids_path.exists() and off_path.exists():
            return (np.load(ids_path, allow_pickle=False), np.load(off_path, allow_pickle=False))
        return None

    hit = cached()
    if hit is not None:
        return hit
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        hit = cached()          # another trial may have finished it while we waited
        if hit is not None:
            return hit
        log.info("tokenizing %d %s utterances for %s (once; cached in %s)", len(table), split, encoder, d)
        tok = load_tokenizer(encoder)
        enc = tok(texts, add_special_tokens=False, truncation=True, max_length=CACHE_MAX_TOKENS)["input_ids"]
        offsets = np.zeros(len(enc) + 1, np.int64)
        offsets[1:] = np.cumsum([len(e) for e in enc])
        ids = np.fromiter((i for e in enc for i in e), np.int32, count=int(offsets[-1]))
        write_npy_atomic(ids_path, ids)
        write_npy_atomic(off_path, offsets)
        index = json.loads(index_path.read_text()) if index_path.exists() else {}
        index["encoder"] = encoder
        index[split] = {"rows": len(table), "tokens": int(offsets[-1]), "texts_sha256": digest}
        write_json_atomic(index_path, index)
        return ids, offsets


def special_ids(tokenizer) -> dict[str, int]:
    """CLS / SEP / PAD ids of any encoder family (BERT: [CLS] [SEP]; RoBERTa: <s> </s>)."""
    cls = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else sep
    if cls is None or sep is None:
        raise ConfigError("the encoder's tokenizer has neither CLS/SEP nor BOS/EOS tokens to join utterances with")
    return {"cls": int(cls), "sep": int(sep), "pad": int(pad)}


def assemble(target: np.ndarray, past: list[np.ndarray], future: list[np.ndarray], max_length: int,
             cls: int, sep: int) -> tuple[np.ndarray, int, int]:
    """One input sequence; past and future are nearest first. Returns ids and the target's [start, end)."""
    target = target[: max(1, max_length - 2)]           # only a target longer than max_length itself is cut
    budget = max_length - len(target) - 2
    kept_past: list[np.ndarray] = []
    kept_future: list[np.ndarray] = []
    for d in range(max(len(past), len(future))):
        for side, src, kept in (("past", past, kept_past), ("future", future, kept_future)):
            if d >= len(src) or budget <= 1:
                continue
            u = src[d]
            if len(u) + 1 > budget:      # the farthest one that fits in part: cut on its far side
                u = u[len(u) - (budget - 1):] if side == "past" else u[: budget - 1]
            kept.append(u)
            budget -= len(u) + 1
    parts = [np.array([cls], np.int64)]
    for u in reversed(kept_past):
        parts += [u, [sep]]
    start = sum(len(p) for p in parts)
    parts += [target, [sep]]
    end = start + len(target)
    for u in kept_future:
        parts += [u, [sep]]
    return np.concatenate([np.asarray(p, np.int64) for p in parts]), start, end


class DialogueSequences:
    """Every row of a split as an assembled encoder input (built once per SplitData: a window is cheap)."""

    def __init__(self, prepared: Path, split: str, table: pd.DataFrame, encoder: str, context_window: int,
                 future_window: int, max_length: int):
        if context_window < 0 or future_window < 0:
            raise ConfigError("data.context_window and data.future_window must be >= 0")
        if max_length < 8:
            raise ConfigError(f"data.max_tokens {max_length}: too short for an encoder input (use >= 8)")
        ids, offsets = utterance_tokens(prepared, split, table, encoder)
        self.special = special_ids(load_tokenizer(encoder))
        utts = [ids[offsets[i]: offsets[i + 1]].astype(np.int64) for i in range(len(table))]
        order = pd.DataFrame({"d": table["dialogue_id"].to_numpy(), "u": table["utterance_id"].to_numpy(),
                              "row": np.arange(len(table))}).sort_values(["d", "u"])
        self.ids: list[np.ndarray] = [np.zeros(0, np.int64)] * len(table)
        self.span = np.zeros((len(table), 2), np.int64)
        for _, g in order.groupby("d", sort=False):
            rows = g["row"].to_numpy()
            for pos, r in enumerate(rows):
                past = [utts[rows[j]] for j in range(pos - 1, max(-1, pos - 1 - context_window), -1)]
                future = [utts[rows[j]] for j in range(pos + 1, min(len(rows), pos + 1 + future_window))]
                self.ids[r], a, b = assemble(utts[r], past, future, max_length, self.special["cls"],
                                             self.special["sep"])
                self.span[r] = (a, b)
        self.lengths = np.array([len(x) for x in self.ids])

    def collate(self, rows: np.ndarray) -> dict:
        import torch

        width = int(self.lengths[rows].max())
        ids = np.full((len(rows), width), self.special["pad"], np.int64)
        attention = np.zeros((len(rows), width), np.int64)
        target = np.zeros((len(rows), width), np.int64)
        for i, r in enumerate(rows):
            n = self.lengths[r]
            ids[i, :n], attention[i, :n] = self.ids[r], 1
            target[i, self.span[r, 0]: self.span[r, 1]] = 1
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(attention),
                "target_mask": torch.from_numpy(target)}
