"""MELD's layout and annotation CSVs: reading, validating and locating clips.

A key is (split, dialogue_id, utterance_id): dialogue ids repeat across splits.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from data_prep.errors import PrepError

SPLITS = ("train", "dev", "test")
CLIP_DIRS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
CSV_NAMES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
EMOTIONS = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
SENTIMENTS = ("negative", "neutral", "positive")
REQUIRED_COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
                    "StartTime", "EndTime")
CLIP_RE = re.compile(r"^(final_videos_test)?dia(\d+)_utt(\d+)\.mp4$")
# The test folder's `final_videos_test*` clips hold the audio that really matches the CSV.
PREFERRED_PREFIX = {"test": "final_videos_test"}


def parse_timestamp(s: str) -> float:
    """'00:16:16,059' or '0:16:16,059' -> seconds; NaN when malformed (MELD has a few)."""
    m = re.fullmatch(r"\s*(\d+):(\d+):(\d+)[,.](\d+)\s*", s or "")
    if not m:
        return float("nan")
    h, mi, se, frac = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(se) + int(frac) / 10 ** len(frac)


def check_separator(path: Path, text: str) -> None:
    """A CSV saved with another separator (a spreadsheet in a ';' locale, a TSV) fails with that said, not
    with a parser's field count: MELD's header names its columns, so count what separates them there."""
    header = text.lstrip().split("\n", 1)[0]
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    if best != "," and counts[best] >= 3 and counts[best] > 2 * counts[","]:
        shown = "tab" if best == "\t" else f"'{best}'"
        raise PrepError(f"{path}: looks separated by {shown} (header: {header[:80]!r}); MELD's CSVs use ',': "
                        f"re-save it as comma-separated")


def read_annotations(path: Path, split: str) -> pd.DataFrame:
    """Read and validate one MELD CSV; every problem is a PrepError naming the file and row."""
    if not path.exists():
        raise PrepError(f"{path}: no such file (the {split} CSV; pass --{split}-csv or fix --meld-root)")
    if path.is_dir():
        raise PrepError(f"{path}: is a directory, expected the {split} CSV file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise PrepError(f"{path}: cannot read ({e.strerror})") from None
    if not raw.strip():
        raise PrepError(f"{path}: file is empty (expected MELD's columns: {', '.join(REQUIRED_COLUMNS)})")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise PrepError(f"{path}: line {line}: byte 0x{raw[e.start]:02x} is not UTF-8; "
                        f"re-save the file as UTF-8") from None
    check_separator(path, text)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, quoting=csv.QUOTE_MINIMAL)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        raise PrepError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise PrepError(f"{path}: missing column(s) {', '.join(missing)} "
                        f"(found: {', '.join(map(str, df.columns[:12]))})")
    if len(df) == 0:
        raise PrepError(f"{path}: has a header but no rows")

    def row_name(i: int) -> str:
        sr = df["Sr No."].iloc[i] if "Sr No." in df.columns else ""
        return f"row {i + 1}" + (f" (Sr No. {sr})" if sr else "")

    out = pd.DataFrame(index=df.index)
    for col, name in (("Dialogue_ID", "dialogue_id"), ("Utterance_ID", "utterance_id")):
        vals = pd.to_numeric(df[col].str.strip(), errors="coerce")
        bad = vals.isna() | (vals < 0) | (vals != vals.round())
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise PrepError(f"{path}: {row_name(i)}: {col} {df[col].iloc[i]!r} is not a non-negative integer")
        out[name] = vals.astype("int32")
    out["split"] = split
    for col, name, allowed in (("Emotion", "emotion_name", EMOTIONS), ("Sentiment", "sentiment_name", SENTIMENTS)):
        vals = df[col].str.strip().str.lower()
        bad = ~vals.isin(allowed)
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise PrepError(f"{path}: {row_name(i)}: unknown {col.lower()} {df[col].iloc[i]!r} "
                            f"(expected one of: {', '.join(allowed)})")
        out[name] = vals
    out["speaker"] = df["Speaker"].str.strip()
    out["text_raw"] = df["Utterance"]
    out["start_s"] = df["StartTime"].map(parse_timestamp).astype("float32")
    out["end_s"] = df["EndTime"].map(parse_timestamp).astype("float32")
    out["csv_row"] = range(1, len(df) + 1)
    return out


@dataclass
class ClipIndex:
    """Which file holds each utterance's audio in one split folder, and what is odd about the folder."""

    paths: dict[tuple[int, int], Path] = field(default_factory=dict)
    preferred: dict[tuple[int, int], tuple[Path, Path | None]] = field(default_factory=dict)
    unrecognised: list[Path] = field(default_factory=list)


def index_clips(folder: Path, split: str) -> ClipIndex:
    """Scan a clip folder once; in test, `final_videos_test*` files win over plain ones."""
    if not folder.is_dir():
        raise PrepError(f"{folder}: clip folder for {split} not found "
                        f"(expected MELD.Raw layout under --meld-root, or use --text-only)")
    idx = ClipIndex()
    plain: dict[tuple[int, int], Path] = {}
    special: dict[tuple[int, int], Path] = {}
    prefix = PREFERRED_PREFIX.get(split)
    for p in sorted(folder.iterdir()):
        m = CLIP_RE.match(p.name)
        if not m or not p.is_file():
            if p.suffix.lower() == ".mp4":
                idx.unrecognised.append(p)
            continue
        key = (int(m.group(2)), int(m.group(3)))
        if m.group(1) and m.group(1) == prefix:
            special[key] = p
        elif m.group(1):
            idx.unrecognised.append(p)
        else:
            plain[key] = p
    idx.paths = dict(plain)
    for key, p in special.items():
        idx.paths[key] = p
        idx.preferred[key] = (p, plain.get(key))
    return idx
