"""Which checkpoints a trial keeps, given what Tune's persisted snapshot says of it (no Ray needed)."""

from mer_search.search.checkpoints import checkpoints_to_keep

NAMES = [f"checkpoint_{i:06d}" for i in (3, 7, 8, 9, 10)]


def c(i):
    return f"checkpoint_{i:06d}"


def test_a_running_trial_keeps_its_last_two_its_best_and_what_the_snapshot_may_resume_from():
    assert checkpoints_to_keep(NAMES, ("RUNNING", c(10)), c(3)) == {c(3), c(9), c(10)}
    # the snapshot lags: its last result names 9, Tune may resume from 8 (registered a step later): 8 on stay
    assert checkpoints_to_keep(NAMES, ("RUNNING", c(9)), c(3)) == {c(3), c(8), c(9), c(10)}
    assert checkpoints_to_keep(NAMES, ("PENDING", c(10)), c(10)) == {c(9), c(10)}


def test_nothing_goes_while_the_snapshot_does_not_say_where_a_trial_resumes():
    assert checkpoints_to_keep(NAMES, None, c(3)) == set(NAMES)               # trial not in it yet
    assert checkpoints_to_keep(NAMES, ("RUNNING", None), c(3)) == set(NAMES)  # restored, no new report yet


def test_an_ended_trial_keeps_its_best_or_nothing_and_an_errored_one_its_latest_too():
    assert checkpoints_to_keep(NAMES, ("TERMINATED", c(10)), c(7)) == {c(7)}
    assert checkpoints_to_keep(NAMES, ("TERMINATED", c(10)), c(7), keep="none") == set()
    assert checkpoints_to_keep(NAMES, ("ERROR", c(9)), c(7)) == {c(7), c(10)}      # a resume retries it
    assert checkpoints_to_keep(NAMES, ("ERROR", c(9)), c(7), keep="none") == {c(10)}
    assert checkpoints_to_keep(NAMES, ("TERMINATED", c(10)), None) == set()          # no metric seen


def test_a_trial_dir_that_cannot_be_listed_is_left_for_the_next_pass(tmp_path, monkeypatch):
    """Seen in CI: a trial dir vanished while the pruner listed it (a sweep ending at its time budget); the
    sweep must not fail for it. The other trials are still pruned; the unlisted one stays pending."""
    from types import SimpleNamespace

    import pyarrow.fs as pafs

    from mer_search.search import checkpoints, ray_internals

    class Flaky(pafs.LocalFileSystem):
        def get_file_info(self, selector):
            if isinstance(selector, pafs.FileSelector) and selector.base_dir.endswith("gone"):
                raise FileNotFoundError(f"Cannot list directory '{selector.base_dir}'")
            return super().get_file_info(selector)

    for trial in ("kept", "gone"):
        for i in range(3):
            (tmp_path / trial / f"checkpoint_00000{i}").mkdir(parents=True)
    storage = SimpleNamespace(fs=Flaky(), join=lambda *p: str(tmp_path.joinpath(*p)))
    monkeypatch.setattr(checkpoints.state, "current", lambda: SimpleNamespace(storage=storage))
    monkeypatch.setattr(ray_internals, "snapshot_positions",
                        lambda fs, path: {"kept": ("TERMINATED", None), "gone": ("TERMINATED", None)})
    pruner = checkpoints.CheckpointPruner("dev_wf1", "max", keep="none")
    pruner.paths = {t: str(tmp_path / t) for t in ("kept", "gone")}
    pruner.pending = {"kept", "gone"}
    assert pruner.prune(fresh=True) == 3
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == []
    assert len(list((tmp_path / "gone").iterdir())) == 3 and pruner.pending == {"gone"}
