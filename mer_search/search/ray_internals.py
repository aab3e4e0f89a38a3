"""The one place that touches Ray Tune's private attributes, and the check that they still look as we use them.

Resuming a sweep after its driver died needs two things Ray keeps private:
ASHA's rung records (`AsyncHyperBandScheduler._brackets[i]._rungs`, `_trial_info`,
`_num_stopped`), which Tuner.restore would otherwise rebuild empty, and the set
of trials OptunaSearch has finished (`_completed_trials`). Pruning checkpoints safely
needs what Tune's last persisted experiment snapshot (experiment_state-*.json, a
private format) says of each trial: its status and the checkpoint it would resume from. Ray may reshape these
in any release; `check()` fails with a message saying what changed, and
tests/test_ray_internals.py runs it, so an upgrade breaks one test, loudly,
instead of a resumed sweep, quietly. pyproject.toml pins the Ray minor version
these were checked against (README: "Upgrading Ray").
"""

from __future__ import annotations

from typing import Any

from mer_search.core.errors import UserError

TESTED_RAY = "2.60"


class RayInternalsChanged(UserError, RuntimeError):
    """Ray's private state no longer has the shape mer-search reads and writes."""


def asha_records(asha) -> dict[str, Any]:
    """ASHA's decisions as plain data: each bracket's rungs, the bracket of each trial, the stop count."""
    return {"brackets": [[[milestone, recorded] for milestone, recorded in b._rungs] for b in asha._brackets],
            "trial_bracket": {tid: asha._brackets.index(b) for tid, b in asha._trial_info.items()},
            "num_stopped": asha._num_stopped}


def asha_signature(asha) -> tuple[int, int, int]:
    """Changes whenever asha_records would (records are only added; trials come and go): cheap to compare."""
    return (sum(len(recorded) for b in asha._brackets for _, recorded in b._rungs), len(asha._trial_info),
            asha._num_stopped)


def restore_asha_records(asha, saved: dict[str, Any]) -> dict[str, int]:
    """Put saved rung records back into a freshly unpickled ASHA; returns trial id -> bracket index."""
    for bracket, rungs in zip(asha._brackets, saved["brackets"]):
        by_milestone = {float(m): rec for m, rec in rungs}
        bracket._rungs = [(m, {**rec, **by_milestone.get(float(m), {})}) for m, rec in bracket._rungs]
    asha._num_stopped = saved["num_stopped"]
    return dict(saved["trial_bracket"])


def put_trial_in_bracket(asha, trial_id: str, index: int) -> None:
    asha._trial_info[trial_id] = asha._brackets[index]


def optuna_trial(optuna_search, trial_id: str):
    """The Optuna trial OptunaSearch asked for a Ray trial (None if it has none)."""
    return optuna_search._ot_trials.get(trial_id)


def mark_completed(optuna_search, trial_id: str) -> None:
    """Tell OptunaSearch a trial is done without reporting to the study (it finished there already)."""
    optuna_search._completed_trials.add(trial_id)


def snapshot_positions(fs, experiment_path: str) -> dict[str, tuple[str, str | None]]:
    """trial id -> (status, checkpoint dir name) in the newest experiment snapshot in the storage; {} when
    there is none yet or it is being written (a half-written file fails to parse: try again later)."""
    import json
    import posixpath

    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(experiment_path, allow_not_found=True))
    names = sorted(i.base_name for i in infos if i.base_name.startswith("experiment_state-")
                   and i.base_name.endswith(".json"))
    if not names:
        return {}
    try:
        with fs.open_input_stream(posixpath.join(experiment_path, names[-1])) as f:
            data = json.loads(f.read())
        out = {}
        for trial_json, meta_json in data["trial_data"]:
            trial, meta = json.loads(trial_json), json.loads(meta_json)
            out[trial["trial_id"]] = (trial["status"], (meta.get("last_result") or {}).get("checkpoint_dir_name"))
        return out
    except (ValueError, KeyError, TypeError, OSError):
        return {}


def drop_torn_callback_state(fs, experiment_path: str) -> list[str]:
    """Remove Tune's saved callback states (callback-states-*.pkl) that a driver killed while Tune copied them
    to the storage left torn (Tune's upload is a plain copy): Tune would fail to read one and start the whole
    experiment again. Without the file Tune restores no callback state; the callbacks rebuild what they need
    (tests/test_sweep_resume.py). A whole pickle ends with its STOP opcode, a torn one (or an empty one) not."""
    import posixpath

    import pyarrow.fs as pafs

    dropped = []
    for info in fs.get_file_info(pafs.FileSelector(experiment_path, allow_not_found=True)):
        if not (info.base_name.startswith("callback-states-") and info.base_name.endswith(".pkl")):
            continue
        path = posixpath.join(experiment_path, info.base_name)
        with fs.open_input_file(path) as f:
            whole = info.size > 0 and f.read_at(1, info.size - 1) == b"."
        if not whole:
            fs.delete_file(path)
            dropped.append(info.base_name)
    return dropped


def check() -> None:
    """Raise RayInternalsChanged unless the private attributes above exist with the shapes used."""
    import ray
    from ray.tune.schedulers import AsyncHyperBandScheduler
    from ray.tune.search.optuna import OptunaSearch

    problems = []
    asha = AsyncHyperBandScheduler(time_attr="training_iteration", max_t=9, grace_period=1, reduction_factor=3)
    brackets = getattr(asha, "_brackets", None)
    if not isinstance(brackets, list) or not brackets:
        problems.append("AsyncHyperBandScheduler._brackets is no longer a non-empty list")
    else:
        rungs = getattr(brackets[0], "_rungs", None)
        if not (isinstance(rungs, list) and rungs and all(isinstance(r, tuple) and len(r) == 2
                                                         and isinstance(r[1], dict) for r in rungs)):
            problems.append("a bracket's _rungs is no longer a list of (milestone, {trial id: value}) pairs")
    if not isinstance(getattr(asha, "_trial_info", None), dict):
        problems.append("AsyncHyperBandScheduler._trial_info is no longer a dict of trial id -> bracket")
    if not isinstance(getattr(asha, "_num_stopped", None), int):
        problems.append("AsyncHyperBandScheduler._num_stopped is no longer an int")
    search = OptunaSearch(space=lambda trial: None, metric="m", mode="max")
    if not isinstance(getattr(search, "_completed_trials", None), set):
        problems.append("OptunaSearch._completed_trials is no longer a set of trial ids")
    if not isinstance(getattr(search, "_ot_trials", None), dict):
        problems.append("OptunaSearch._ot_trials is no longer a dict of Ray trial id -> Optuna trial")
    if problems:
        raise RayInternalsChanged(
            f"Ray {ray.__version__} changed private state that resuming a sweep relies on (checked against Ray "
            f"{TESTED_RAY}): " + "; ".join(problems) + ". Adapt mer_search/search/ray_internals.py "
            "(README: Upgrading Ray), or install the pinned Ray.")
