"""One owner each: a Sweep owns what it changes in the process (Ray, Tune's environment, the running sweep's
state) and undoes it on exit; an Experiment's seed comes from the run, a config's train.seed is where a run's
seeds start, and a space cannot fix it."""

import os

import pytest

from mer_search.search import state, sweep
from mer_search.search.sweep import TUNE_ENV, Sweep, SweepOptions


def _opts(tmp_path):
    return SweepOptions(space="s.yaml", prepared=str(tmp_path), out=tmp_path / "sweep")


class FakeRay:
    def __init__(self, running: bool):
        self.running, self.inits, self.shutdowns = running, 0, 0

    def is_initialized(self):
        return self.running

    def init(self, **kw):
        self.inits += 1
        self.running = True

    def shutdown(self):
        self.shutdowns += 1
        self.running = False

    def cluster_resources(self):
        return {"CPU": 2.0}


@pytest.mark.parametrize("running_before", [False, True])
def test_a_sweep_shuts_down_only_the_ray_it_started(tmp_path, monkeypatch, running_before):
    fake = FakeRay(running_before)
    monkeypatch.setattr(sweep, "ray", fake)
    monkeypatch.setattr(sweep.signals, "reclaim", lambda: None)
    with Sweep(_opts(tmp_path)) as s:
        s._start_ray(None)
        assert fake.running
    assert (fake.inits, fake.shutdowns) == ((0, 0) if running_before else (1, 1))
    assert fake.running is running_before


def test_the_environment_a_sweep_sets_is_restored_and_a_users_value_wins(tmp_path, monkeypatch):
    for key in TUNE_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "30")        # the user's
    monkeypatch.delenv("TUNE_MAX_PENDING_TRIALS_PG", raising=False)
    monkeypatch.setattr(sweep, "ray", FakeRay(True))
    with Sweep(_opts(tmp_path)) as s:
        assert os.environ["TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"] == "0"
        assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "30"
        s._allow_pending(type("Plan", (), {"cpus_per_trial": 1, "gpus_per_trial": 0, "max_concurrent": None})())
        assert os.environ["TUNE_MAX_PENDING_TRIALS_PG"] == "2"
    assert "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S" not in os.environ
    assert "TUNE_MAX_PENDING_TRIALS_PG" not in os.environ
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "30"


def test_the_running_sweeps_state_ends_with_the_sweep_even_on_an_error(tmp_path, monkeypatch):
    from mer_search.core.plan import SearchSettings, SweepPlan

    plan = SweepPlan(space_name="s", space_source="s.yaml", sweep_dir=str(tmp_path), search=SearchSettings(),
                     scheduler="asha", seed=0, objectives=[["dev_wf1", "max"]], base={"data.prepared": "/p"},
                     prepared_sha256="0" * 64, study_storage=state.local_study_url(tmp_path), study_name="s",
                     storage=str(tmp_path))
    monkeypatch.setattr(sweep, "ray", FakeRay(True))
    with pytest.raises(RuntimeError, match="boom"):
        with Sweep(_opts(tmp_path)):
            running = state.activate(tmp_path, plan)
            assert state.current() is running and state.here(str(tmp_path)) == str(tmp_path.resolve())
            raise RuntimeError("boom")
    assert state.current() is None


def test_train_seed_is_where_a_runs_seeds_start(prepared, tmp_path):
    from mer_search.training.config import first_seed
    from mer_search.training.experiment import run_seeds

    cfg = {"data": {"prepared": str(prepared), "batch_size": 16}, "model": {"name": "text_mlp", "emb_dim": 8},
           "train": {"epochs": 1, "seed": 3}}
    summary = run_seeds(cfg, tmp_path / "run", 2)
    assert [m["seed"] for m in summary["per_seed"]] == [3, 4]
    assert sorted(p.name for p in (tmp_path / "run").glob("seed_*")) == ["seed_3", "seed_4"]
    assert first_seed({"train": {}}) == 0
    from mer_search.core.errors import ConfigError

    with pytest.raises(ConfigError, match="train.seed: -1 must be a whole number >= 0"):
        first_seed({"train": {"seed": -1}})


def test_a_space_cannot_fix_or_search_train_seed(tmp_path):
    from mer_search.search.space import SpaceError, load_space

    path = tmp_path / "s.yaml"
    for body in ("fixed: {model.name: text_mlp, train.seed: 1}\n",
                 "fixed: {model.name: text_mlp}\nparams: {train.seed: {type: int, low: 0, high: 3}}\n"):
        path.write_text(body)
        with pytest.raises(SpaceError, match="train.seed: the sweep's --seed seeds every trial"):
            load_space(path)


def test_sweeps_inside_ray_kept_share_one_ray_shut_down_at_the_end(tmp_path, monkeypatch):
    fake = FakeRay(False)
    monkeypatch.setattr(sweep, "ray", fake)
    monkeypatch.setattr(sweep.signals, "reclaim", lambda: None)
    with Sweep.ray_kept():
        for _ in range(3):                   # the pipeline's stages
            with Sweep(_opts(tmp_path)) as s:
                s._start_ray(None)
            assert fake.running
    assert (fake.inits, fake.shutdowns, fake.running) == (1, 1, False)
    with Sweep.ray_kept():                   # nothing needed Ray (every stage done before): none started
        pass
    assert (fake.inits, fake.shutdowns) == (1, 1)
