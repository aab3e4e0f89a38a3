"""Ctrl-C (SIGINT) and SIGTERM as a stop, not as "the sweep is done".

Inside a Ray Tune run, the first signal asks Tune to end the run the way its own Ctrl-C handler does (the
experiment state is saved with the running trials still unfinished, so `--resume` continues them); anywhere
else, and on a second signal, `Stopped` is raised at once. `Stopped` is a BaseException, like
KeyboardInterrupt, so no `except Exception` on the way up swallows it; the CLI turns it into exit 128 + signal
(130 for SIGINT, 143 for SIGTERM). Imports no Ray: the pipeline's other stages use it too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading

log = logging.getLogger(__name__)
_state = {"received": None, "in_tune": False, "installed": False}


class Stopped(BaseException):
    """The command was told to stop by a signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def received() -> int | None:
    """The first stop signal received since the handlers were installed, if any."""
    return _state["received"]


def _handler(signum, frame):
    if _state["received"] is not None:          # a second signal: no more waiting
        raise Stopped(signum)
    _state["received"] = signum
    name = signal.Signals(signum).name
    tune_stop = signal.getsignal(signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else None
    if _state["in_tune"] and callable(tune_stop):
        log.warning("%s: stopping the sweep after saving its state (send it again to stop at once)", name)
        tune_stop(signal.SIGUSR1, frame)       # Ray Tune's own "end this run" handler, installed for SIGUSR1
        return
    raise Stopped(signum)


@contextlib.contextmanager
def stop_on_signals():
    """Install the SIGINT/SIGTERM handlers for the duration of a command (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    old_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"      # ours routes SIGINT to Tune instead
    _state.update(received=None, installed=True)
    for s in old:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _state["installed"] = False
        if old_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = old_env


def reclaim() -> None:
    """Take SIGINT/SIGTERM back after ray.init, which installs its own fatal-signal handler for SIGTERM."""
    if _state["installed"] and threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, _handler)


@contextlib.contextmanager
def tune_running():
    """Around Tuner.fit: a stop signal now ends the Tune run (state saved) instead of raising mid-step."""
    _state["in_tune"] = True
    try:
        yield
    finally:
        _state["in_tune"] = False
