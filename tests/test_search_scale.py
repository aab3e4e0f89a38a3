"""Search at scale: the study in a journal file by default (sqlite and any SQLAlchemy URL still selectable),
relocatable with the sweep dir and mirrored whole-line; TPE's constant liar on when trials run at once."""

import pickle
from pathlib import Path

import optuna
import pytest

from mer_search.core.dirs import SweepDir
from mer_search.core.plan import SearchSettings, SweepPlan
from mer_search.search import state, sweep
from mer_search.search.storage import Storage

PLAN = dict(space_name="s", space_source="s.yaml", search=SearchSettings(max_epochs=2, num_samples=4),
            scheduler="asha", seed=0, objectives=[["dev_wf1", "max"]], base={"data.prepared": "/p"},
            prepared_sha256="0" * 64, study_name="s-a")


def _plan(sweep_dir: Path, **kw) -> SweepPlan:
    return SweepPlan(**{**PLAN, "sweep_dir": str(sweep_dir), "storage": str(sweep_dir),
                        "study_storage": state.local_study_url(sweep_dir), **kw})


def test_constant_liar_is_on_when_trials_run_at_once(monkeypatch):
    assert sweep.make_sampler("tpe", 0, concurrent=8)._constant_liar is True
    assert sweep.make_sampler("tpe", 0, concurrent=1)._constant_liar is False
    monkeypatch.setattr(sweep.ray, "cluster_resources", lambda: {"CPU": 8.0, "GPU": 1.0})
    plan = _plan(Path("/runs/a"))
    assert sweep.concurrency(plan) == 8
    assert sweep.concurrency(SweepPlan(**{**plan.to_json(), "max_concurrent": 2})) == 2
    assert sweep.concurrency(SweepPlan(**{**plan.to_json(), "gpus_per_trial": 0.25})) == 4
    assert sweep.concurrency(SweepPlan(**{**plan.to_json(), "cpus_per_trial": 16})) == 1
    assert sweep.concurrency(SweepPlan(**{**plan.to_json(), "gpus_per_trial": "auto"})) == 8     # not resolved yet


def test_the_default_study_is_a_journal_that_moves_with_the_sweep_dir(tmp_path):
    old, new = tmp_path / "head1" / "sweep", tmp_path / "head2" / "sweep"
    old.mkdir(parents=True)
    assert state.local_study_url(old) == str(SweepDir(old).study_path)
    state.activate(old, _plan(old))
    storage = state.study_storage(state.local_study_url(old))
    assert isinstance(storage, state.RelocatableJournalStorage)
    study = optuna.create_study(study_name="s-a", storage=storage)
    study.enqueue_trial({"x": 1.0})
    pickled = pickle.dumps(storage)          # as Tune saves the searcher that holds it
    new.parent.mkdir()
    old.rename(new)                          # the sweep dir on another head
    state.activate(new, _plan(old))
    moved = pickle.loads(pickled)
    state.deactivate()
    assert moved.path == str(SweepDir(new).study_path)
    assert len(optuna.load_study(study_name="s-a", storage=moved).trials) == 1
    assert isinstance(state.study_storage("sqlite:///" + str(tmp_path / "x.db")), state.RelocatableRDBStorage)


def test_the_mirror_uploads_whole_journal_lines(tmp_path):
    out, bucket = tmp_path / "sweep", tmp_path / "bucket"
    out.mkdir()
    running = state.activate(out, _plan(out))
    study = optuna.create_study(study_name="s-a", storage=state.study_storage(state.local_study_url(out)))
    study.enqueue_trial({"x": 2.0})
    with open(SweepDir(out).study_path, "ab") as f:
        f.write(b'{"op_code": 4, "worker_id": "half a li')          # a line still being appended
    storage = Storage(f"file://{bucket}")
    storage.check_writable()                 # as a sweep does before it runs: makes the bucket dir
    running.storage = storage
    running.mirror()
    state.deactivate()
    copy = (bucket / SweepDir.STUDY).read_bytes()
    assert copy.endswith(b"\n") and b"half a li" not in copy
    loaded = optuna.load_study(study_name="s-a", storage=state.RelocatableJournalStorage(str(bucket / SweepDir.STUDY)))
    assert len(loaded.trials) == 1


def test_tpe_startup_trials_come_from_the_space_or_the_flag(prepared, tmp_path, monkeypatch):
    from mer_search.search.space import SpaceError, load_space

    monkeypatch.setattr(sweep.ray, "cluster_resources", lambda: {"CPU": 2.0})
    space = tmp_path / "s.yaml"
    space.write_text("search: {num_samples: 40, startup_trials: 7}\nfixed: {model.name: text_mlp}\n"
                     "params:\n  train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")

    def plan_of(**kw):
        return sweep._new_plan(sweep.SweepOptions(space=str(space), prepared=str(prepared), out=tmp_path / "o",
                                                  **kw), tmp_path / "o")

    assert sweep.sampler_for(plan_of())._n_startup_trials == 7
    assert sweep.sampler_for(plan_of(startup_trials=12))._n_startup_trials == 12
    old = plan_of().to_json()
    del old["search"]["startup_trials"]            # a plan written before the setting existed
    assert sweep.sampler_for(SweepPlan.from_json(old))._n_startup_trials == 10
    for bad in ("-1", "many", "true"):
        space.write_text(space.read_text().replace("startup_trials: 7", f"startup_trials: {bad}"))
        with pytest.raises(SpaceError, match="search.startup_trials"):
            load_space(space)
        space.write_text(space.read_text().replace(f"startup_trials: {bad}", "startup_trials: 7"))
