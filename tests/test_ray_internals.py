"""Ray's private state that resuming a sweep relies on: still the shape we read and write, or a clear error."""

from pathlib import Path

import pytest

from mer_search.search import ray_internals
from mer_search.search.schedulers import PersistentASHA


def test_the_installed_ray_has_the_internals_we_use():
    ray_internals.check()


def test_a_changed_shape_fails_naming_what_changed_and_what_to_do(monkeypatch):
    from ray.tune.schedulers import AsyncHyperBandScheduler

    original = AsyncHyperBandScheduler.__init__

    def reshaped(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._trial_info = [("renamed", None)]       # what a Ray release might do

    monkeypatch.setattr(AsyncHyperBandScheduler, "__init__", reshaped)
    with pytest.raises(ray_internals.RayInternalsChanged) as err:
        ray_internals.check()
    msg = str(err.value)
    assert "_trial_info" in msg and "checked against Ray 2.60" in msg and "Upgrading Ray" in msg


def test_asha_records_round_trip_through_the_internals_module(tmp_path):
    """Records written by one scheduler come back into a fresh one (what a driver restart does)."""
    a = PersistentASHA(tmp_path / "rungs.json", time_attr="training_iteration", max_t=9, grace_period=1,
                       reduction_factor=3, metric="m", mode="max")
    a._brackets[0]._rungs[-1][1]["t1"] = 0.5      # a recorded result at the first milestone
    a._trial_info["t1"] = a._brackets[0]
    a._save()
    b = PersistentASHA(tmp_path / "rungs.json", time_attr="training_iteration", max_t=9, grace_period=1,
                       reduction_factor=3, metric="m", mode="max")
    b._load()
    assert ray_internals.asha_records(b)["brackets"] == ray_internals.asha_records(a)["brackets"]
    assert b._saved_bracket == {"t1": 0}


@pytest.mark.ray
def test_the_experiment_snapshot_names_each_trials_status_and_checkpoint(tmp_path, monkeypatch):
    """Checkpoint pruning reads Tune's persisted snapshot: a real (tiny) run's must parse to what happened."""
    import tempfile

    import pyarrow.fs as pafs
    import ray
    from ray import tune

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")

    def three_epochs(config):
        for epoch in range(3):
            with tempfile.TemporaryDirectory() as d:
                (Path(d) / "x").write_text(str(epoch))
                tune.report({"m": epoch}, checkpoint=tune.Checkpoint.from_directory(d))

    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(three_epochs, run_config=tune.RunConfig(name="t", storage_path=str(tmp_path), verbose=0))
        (result,) = tuner.fit()
    finally:
        ray.shutdown()
    snap = ray_internals.snapshot_positions(pafs.LocalFileSystem(), str(tmp_path / "t"))
    assert snap == {result.metrics["trial_id"]: ("TERMINATED", "checkpoint_000002")}
    assert ray_internals.snapshot_positions(pafs.LocalFileSystem(), str(tmp_path / "nothing")) == {}
