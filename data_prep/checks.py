"""Checks a user expects of any corpus, each reported (quirks.csv and the console), the rows kept.

- an empty utterance (kept: a context model still sees the turn);
- a dialogue whose utterance order has gaps (ids 0, 1, 3: a turn lost on the way);
- splits that share a dialogue (the same turns, speaker for speaker) or identical rows: leakage, which
  flatters every dev and test score, is a warning naming the count.
Repeated (dialogue, utterance) keys are prepare's duplicate rule (the first row kept).
"""

from __future__ import annotations

import logging

import pandas as pd

from data_prep.quirks import Quirks

log = logging.getLogger(__name__)


def check_rows(frames: dict[str, pd.DataFrame], quirks: Quirks) -> None:
    for split, df in frames.items():
        for r in df[df["text_raw"].str.strip() == ""].itertuples():
            quirks.add(split, r.dialogue_id, r.utterance_id, f"row {r.csv_row}", "empty utterance", "kept")
        for d, ids in df.groupby("dialogue_id")["utterance_id"]:
            ids = sorted(set(ids))
            lost = sorted(set(range(ids[0], ids[-1] + 1)) - set(ids))
            if lost:
                quirks.add(split, d, -1, f"dialogue {d}", f"order gap: utterance ids {lost[:5]} absent",
                           "kept in order")
    _leaks(frames, quirks)


def _leaks(frames: dict[str, pd.DataFrame], quirks: Quirks) -> None:
    """Dialogues (their turns, in order) and rows that occur in two splits."""
    def turns(df: pd.DataFrame) -> dict[tuple, int]:
        ordered = df.sort_values(["dialogue_id", "utterance_id"])
        said = ordered["speaker"] + "\x1f" + ordered["text_raw"].str.strip()
        said = said.groupby(ordered["dialogue_id"]).agg(tuple)
        return {t: d for d, t in said.items() if len(t) > 1}

    splits = list(frames)
    dialogues = {s: turns(frames[s]) for s in splits}
    rows = {s: set(zip(frames[s]["speaker"], frames[s]["text_raw"].str.strip(), frames[s]["emotion_name"],
                       frames[s]["start_s"].fillna(-1), frames[s]["end_s"].fillna(-1))) for s in splits}
    for i, a in enumerate(splits):
        for b in splits[i + 1:]:
            shared = set(dialogues[a]) & set(dialogues[b])
            for key in sorted(shared, key=lambda k: dialogues[a][k]):
                quirks.add(b, dialogues[b][key], -1, f"dialogue {dialogues[b][key]}",
                           f"leak: the same dialogue as {a} dialogue {dialogues[a][key]}", "kept")
            same_rows = len(rows[a] & rows[b])
            if shared or same_rows:
                log.warning("%s and %s share %d dialogue(s) and %d identical row(s) (speaker, text, label, times): "
                            "leakage flatters the scores of the later split", a, b, len(shared), same_rows)
