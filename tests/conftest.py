import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("WANDB_MODE", "offline")

REPO = Path(__file__).resolve().parents[1]
MELD_DIR = Path(os.environ.get("MELD_DIR", REPO.parent / "shared" / "meld"))


@pytest.fixture(scope="session")
def meld_dir() -> Path:
    if not (MELD_DIR / "train_sent_emo.csv").exists():
        pytest.skip(f"real MELD CSVs not found in {MELD_DIR} (set MELD_DIR)")
    return MELD_DIR


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory) -> Path:
    from data_prep.synth import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("corpus")
    synthesize(root, SynthConfig(dialogues=12, seed=3))
    return root


@pytest.fixture(scope="session")
def prepared(synth_corpus, tmp_path_factory) -> Path:
    from data_prep.prepare import PrepareOptions, prepare

    out = tmp_path_factory.mktemp("prepared")
    prepare(PrepareOptions(meld_root=synth_corpus, out=out, shard_size=16))
    return out
