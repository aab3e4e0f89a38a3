"""The Optuna study's storage against the study's size, without Ray: what each suggest and report costs the
sweep driver with the study in memory (bare Ray Tune's default), in sqlite (RDBStorage) or in a journal file.

The driver's pattern: 8 trials in flight; each finished one is told its value and a new one asked, as
OptunaSearch does (define-by-run, TPE multivariate + grouped + constant liar, 4 intermediate values a trial).
Prints milliseconds per trial (ask + reports + tell) in windows of the study's size.

    .venv/bin/python bench/study_storage.py --trials 1000
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import warnings
from pathlib import Path

import optuna

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective(t: optuna.trial.BaseTrial) -> float:
    lr = t.suggest_float("lr", 1e-4, 3e-2, log=True)
    dropout = t.suggest_float("dropout", 0.0, 0.5)
    t.suggest_int("emb_dim", 8, 64, log=True)
    return 1 - abs(math.log10(lr) + 2.5) / 3 - 0.1 * dropout


def storage(kind: str, where: Path):
    if kind == "memory":
        return None
    if kind == "sqlite":
        return optuna.storages.RDBStorage(f"sqlite:///{where / 'optuna.db'}")
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(where / "optuna.journal")))


def run(kind: str, trials: int, window: int) -> list[float]:
    with tempfile.TemporaryDirectory() as d:
        sampler = optuna.samplers.TPESampler(seed=0, multivariate=True, group=True, constant_liar=True)
        study = optuna.create_study(storage=storage(kind, Path(d)), sampler=sampler, direction="maximize")
        running, per_window, t0, done = [], [], time.perf_counter(), 0
        while done < trials:
            while len(running) < 8 and done + len(running) < trials:
                t = study.ask()
                objective(t)
                running.append(t)
            t = running.pop(0)
            for step in range(1, 5):
                t.report(objective(optuna.trial.FixedTrial(t.params)) + 0.01 * step, step)
            study.tell(t, objective(optuna.trial.FixedTrial(t.params)))
            done += 1
            if done % window == 0:
                per_window.append((time.perf_counter() - t0) / window * 1000)
                t0 = time.perf_counter()
        return per_window


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--window", type=int, default=100)
    args = p.parse_args()
    rows = {kind: run(kind, args.trials, args.window) for kind in ("memory", "sqlite", "journal")}
    print(f"ms per trial (ask, 4 reports, tell), 8 in flight, by the study's size (trials {args.window} at a time):")
    print(f"{'trials':>12} " + " ".join(f"{k:>8}" for k in rows))
    for i in range(len(rows["memory"])):
        print(f"{i * args.window + 1:5d}-{(i + 1) * args.window:<6d} " + " ".join(f"{rows[k][i]:8.1f}" for k in rows))


if __name__ == "__main__":
    main()
