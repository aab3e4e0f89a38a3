"""A dataset schema: where an emotion-in-conversation corpus keeps its splits, columns, labels and clips.

MELD is one declaration (datasets/meld.yaml) among several; `load_schema(NAME or FILE)` reads and checks one,
every error naming the file and the key. `read_split` turns a split's CSV into the columns prepare works on:
dialogue_id (a composite or non-numeric key becomes one number per dialogue, in order of appearance, and
dialogue_key holds the key as written), utterance_id, speaker (a list literal such as "['Monica Geller']" is
read as data, never evaluated), text_raw, emotion_name (spelled as the schema's label set spells it),
sentiment_name (the second label, or empty), start_s / end_s (HH:MM:SS,mmm or HH:MM:SS.mmm), clip (a declared
clip's path), csv_row.
Every corpus, MELD too, is read by this one function; what no YAML can say about a corpus's clips is a named
clip rule (clip_rules.py) that its schema turns on with `audio.rule`.
"""

from __future__ import annotations

import ast
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from data_prep.errors import PrepError
from data_prep.reader import SPLITS

SHIPPED = Path(__file__).resolve().parent / "datasets"
METRICS = ("weighted_f1", "micro_f1")
SPEAKER_FORMATS = ("plain", "list")
COLUMN_KEYS = ("text", "speaker", "label", "dialogue", "utterance", "second_label", "start", "end", "split")
REQUIRED_COLUMNS = ("text", "speaker", "label", "dialogue", "utterance")


@dataclass(frozen=True)
class Metric:
    name: str = "weighted_f1"          # weighted_f1 | micro_f1
    exclude: str | None = None         # micro_f1 over the other classes (DailyDialog leaves out its majority)


@dataclass(frozen=True)
class Audio:
    clip: str | None = None            # a path template under the clip folder: {dialogue}, {utterance}, {key[i]}
    column: str | None = None          # or a column holding each row's clip path under the clip folder
    rule: str | None = None            # a named clip rule (clip_rules.RULES) for what no template can say

    def path(self, row: dict, keys: list[str]) -> str:
        """A row's clip path under its split's clip folder."""
        if self.column:
            return row[self.column]
        return self.clip.format(dialogue=row["dialogue"], utterance=row["utterance"], key=keys)


@dataclass(frozen=True)
class Schema:
    name: str
    source: Path
    files: dict[str, str]                            # split -> CSV file name (one file for all: the same name)
    columns: dict[str, str | list[str]]
    labels: tuple[str, ...]
    second_labels: tuple[str, ...] = ()
    split_values: dict[str, str] = field(default_factory=dict)   # one file: the split column's value per split
    clip_dirs: dict[str, str] = field(default_factory=dict)      # split -> clip folder under the corpus root
    speaker_format: str = "plain"
    audio: Audio | None = None
    metric: Metric = Metric()
    row_label: str | None = None       # a column naming each row in messages, where the CSV has it (MELD: Sr No.)
    numbered_dialogues: bool = False   # the dialogue column must hold whole numbers >= 0 (MELD's Dialogue_ID)

    @property
    def dialogue_columns(self) -> list[str]:
        key = self.columns["dialogue"]
        return [key] if isinstance(key, str) else list(key)

    def csv_path(self, root: Path, split: str) -> Path:
        return Path(root) / self.files[split]


def shipped() -> dict[str, Path]:
    """The schemas that come with mer-search, by name."""
    return {p.stem: p for p in sorted(SHIPPED.glob("*.yaml"))}


def load_schema(name_or_file: str | Path) -> Schema:
    """A shipped schema by name, or a schema file; checked whole."""
    path = Path(name_or_file)
    if not path.suffix and str(name_or_file) in shipped():
        path = shipped()[str(name_or_file)]
    if not path.is_file():
        raise PrepError(f"--dataset {name_or_file}: neither a shipped dataset ({', '.join(shipped())}) nor a "
                        f"schema file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise PrepError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    return parse_schema(raw, path)


def parse_schema(raw, path: Path) -> Schema:
    def fail(key: str, why: str):
        raise PrepError(f"{path}: {key}: {why}")

    if not isinstance(raw, dict):
        fail("(top)", "a mapping of name, splits, columns, labels ... expected")
    known = {"name", "splits", "file", "split_values", "columns", "speaker_format", "labels", "second_labels",
             "audio", "metric", "row_label", "numbered_dialogues"}
    for key in raw:
        if key not in known:
            fail(key, f"unknown key; valid: {', '.join(sorted(known))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        fail("name", "a non-empty string is required")
    columns = raw.get("columns")
    if not isinstance(columns, dict):
        fail("columns", f"a mapping of {', '.join(REQUIRED_COLUMNS)} (and optionally second_label, start, end) "
                        f"to column names is required")
    for key, value in columns.items():
        if key not in COLUMN_KEYS:
            fail(f"columns.{key}", f"unknown; valid: {', '.join(COLUMN_KEYS)}")
        ok = isinstance(value, str) and value or (key == "dialogue" and isinstance(value, list) and value
                                                  and all(isinstance(v, str) and v for v in value))
        if not ok:
            fail(f"columns.{key}", "a column name" + (" or a list of them (a composite key)" if key == "dialogue"
                                                      else ""))
    for key in REQUIRED_COLUMNS:
        if key not in columns:
            fail(f"columns.{key}", "required")
    if ("start" in columns) != ("end" in columns):
        fail("columns.start" if "end" in columns else "columns.end", "give both start and end, or neither")
    labels = _names(raw.get("labels"), "labels", fail, required=True)
    second = _names(raw.get("second_labels"), "second_labels", fail, required="second_label" in columns)
    if second and "second_label" not in columns:
        fail("second_labels", "given without columns.second_label")
    files, split_values, clip_dirs = _splits(raw, columns, fail)
    speaker_format = raw.get("speaker_format", "plain")
    if speaker_format not in SPEAKER_FORMATS:
        fail("speaker_format", f"{speaker_format!r}: one of {', '.join(SPEAKER_FORMATS)}")
    audio = None
    if raw.get("audio") is not None:
        a = raw["audio"]
        declared = sum(isinstance(a.get(k), str) for k in ("clip", "column")) if isinstance(a, dict) else 0
        if not isinstance(a, dict) or declared > 1 or not (declared or a.get("rule") or a.get("quirks")):
            fail("audio", "a mapping with clip: a path template such as 'dia{dialogue}_utt{utterance}.mp4', "
                          "or column: the column holding each row's clip path, or rule: a named clip rule")
        unknown = set(a) - {"clip", "column", "rule", "quirks"}
        if unknown:
            fail(f"audio.{sorted(unknown)[0]}", "unknown; valid: clip, column, rule")
        rule = a.get("rule", a.get("quirks"))        # `quirks:` is what schemas before clip rules called it
        from data_prep.clip_rules import RULES

        if rule is not None and rule not in RULES:
            fail("audio.rule", f"{rule!r}: a named clip rule ({', '.join(RULES)}; data_prep/clip_rules.py)")
        if not clip_dirs:
            fail("splits", "audio needs each split's clip folder (splits.SPLIT.clips)")
        try:
            if a.get("clip"):
                a["clip"].format(dialogue=0, utterance=0, key=("0",) * len(_as_list(columns["dialogue"])))
        except (KeyError, IndexError, ValueError) as e:
            fail("audio.clip", f"{a['clip']!r}: unknown field {e} (use {{dialogue}}, {{utterance}}, {{key[0]}} ...)")
        audio = Audio(a.get("clip"), a.get("column"), rule)
    metric = Metric()
    if raw.get("metric") is not None:
        m = raw["metric"]
        if not isinstance(m, dict) or m.get("name") not in METRICS:
            fail("metric", f"a mapping with name: one of {', '.join(METRICS)} (and exclude: a label for micro_f1)")
        if set(m) - {"name", "exclude"}:
            fail(f"metric.{sorted(set(m) - {'name', 'exclude'})[0]}", "unknown; valid: name, exclude")
        if m.get("exclude") is not None and m["exclude"] not in labels:
            fail("metric.exclude", f"{m['exclude']!r} is not in labels ({', '.join(labels)})")
        if m.get("exclude") is not None and m["name"] != "micro_f1":
            fail("metric.exclude", "only micro_f1 leaves a class out")
        metric = Metric(m["name"], m.get("exclude"))
    row_label = raw.get("row_label")
    if row_label is not None and not (isinstance(row_label, str) and row_label):
        fail("row_label", "a column name")
    numbered = raw.get("numbered_dialogues", False)
    if not isinstance(numbered, bool) or (numbered and not isinstance(columns["dialogue"], str)):
        fail("numbered_dialogues", "true or false (true: one dialogue column of whole numbers)")
    return Schema(name, path, files, dict(columns), labels, second, split_values, clip_dirs, speaker_format, audio,
                  metric, row_label, numbered)


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _names(value, key: str, fail, required) -> tuple[str, ...]:
    if value is None:
        if required:
            fail(key, "the label set, in a fixed order, is required")
        return ()
    if not isinstance(value, list) or len(value) < 2 or not all(isinstance(v, str) and v for v in value):
        fail(key, "a list of at least two label names")
    lowered = [v.lower() for v in value]
    if len(set(lowered)) != len(lowered):
        fail(key, "names must differ (compared without case)")
    return tuple(value)


def _splits(raw: dict, columns: dict, fail) -> tuple[dict, dict, dict]:
    """Per split: its CSV (or one file and a split column) and its clip folder."""
    splits = raw.get("splits")
    if not isinstance(splits, dict) or "train" not in splits:
        fail("splits", "a mapping with train (and dev, test) is required")
    files, values, clips = {}, {}, {}
    one_file = raw.get("file")
    if one_file is not None and ("split" not in columns or not isinstance(one_file, str)):
        fail("file", "one file for every split needs columns.split, the column that names each row's split")
    for split, spec in splits.items():
        if split not in SPLITS:
            fail(f"splits.{split}", f"unknown split; valid: {', '.join(SPLITS)}")
        if not isinstance(spec, dict):
            fail(f"splits.{split}", "a mapping (csv: FILE, clips: FOLDER; with one file: value: ITS SPLIT VALUE)")
        unknown = set(spec) - {"csv", "clips", "value"}
        if unknown:
            fail(f"splits.{split}.{sorted(unknown)[0]}", "unknown; valid: csv, clips, value")
        if one_file is not None:
            if not isinstance(spec.get("value"), str):
                fail(f"splits.{split}.value", "with one file, the split column's value for this split")
            files[split], values[split] = one_file, spec["value"]
        elif isinstance(spec.get("csv"), str) and spec["csv"]:
            files[split] = spec["csv"]
        else:
            fail(f"splits.{split}.csv", "the split's CSV file name")
        if spec.get("clips") is not None:
            clips[split] = str(spec["clips"])
    return files, values, clips


# -- reading -----------------------------------------------------------------------------------------------
def parse_speaker(value: str, where: str) -> str:
    """A plain name, or a list literal of names (joined with ' & '): read with ast.literal_eval, never eval."""
    text = value.strip()
    if not text.startswith("["):
        return text
    try:
        names = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise PrepError(f"{where}: speaker {value!r} is not a list literal such as \"['Monica Geller']\"") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise PrepError(f"{where}: speaker {value!r} is not a list of names")
    return " & ".join(n.strip() for n in names)


def parse_time(s: str) -> float:
    """'00:16:16,059', '0:16:16.059' -> seconds; NaN when malformed (MELD has a few)."""
    m = re.fullmatch(r"\s*(\d+):(\d+):(\d+)[,.](\d+)\s*", s or "")
    if not m:
        return float("nan")
    h, mi, se, frac = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(se) + int(frac) / 10 ** len(frac)


def check_separator(path: Path, text: str) -> None:
    """A CSV saved with another separator (a spreadsheet in a ';' locale, a TSV) fails with that said, not
    with a parser's field count: a header names its columns, so count what separates them there."""
    header = text.lstrip().split("\n", 1)[0]
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    if best != "," and counts[best] >= 3 and counts[best] > 2 * counts[","]:
        shown = "tab" if best == "\t" else f"'{best}'"
        raise PrepError(f"{path}: looks separated by {shown} (header: {header[:80]!r}); the CSVs must use ',': "
                        f"re-save it as comma-separated")


def read_split(schema: Schema, root: Path, split: str, text: str | None = None,
               path: Path | None = None) -> pd.DataFrame:
    """A split's rows in prepare's columns (module docstring); a bad value is an error naming file and row."""
    path = Path(path or schema.csv_path(root, split))
    if text is None:
        if path.is_dir():
            raise PrepError(f"{path}: is a directory, expected the {split} CSV file")
        if not path.is_file():
            raise PrepError(f"{path}: no such file (the {split} CSV of dataset {schema.name}; pass --{split}-csv "
                            f"or fix the corpus folder)")
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise PrepError(f"{path}: line {line}: byte 0x{raw[e.start]:02x} is not UTF-8; re-save the file as "
                            f"UTF-8") from None
    if not text.strip():
        raise PrepError(f"{path}: file is empty (expected the columns named in {schema.source})")
    check_separator(path, text)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        raise PrepError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    df.columns = [c.strip() for c in df.columns]
    cols = schema.columns
    needed = [c for key, c in cols.items() for c in _as_list(c)]
    if schema.audio and schema.audio.column:
        needed.append(schema.audio.column)
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise PrepError(f"{path}: missing column(s) {', '.join(missing)} named in {schema.source} "
                        f"(found: {', '.join(map(str, df.columns[:12]))})")
    if schema.split_values:
        df = df[df[cols["split"]].str.strip() == schema.split_values[split]].reset_index(drop=True)
    if len(df) == 0:
        raise PrepError(f"{path}: no rows for split {split}")

    def where(i: int) -> str:
        label = schema.row_label in df.columns and df[schema.row_label].iloc[i]
        return f"{path}: row {i + 1}" + (f" ({schema.row_label} {label})" if label else "")

    out = pd.DataFrame(index=df.index)
    first, *rest = schema.dialogue_columns
    keys = df[first].str.strip()
    for column in rest:
        keys = keys + "/" + df[column].str.strip()
    numbers = pd.to_numeric(keys, errors="coerce")
    bad = numbers.isna() | (numbers < 0) | (numbers != numbers.round())
    if schema.numbered_dialogues and bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise PrepError(f"{where(i)}: {first} {df[first].iloc[i]!r} is not a non-negative integer")
    if len(schema.dialogue_columns) == 1 and not bad.any():
        out["dialogue_id"] = numbers.astype("int32")            # a numbered dialogue keeps its number (MELD)
    else:                                                     # else one number per dialogue, in order, and
        out["dialogue_id"] = pd.Series(pd.factorize(keys)[0], index=df.index).astype("int32")
        out["dialogue_key"] = keys                            # the key as written
    utt = pd.to_numeric(df[cols["utterance"]].str.strip(), errors="coerce")
    bad = utt.isna() | (utt < 0) | (utt != utt.round())
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise PrepError(f"{where(i)}: {cols['utterance']} {df[cols['utterance']].iloc[i]!r} is not a "
                        f"non-negative integer")
    out["utterance_id"] = utt.astype("int32")
    out["split"] = split
    out["emotion_name"] = _labels(df[cols["label"]], schema.labels, cols["label"], where)
    out["sentiment_name"] = _labels(df[cols["second_label"]], schema.second_labels, cols["second_label"], where) \
        if "second_label" in cols else ""
    fmt = schema.speaker_format
    out["speaker"] = [parse_speaker(v, where(i)) if fmt == "list" else v.strip()
                      for i, v in enumerate(df[cols["speaker"]])]
    out["text_raw"] = df[cols["text"]]
    for key, name in (("start", "start_s"), ("end", "end_s")):
        out[name] = (df[cols[key]].map(parse_time) if key in cols else float("nan"))
        out[name] = out[name].astype("float32")
    if schema.audio and (schema.audio.clip or schema.audio.column):       # else its clip rule finds the clips
        parts = df[schema.dialogue_columns].to_numpy().tolist()
        rows = df.assign(dialogue=keys, utterance=df[cols["utterance"]].str.strip()).to_dict("records")
        out["clip"] = [schema.audio.path(r, [str(k).strip() for k in p]) for r, p in zip(rows, parts)]
    out["csv_row"] = range(1, len(df) + 1)
    return out


def _labels(values: pd.Series, names: tuple[str, ...], column: str, where) -> pd.Series:
    """Labels spelled as the schema spells them (matched without case or surrounding space)."""
    canonical = {n.lower(): n for n in names}
    mapped = values.str.strip().str.lower().map(canonical)
    bad = mapped.isna()
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise PrepError(f"{where(i)}: {column} {values.iloc[i]!r} is not in the label set ({', '.join(names)})")
    return mapped
