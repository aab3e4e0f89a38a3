"""`mer-search predict`: apply a model bundle (or a checkpoint) to a MELD-style CSV (and its clips).

The new rows go through the preparation the model was trained with, as fitted on its training data and
carried in the bundle: text cleaning, speaker tags and vocabulary, audio settings, the train statistics
vectors are z-scored with. Only the new rows are prepared. Emotion/Sentiment columns are optional:
without them the output has predictions only; with them, scores too.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mer_search.bundle import load


def predict_csv(model: str | Path, csv: str | Path, meld_root: str | Path | None = None,
                split: str = "test") -> tuple[pd.DataFrame, dict | None]:
    """Predictions (label + probability per emotion) for every CSV row; metrics when the CSV has labels.
    `model`: a bundle folder, or a checkpoint (with the models it reads features from, as its feature
    dirs name them)."""
    return load(model).predict(csv, meld_root, split)
