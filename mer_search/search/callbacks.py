"""Tune callbacks that run in the driver: a progress line, and the ledger of which trials ended."""

from __future__ import annotations

import logging
import time

from ray import tune

from mer_search.core.metrics import better
from mer_search.search import state

log = logging.getLogger("mer_search.search.sweep")


class ProgressLine(tune.Callback):
    """A log line on each finished trial (and every 10 s otherwise): done, running, stopped early, best."""

    def __init__(self, metric: str, mode: str, total: int, max_t: int):
        self.metric, self.mode, self.total, self.max_t = metric, mode, total, max_t
        self.best: float | None = None
        self.last = 0.0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        v = result.get(self.metric)
        if v is not None and better(v, self.best, self.mode):
            self.best = v
        if time.time() - self.last > 10:
            self._print(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._print(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._print(trials)

    def _print(self, trials):
        self.last = time.time()
        ended = [t for t in trials if t.status in ("TERMINATED", "ERROR")]
        stopped = sum(t.status == "TERMINATED" and (t.last_result or {}).get("training_iteration", 0) < self.max_t
                      for t in ended)
        failed = sum(t.status == "ERROR" for t in ended)
        running = sum(t.status == "RUNNING" for t in trials)
        best = f"{self.best:.4f}" if self.best is not None else "-"
        log.info("[sweep] %d/%d done (%d stopped early, %d failed), %d running, best %s %s",
                 len(ended), self.total, stopped, failed, running, self.metric, best)

    # saved in Tune's experiment snapshot, so a resumed sweep's line keeps the best of the trials before it
    def get_state(self) -> dict:
        return {"best": self.best}

    def set_state(self, saved: dict) -> None:
        self.best = saved.get("best")


class TrialLedger(tune.Callback):
    """Which trials ended (completed, stopped by the scheduler, failed), from Tune's own events.

    A stop signal ends a Tune run with its running trials marked TERMINATED in memory, like finished ones,
    but no completion event fires for them, and the experiment snapshot Tune saves just before keeps them
    unfinished (a resume continues them). The ended set is saved in that snapshot (get_state) and restored
    with it, so it stays right across driver restarts. When Tune's run ends, the ledger hands what it saw to
    the running sweep (a restored run uses the unpickled copy, not the one the driver passed)."""

    def __init__(self):
        self.ended: dict[str, str] = {}
        self.started = False

    def on_step_begin(self, iteration, trials, **info):
        # the first step of a run (a new one, or one restored without its callback state: a torn file dropped):
        # a trial restored as ended did end, since no stop has come yet in this run
        if not getattr(self, "started", False):       # a ledger pickled by an older version has no flag
            self.started = True
            self.ended.update({t.trial_id: t.status for t in trials if t.status in ("TERMINATED", "ERROR")})

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended[trial.trial_id] = "TERMINATED"

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended[trial.trial_id] = "ERROR"

    def on_experiment_end(self, trials, **info):
        if state.current() is not None:
            state.current().ledger = {"trials": [t.trial_id for t in trials], "ended": dict(self.ended)}

    def get_state(self) -> dict:
        return {"ended": dict(self.ended)}

    def set_state(self, saved: dict) -> None:
        self.ended = dict(saved.get("ended", {}))
        self.started = False


class TimeBudget(tune.Stopper):
    """Ends the Tune run once the running sweep's --time-budget is spent: no new trials, running ones stop
    with what they reported. The deadline is read from the running sweep, not pickled with the experiment,
    so a resumed sweep gets its own invocation's budget. It waits for a first result: a sweep that ends with
    none leaves its stage nothing to go on with."""

    def __init__(self):
        self.results = 0

    def __call__(self, trial_id: str, result: dict) -> bool:
        self.results += 1
        return False

    def stop_all(self) -> bool:
        return self.results > 0 and spent()


def spent() -> bool:
    cur = state.current()
    return cur is not None and cur.deadline is not None and time.time() >= cur.deadline
