"""A real local sweep: Ray Tune trials sampled by Optuna (study in sqlite), early-stopped by ASHA,
results in one Parquet table, W&B offline runs written from the driver."""

import optuna
import pandas as pd
import pytest

pytestmark = pytest.mark.ray

SPACE = """# mer-search sweep {path} --prepared PREPARED
search: {{metric: dev_wf1, mode: max, max_epochs: 6, grace_period: 1, reduction_factor: 2, num_samples: 12,
         sampler: tpe}}
fixed: {{model.name: text_mlp, data.batch_size: 16}}
params:
  model.emb_dim: {{type: int, low: 8, high: 64, log: true}}
  model.hidden: {{type: categorical, choices: [[16], [32, 16]]}}
  model.dropout: {{type: float, low: 0.0, high: 0.5}}
  train.lr: {{type: float, low: 1.0e-4, high: 3.0e-2, log: true}}
"""


def test_local_sweep_with_asha_and_wandb_offline(prepared, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("WANDB_MODE", "offline")
    import ray

    from mer_search.search.sweep import SweepOptions, run_sweep

    space = tmp_path / "tiny.yaml"
    space.write_text(SPACE.format(path=space))
    out = tmp_path / "sweep"
    try:
        table = run_sweep(SweepOptions(space=str(space), prepared=str(prepared), out=out, seed=0))
    finally:
        ray.shutdown()
    assert (out / "trials.parquet").exists()
    saved = pd.read_parquet(out / "trials.parquet")
    assert len(saved) == len(table) and saved.trial_id.nunique() == 12
    epochs = saved.groupby("trial_id").training_iteration.max()
    assert epochs.max() == 6 and (epochs < 6).sum() >= 3, f"ASHA should stop some trials early: {epochs.tolist()}"
    assert {"config/model.emb_dim", "config/train.lr", "dev_wf1", "dev_loss", "train_loss"} <= set(saved.columns)
    assert saved.dev_wf1.between(0, 1).all()
    study = optuna.load_study(study_name=optuna.get_all_study_names(f"sqlite:///{out / 'optuna.db'}")[0],
                              storage=f"sqlite:///{out / 'optuna.db'}")
    assert len(study.trials) == 12
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 12 and all(list(r.glob("*.wandb")) for r in runs)


def test_cli_sweep_runs_and_reports_bad_input(prepared, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mer_search.cli import main

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    space = tmp_path / "tiny.yaml"
    space.write_text(SPACE.format(path=space))
    r = CliRunner().invoke(main, ["sweep", str(space), "--prepared", str(prepared), "--out", str(tmp_path / "s"),
                                  "--num-samples", "2", "--max-epochs", "2", "--wandb", "disabled"])
    assert r.exit_code == 0, r.output
    assert "2 trials" in r.output and "best dev_wf1" in r.output
    assert pd.read_parquet(tmp_path / "s" / "trials.parquet").trial_id.nunique() == 2
    r = CliRunner().invoke(main, ["sweep", str(tmp_path / "missing.yaml"), "--prepared", str(prepared)])
    assert r.exit_code == 1 and "no such space file" in r.stderr
    r = CliRunner().invoke(main, ["sweep", str(space), "--prepared", str(tmp_path / "nowhere")])
    assert r.exit_code == 1 and "run `mer-search prepare` first" in r.stderr
    import torch

    if not torch.cuda.is_available():
        r = CliRunner().invoke(main, ["sweep", str(space), "--prepared", str(prepared), "--out", str(tmp_path / "g"),
                                      "--gpus-per-trial", "0.25"])
        assert r.exit_code == 1 and "has no GPU" in r.stderr
