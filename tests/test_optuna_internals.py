"""Optuna and W&B behaviour mer-search relies on beyond their documented API: still there, or a clear error."""

import pickle

import pytest

from mer_search.search import optuna_internals, state, wandb_internals


def test_the_installed_optuna_pickles_an_rdb_storage_by_its_url(tmp_path):
    optuna_internals.check(str(tmp_path))


def test_a_pickled_sqlite_study_reopens_in_the_moved_sweep_dir(tmp_path):
    import optuna

    old, new = tmp_path / "a", tmp_path / "b"
    old.mkdir()
    storage = state.RelocatableRDBStorage(f"sqlite:///{old}/optuna.db")
    optuna.create_study(study_name="s", storage=storage).enqueue_trial({"x": 1.0})
    pickled = pickle.dumps(storage)
    storage.engine.dispose()
    old.rename(new)
    from mer_search.core.plan import SearchSettings, SweepPlan

    plan = SweepPlan(space_name="s", space_source="s.yaml", sweep_dir=str(old), search=SearchSettings(),
                     scheduler="asha", seed=0, objectives=[["dev_wf1", "max"]], base={"data.prepared": "/p"},
                     prepared_sha256="0" * 64, study_storage=f"sqlite:///{old}/optuna.db", study_name="s",
                     storage=str(old))
    state.activate(new, plan)
    try:
        moved = pickle.loads(pickled)
    finally:
        state.deactivate()
    assert moved.url == f"sqlite:///{new}/optuna.db"
    assert len(optuna.load_study(study_name="s", storage=moved).trials) == 1


def test_a_changed_rdb_state_fails_naming_what_changed():
    with pytest.raises(optuna_internals.OptunaInternalsChanged, match="pickles no 'url'.*Optuna 5.0"):
        optuna_internals.moved_rdb_state({"engine_kwargs": {}}, str)


def test_the_installed_wandb_has_the_flush_setting_and_the_log_reader():
    wandb_internals.check()
    assert getattr(wandb_internals.settings(2.0), wandb_internals.FLUSH_SETTING) == 2.0


def test_a_missing_wandb_setting_fails_naming_it(monkeypatch):
    monkeypatch.setattr(wandb_internals, "FLUSH_SETTING", "x_no_such_setting_in_wandb")
    with pytest.raises(wandb_internals.WandbInternalsChanged, match="x_no_such_setting_in_wandb.*W&B 0.31"):
        wandb_internals.check()
