"""Cost of the search against its size: our sweep beside bare Ray Tune + OptunaSearch, 24 to 1,000 trials.

Trials train nothing: each reports a synthetic objective of its parameters per epoch (our side also writes
the small checkpoint our trainable writes). Both sides: the same define-by-run space, TPE (multivariate,
grouped; constant liar where ours turns it on), ASHA (max 4 epochs, grace 1, reduction 2), 8 trials at once
on one Ray instance with 8 logical CPUs, reused actors, 8 pending trials allowed. Ours adds everything a
real sweep does (the study in a file, persisted ASHA rungs, checkpoint pruning, the results table, the
status file), with W&B off. Printed per size: wall seconds per trial and the driver process's CPU seconds
per trial (this process: Tune's loop, the searcher, our callbacks), and ours / bare. A third side, bare +
checkpoints, is bare with the one thing a resumable trial must add: the same tiny checkpoint every epoch.

    .venv/bin/python bench/scale.py --sizes 24,100,300,1000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = "8"

import sweep_overhead  # noqa: E402
from sweep_overhead import define_by_run, noop_work, score  # noqa: E402

CONCURRENT, EPOCHS = 8, 4
SPACE = sweep_overhead.SPACE.replace("bench/sweep_overhead.py", "bench/scale.py")    # the same space


def bare_trainable(config):
    from ray import tune

    for epoch in range(1, EPOCHS + 1):
        tune.report({"dev_wf1": score(config["lr"], config["dropout"], epoch)})


def bare_checkpointing_trainable(config):
    """Bare, plus what our trainable adds per epoch: the same tiny checkpoint, reported with the result."""
    from ray import tune

    with tempfile.TemporaryDirectory() as d:
        for epoch in range(1, EPOCHS + 1):
            (Path(d) / "last.pt").write_bytes(b"0" * 1024)
            tune.report({"dev_wf1": score(config["lr"], config["dropout"], epoch)},
                        checkpoint=tune.Checkpoint.from_directory(d))


def run_bare(trials: int, where: Path, trainable=bare_trainable) -> tuple[float, float]:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from mer_search.search.sweep import make_sampler

    search = OptunaSearch(space=define_by_run, metric="dev_wf1", mode="max",
                          sampler=make_sampler("tpe", 0, concurrent=CONCURRENT))
    t0, c0 = time.perf_counter(), time.process_time()
    tune.Tuner(tune.with_resources(trainable, {"cpu": 1}),
               tune_config=tune.TuneConfig(metric="dev_wf1", mode="max", num_samples=trials, reuse_actors=True,
                                           search_alg=ConcurrencyLimiter(search, max_concurrent=CONCURRENT),
                                           scheduler=ASHAScheduler(max_t=EPOCHS, grace_period=1, reduction_factor=2)),
               run_config=tune.RunConfig(storage_path=str(where), verbose=0)).fit()
    return time.perf_counter() - t0, time.process_time() - c0


def run_ours(trials: int, prepared: Path, space: Path, where: Path) -> tuple[float, float]:
    from mer_search.search.sweep import SweepOptions, run_sweep

    t0, c0 = time.perf_counter(), time.process_time()
    table = run_sweep(SweepOptions(space=str(space), prepared=str(prepared), out=where, seed=0, wandb="disabled",
                                   max_concurrent=CONCURRENT, work=noop_work))
    assert table.trial_id.nunique() == trials
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="24,100,300,1000")
    args = p.parse_args()
    import logging

    import ray

    from synthetic import prepared_corpus

    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="scale_"))
    prepared = prepared_corpus(tmp, dialogues=4, text_only=True)
    ray.init(address="local", num_cpus=CONCURRENT, include_dashboard=False, log_to_driver=False)
    rows = []
    for n in map(int, args.sizes.split(",")):
        space = tmp / f"space_{n}.yaml"
        space.write_text(SPACE.format(trials=n, epochs=EPOCHS))
        bare = run_bare(n, tmp / f"bare_{n}")
        ckpt = run_bare(n, tmp / f"bare_ckpt_{n}", bare_checkpointing_trainable)
        ours = run_ours(n, prepared, space, tmp / f"ours_{n}")
        rows.append((n, bare, ckpt, ours))
        print(f"{n:5d} trials: bare {bare[0]:7.1f} s wall {bare[1]:7.1f} s CPU | bare + checkpoints {ckpt[0]:7.1f} s "
              f"wall {ckpt[1]:7.1f} s CPU | ours {ours[0]:7.1f} s wall {ours[1]:7.1f} s CPU", flush=True)
    ray.shutdown()
    print(f"\n{CONCURRENT} trials at once, <= {EPOCHS} epochs each, no training; per trial (+ckpt: bare with "
          f"our per-epoch checkpoint):")
    print(f"{'trials':>6} {'bare s':>8} {'+ckpt s':>8} {'ours s':>8} {'wall x':>7} {'x +ckpt':>8} {'bare CPU':>9} "
          f"{'+ckpt CPU':>9} {'ours CPU':>9} {'CPU x':>6} {'x +ckpt':>8}")
    for n, (bw, bc), (kw, kc), (ow, oc) in rows:
        print(f"{n:6d} {bw / n:8.3f} {kw / n:8.3f} {ow / n:8.3f} {ow / bw:7.2f} {ow / kw:8.2f} {bc / n:9.3f} "
              f"{kc / n:9.3f} {oc / n:9.3f} {oc / bc:6.2f} {oc / kc:8.2f}")
    first = rows[0][3][0] / rows[0][0]
    print("ours per trial against ours at the smallest size: "
          + ", ".join(f"{n}: {ow / n / first:.2f}x" for n, *_, (ow, _) in rows))


if __name__ == "__main__":
    main()
