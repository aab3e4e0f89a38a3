"""The sweep plan: typed, versioned, round-tripped through the sweep dir; plans written by older versions load."""

import json

import pytest

from mer_search.core.dirs import SweepDir
from mer_search.core.plan import VERSION, SearchSettings, SweepDirError, SweepPlan, lower_is_better

SEARCH = {"metric": "dev_wf1", "mode": "max", "max_epochs": 6, "grace_period": 1, "reduction_factor": 2}
# as version 2 wrote it: num_samples and sampler beside the search section
PLAN = dict(space_name="text_mlp", space_source="/s/text_mlp.yaml", sweep_dir="/runs/a", num_samples=4,
            search=SEARCH, sampler="tpe", scheduler="asha", seed=0, objectives=[["dev_wf1", "max"]],
            base={"model.name": "text_mlp", "data.prepared": "/p"}, prepared_sha256="ab" * 32,
            study_storage="sqlite:////runs/a/optuna.db", study_name="text_mlp-a", storage="/runs/a")


def load_plan(d):
    return SweepDir(d).load_plan()


def typed(**kw) -> SweepPlan:
    """PLAN as this version builds it: num_samples and sampler kept once, in the search settings."""
    raw = {k: v for k, v in {**PLAN, **kw}.items() if k not in ("num_samples", "sampler", "search")}
    return SweepPlan(**raw, search=SearchSettings.from_dict({**SEARCH, "num_samples": 4, "sampler": "tpe"}))


def test_round_trip(tmp_path):
    plan = typed(final={"data.train_fraction": 1.0}, max_concurrent=2)
    SweepDir(tmp_path).save_plan(plan)
    back = load_plan(tmp_path)
    assert back == plan and back.version == VERSION
    assert (back.metric, back.mode, back.max_epochs, back.prepared) == ("dev_wf1", "max", 6, "/p")
    assert (back.num_samples, back.sampler, back.search.startup_trials) == (4, "tpe", 10)
    saved = json.loads(SweepDir(tmp_path).plan_path.read_text())
    assert saved["version"] == VERSION and "num_samples" not in saved and saved["search"]["num_samples"] == 4


def test_a_version_2_plan_keeps_the_trials_and_sampler_it_ran_with(tmp_path):
    """Version 2 kept the run's num_samples/sampler beside a search section holding the space's own."""
    old = {**PLAN, "version": 2, "num_samples": 7, "sampler": "random",
           "search": {**SEARCH, "num_samples": 40, "sampler": "tpe", "startup_trials": 3}}
    SweepDir(tmp_path).plan_path.write_text(json.dumps(old))
    plan = load_plan(tmp_path)
    assert (plan.num_samples, plan.sampler, plan.search.startup_trials, plan.version) == (7, "random", 3, VERSION)


def test_a_plan_from_before_versions_loads(tmp_path):
    """What sweeps wrote before the plan was typed: no version, no final / fingerprint / keep_checkpoints /
    earlier dirs; every field read through the plan as before."""
    old = {**PLAN, "cpus_per_trial": 1, "gpus_per_trial": 0, "max_concurrent": None, "max_failures": 2,
           "wandb": "offline", "warm_start": None}
    SweepDir(tmp_path).plan_path.write_text(json.dumps(old))
    plan = load_plan(tmp_path)
    assert plan.version == VERSION and plan.final == {} and plan.prepared_fingerprint is None
    assert plan.keep_checkpoints == "best" and plan.earlier_sweep_dirs == []
    assert {k: getattr(plan, k) for k in old if k != "search"} == {k: v for k, v in old.items() if k != "search"}
    assert {k: getattr(plan.search, k) for k in SEARCH} == SEARCH and plan.search.startup_trials == 10


def test_plans_that_cannot_load(tmp_path):
    with pytest.raises(SweepDirError, match="not a sweep dir"):
        load_plan(tmp_path)
    path = SweepDir(tmp_path).plan_path
    path.write_text(json.dumps({**PLAN, "version": VERSION + 1}))
    with pytest.raises(SweepDirError, match="written by a newer mer-search"):
        load_plan(tmp_path)
    path.write_text(json.dumps({k: v for k, v in PLAN.items() if k != "base"}))
    with pytest.raises(SweepDirError, match="missing base"):
        load_plan(tmp_path)
    path.write_text(json.dumps({k: v for k, v in PLAN.items() if k != "sampler"}))
    with pytest.raises(SweepDirError, match="missing num_samples/sampler"):
        load_plan(tmp_path)
    path.write_text("{not json")
    with pytest.raises(SweepDirError, match="not valid JSON"):
        load_plan(tmp_path)


def test_direction():
    assert lower_is_better("min") and not lower_is_better("max")
    assert typed(objectives=[["dev_loss", "min"]]).lower_is_better
