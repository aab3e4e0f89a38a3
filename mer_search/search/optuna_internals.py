"""The one place that relies on Optuna's unpublished behaviour, and the check that it still holds.

A study's storage is pickled inside Tune's saved searcher; resumed on another head, a sqlite study in the old
sweep dir must open the file in the new one. `RDBStorage` pickles its URL under the key "url" of its state
(`__getstate__`), and reconnects from it on `__setstate__`: `moved_rdb_state` rewrites that key. pyproject.toml
pins the Optuna minor version this was checked against; tests/test_optuna_internals.py runs `check()`, so an
upgrade that changes it breaks one test instead of a resumed sweep.
"""

from __future__ import annotations

from typing import Callable

from mer_search.core.errors import UserError

TESTED_OPTUNA = "5.0"


class OptunaInternalsChanged(UserError, RuntimeError):
    """Optuna's pickled RDB storage no longer has the shape mer-search rewrites."""


def moved_rdb_state(state: dict, move: Callable[[str], str]) -> dict:
    """An RDBStorage's pickled state with its URL moved (to the sweep dir on this head)."""
    if "url" not in state:
        raise OptunaInternalsChanged(f"optuna's RDBStorage pickles no 'url' (keys: {', '.join(sorted(state))}); "
                                     f"checked against Optuna {TESTED_OPTUNA}: see README, Upgrading")
    return {**state, "url": move(state["url"])}


def check(tmp_dir: str) -> None:
    """Raise OptunaInternalsChanged unless an RDBStorage still pickles (and reopens from) its URL."""
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_dir}/check.db")
    state = storage.__getstate__()
    moved_rdb_state(state, lambda url: url)
    if state["url"] != f"sqlite:///{tmp_dir}/check.db":
        raise OptunaInternalsChanged(f"optuna's RDBStorage pickles its URL as {state['url']!r}, not as given; "
                                     f"checked against Optuna {TESTED_OPTUNA}")
