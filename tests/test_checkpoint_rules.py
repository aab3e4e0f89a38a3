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
