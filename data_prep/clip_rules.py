"""Named clip rules: what a corpus needs beyond a clip template (`audio.clip`) or column (`audio.column`), turned
on by its schema (`audio: {clip: ..., rule: NAME}`).

A rule gets a split's clip folder, its rows (dialogue_id, utterance_id, clip) and the quirks report, and returns
each row's clip path (or None: missing) in row order, reporting what it found odd. A new corpus with its own
oddities adds a function and a line in RULES; nothing else changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd


def declared(folder: Path, split: str, df: pd.DataFrame, quirks) -> list[str | None]:
    """No rule: each row's declared clip under the folder, where that file exists."""
    return [str(folder / clip) if (folder / clip).is_file() else None for clip in df["clip"]]


def _meld(folder: Path, split: str, df: pd.DataFrame, quirks) -> list[str | None]:
    from data_prep.meld import plan_clips

    return plan_clips(folder, split, df, quirks)


RULES: dict[str, Callable] = {
    "meld": _meld,      # final_videos_test clips win in test; clips without a row and odd names reported
}
