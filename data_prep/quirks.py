"""The quirks report: every oddity found in the data, what was done about it.

A real problem (a missing, undecodable, short or long clip, a duplicate row, a leak ...) is a row per clip or
row in quirks.csv. What every clip of a kind has in common and needs no look (a stereo or 5.1 layout and the
channel kept) is counted instead: one row per split and kind, its `count` saying how many clips."""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from pathlib import Path

from data_prep.atomic import write_bytes_atomic

# The reference project's list (the README's data section). Detection never reads it;
# it is only compared with what detection found, on the real corpus.
REFERENCE_QUIRKS = {
    ("train", 125, 3): "undecodable",
    ("dev", 110, 7): "missing",
    ("test", 38, 4): "long",
    **{("dev", d, u): "short" for d, u in [(99, 3), (108, 5)]},
    **{("train", d, u): "short" for d, u in [(71, 0), (179, 8), (312, 9), (332, 1), (406, 2), (523, 10)]},
}
MELD_TRAIN_ROWS = 9989
log = logging.getLogger(__name__)
_LOUD = {"undecodable", "missing", "short", "long", "duplicate", "leak"}


def kind_of(problem: str) -> str:
    for kind in ("undecodable", "missing", "short", "long", "channels", "final_videos", "without CSV row",
                 "duplicate", "unrecognised", "empty", "order", "leak"):
        if kind in problem:
            return kind
    return "other"


class Quirks:
    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.tallies: Counter = Counter()        # (split, problem, action) -> clips: counted, not listed

    def tally(self, split: str, problem: str, action: str) -> None:
        """A routine finding (a channel layout): counted per split, problem and action, never a row a clip."""
        self.tallies[(split, problem, action)] += 1

    def add(self, split: str, dialogue_id: int, utterance_id: int, file: str, problem: str, action: str) -> None:
        kind = kind_of(problem)
        self.rows.append({"split": split, "dialogue_id": int(dialogue_id), "utterance_id": int(utterance_id),
                          "file": file, "problem": problem, "action": action, "kind": kind})
        level = logging.WARNING if kind in _LOUD else logging.DEBUG
        log.log(level, "%s dia%s_utt%s (%s): %s -> %s", split, dialogue_id, utterance_id, file, problem, action)

    def counts(self) -> dict[str, int]:
        counts = Counter(r["kind"] for r in self.rows)
        for (_, problem, _), n in self.tallies.items():
            counts[kind_of(problem)] += n
        return dict(counts)

    def found(self, kind: str) -> set[tuple[str, int, int]]:
        return {(r["split"], r["dialogue_id"], r["utterance_id"]) for r in self.rows if r["kind"] == kind}

    def reference_check(self, frames: dict) -> dict | None:
        """On real MELD, which of the reference's known quirks detection found (None elsewhere)."""
        if "train" not in frames or len(frames["train"]) != MELD_TRAIN_ROWS:
            return None
        prepared = {s for s in frames}
        out = {"detected": [], "not_detected": []}
        for key, kind in sorted(REFERENCE_QUIRKS.items()):
            if key[0] not in prepared:
                continue
            hit = key in self.found(kind)
            out["detected" if hit else "not_detected"].append(f"{key[0]} dia{key[1]}_utt{key[2]} ({kind})")
        return out

    def write_csv(self, path: Path) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["split", "dialogue_id", "utterance_id", "file", "kind", "problem",
                                            "action", "count"])
        w.writeheader()
        w.writerows({**r, "count": 1} for r in self.rows)
        w.writerows({"split": split, "dialogue_id": -1, "utterance_id": -1, "file": "", "kind": kind_of(problem),
                     "problem": problem, "action": action, "count": n}
                    for (split, problem, action), n in sorted(self.tallies.items()))
        write_bytes_atomic(path, buf.getvalue().encode())

    def summary(self, examples: int = 3) -> list[str]:
        """Grouped lines for the console: count, problem kind, a few examples and the action."""
        lines = []
        groups: dict[str, list] = {}
        for r in self.rows:
            groups.setdefault(r["kind"], []).append(r)
        for key, n in self.tallies.items():
            groups.setdefault(kind_of(key[1]), []).append((key, n))
        order = ["undecodable", "missing", "short", "long", "final_videos", "without CSV row", "duplicate",
                 "unrecognised", "channels", "empty", "order", "leak", "other"]
        for kind, rows in sorted(groups.items(), key=lambda kv: order.index(kv[0])):
            if kind == "channels":  # one line per layout, not per clip
                per = Counter()
                for (_, problem, action), n in rows:
                    per[f"{problem} -> {action}"] += n
                lines.append(f"{sum(per.values()):6d} channels: "
                             + "; ".join(f"{n} x {k}" for k, n in per.most_common()))
                continue
            shown = "; ".join(f"{r['split']} {r['file']}: {r['problem']} -> {r['action']}" for r in rows[:examples])
            more = f" (+{len(rows) - examples} more)" if len(rows) > examples else ""
            lines.append(f"{len(rows):6d} {kind}: {shown}{more}")
        return lines
