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


# a 12-trial TPE + ASHA sweep of text_mlp on the synthetic corpus, shared by the sweep, report and export tests
SWEEP_SPACE = """# mer-search sweep {path} --prepared PREPARED
search: {{metric: dev_wf1, mode: max, max_epochs: 6, grace_period: 1, reduction_factor: 2, num_samples: 12,
         sampler: tpe}}
fixed: {{model.name: text_mlp, data.batch_size: 16}}
params:
  model.emb_dim: {{type: int, low: 8, high: 64, log: true}}
  model.hidden: {{type: categorical, choices: [[16], [32, 16]]}}
  model.dropout: {{type: float, low: 0.0, high: 0.5}}
  train.lr: {{type: float, low: 1.0e-4, high: 3.0e-2, log: true}}
"""


@pytest.fixture(scope="session")
def space_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "tiny.yaml"
    path.write_text(SWEEP_SPACE.format(path=path))
    return path


@pytest.fixture(scope="session")
def sweep_dir(prepared, space_file, tmp_path_factory):
    """The 12-trial TPE + ASHA sweep, run once for the tests below."""
    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_AUTH_MODE", "disabled")
    mp.setenv("WANDB_MODE", "offline")
    import ray

    from mer_search.search.sweep import SweepOptions, run_sweep

    out = tmp_path_factory.mktemp("sweeps") / "first"
    try:
        run_sweep(SweepOptions(space=str(space_file), prepared=str(prepared), out=out, seed=0))
    finally:
        ray.shutdown()
        mp.undo()
    return out


def pytest_collection_modifyitems(items):
    """A test that starts Ray is end to end: the unit tier (-m "not slow and not e2e") leaves it out."""
    for item in items:
        if item.get_closest_marker("ray") and not item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.e2e)
