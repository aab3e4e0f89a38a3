"""Ray's private state that resuming a sweep relies on: still the shape we read and write, or a clear error."""

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
