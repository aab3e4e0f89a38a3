"""MELD's clip rule (`audio.rule: meld` in datasets/meld.yaml): what its schema cannot say.

MELD's splits, files, folders, columns and labels are declared in datasets/meld.yaml and read like any
corpus's; what is left here is its clip folders' oddities: in test, `final_videos_test*` clips hold the audio
that really matches the CSV and win over the plain ones; clips without a CSV row are reported and ignored,
as are files with names outside the dia{D}_utt{U}.mp4 pattern. A key is (split, dialogue_id, utterance_id):
dialogue ids repeat across splits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from data_prep.errors import PrepError

CLIP_RE = re.compile(r"^(final_videos_test)?dia(\d+)_utt(\d+)\.mp4$")
# The test folder's `final_videos_test*` clips hold the audio that really matches the CSV.
PREFERRED_PREFIX = {"test": "final_videos_test"}


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
                        f"(expected MELD.Raw layout under the corpus folder, or use --text-only)")
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


def plan_clips(folder: Path, split: str, df: pd.DataFrame, quirks) -> list[str | None]:
    """Each row's clip (None: missing), in row order; the folder's oddities into the quirks report."""
    idx = index_clips(folder, split)
    keys = set(zip(df["dialogue_id"], df["utterance_id"]))
    for (d, u), p in sorted(idx.paths.items()):
        if (d, u) not in keys:
            quirks.add(split, d, u, p.name, "clip without CSV row", "ignored")
    for (d, u), (chosen, plain) in sorted(idx.preferred.items()):
        if (d, u) in keys:
            quirks.add(split, d, u, chosen.name, "final_videos_test clip present",
                       f"used it instead of {plain.name if plain else 'a missing plain clip'}")
    for p in idx.unrecognised:
        quirks.add(split, -1, -1, p.name, "unrecognised clip name", "ignored")
    return [str(idx.paths[(d, u)]) if (d, u) in idx.paths else None
            for d, u in zip(df["dialogue_id"], df["utterance_id"])]
