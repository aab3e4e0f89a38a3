"""The sweep plan: typed, versioned, round-tripped through sweep.json; a plan written before versions loads."""

import json

import pytest

from mer_search.plan import VERSION, SweepDirError, SweepPlan, load_plan, lower_is_better

PLAN = dict(space_name="text_mlp", space_source="/s/text_mlp.yaml", sweep_dir="/runs/a", num_samples=4,
            search={"metric": "dev_wf1", "mode": "max", "max_epochs": 6, "grace_period": 1, "reduction_factor": 2},
            sampler="tpe", scheduler="asha", seed=0, objectives=[["dev_wf1", "max"]],
            base={"model.name": "text_mlp", "data.prepared": "/p"}, prepared_sha256="ab" * 32,
            study_storage="sqlite:////runs/a/optuna.db", study_name="text_mlp-a", storage="/runs/a")


def test_round_trip(tmp_path):
    plan = SweepPlan(**PLAN, final={"data.train_fraction": 1.0}, max_concurrent=2)
    plan.save(tmp_path / "sweep.json")
    back = load_plan(tmp_path)
    assert back == plan and back.version == VERSION
    assert (back.metric, back.mode, back.max_epochs, back.prepared) == ("dev_wf1", "max", 6, "/p")
    assert json.loads((tmp_path / "sweep.json").read_text())["version"] == VERSION


def test_a_plan_from_before_versions_loads(tmp_path):
    """What sweeps wrote before the plan was typed: no version, no final / fingerprint / keep_checkpoints /
    earlier dirs; every field read through the plan as before."""
    old = {**PLAN, "cpus_per_trial": 1, "gpus_per_trial": 0, "max_concurrent": None, "max_failures": 2,
           "wandb": "offline", "warm_start": None}
    (tmp_path / "sweep.json").write_text(json.dumps(old))
    plan = load_plan(tmp_path)
    assert plan.version == VERSION and plan.final == {} and plan.prepared_fingerprint is None
    assert plan.keep_checkpoints == "best" and plan.earlier_sweep_dirs == []
    assert {k: getattr(plan, k) for k in old} == old


def test_plans_that_cannot_load(tmp_path):
    with pytest.raises(SweepDirError, match="not a sweep dir"):
        load_plan(tmp_path)
    (tmp_path / "sweep.json").write_text(json.dumps({**PLAN, "version": VERSION + 1}))
    with pytest.raises(SweepDirError, match="written by a newer mer-search"):
        load_plan(tmp_path)
    (tmp_path / "sweep.json").write_text(json.dumps({k: v for k, v in PLAN.items() if k != "base"}))
    with pytest.raises(SweepDirError, match="missing base"):
        load_plan(tmp_path)


def test_direction():
    assert lower_is_better("min") and not lower_is_better("max")
    assert SweepPlan(**{**PLAN, "objectives": [["dev_loss", "min"]]}).lower_is_better
