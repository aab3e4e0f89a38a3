"""One way to run independent tasks: inline, in N worker processes, or as Ray tasks.

The same function runs in all three, so `--workers` and `--address` share a code path.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Iterable, Iterator, TypeVar

from data_prep.errors import PrepError

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


def _init_worker() -> None:
    # one decode per process: intra-op threads would only fight the other workers
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def run_tasks(fn: Callable[[T], R], tasks: Iterable[T], workers: int = 1,
              address: str | None = None) -> Iterator[R]:
    """Yield fn(task) for every task, in completion order."""
    tasks = list(tasks)
    if not tasks:
        return
    if address:
        yield from _run_ray(fn, tasks, address, workers)
    elif workers <= 1:
        _init_worker()
        for t in tasks:
            yield fn(t)
    else:
        yield from _run_pool(fn, tasks, workers)


def _run_pool(fn, tasks, workers):
    # fork starts a worker in milliseconds; the parent has run no torch op yet (it only reads
    # CSVs), and each worker pins torch to one thread. Elsewhere, spawn is the safe default.
    ctx = mp.get_context("fork" if sys.platform == "linux" else "spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)
    try:
        pending = {pool.submit(fn, t) for t in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield f.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_ray(fn, tasks, address, workers):
    import ray

    try:
        if not ray.is_initialized():
            if address == "local":
                # "local": a new Ray of our own, even where `ray start` left a cluster file behind
                ray.init(address="local", num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise PrepError(f"cannot reach Ray at --address {address} ({str(e).splitlines()[0][:160]})") from None
    remote = ray.remote(num_cpus=1)(_on_node(_init_then(fn)))
    pending = [remote.remote(t) for t in tasks]
    nodes = set()
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        node, result = ray.get(done[0])
        nodes.add(node)
        yield result
    log.info("%d tasks ran on %d Ray node(s)", len(tasks), len(nodes))


def _on_node(fn):
    def call(task):
        import ray

        return ray.get_runtime_context().get_node_id(), fn(task)

    call.__name__ = fn.__name__
    return call


def _init_then(fn):
    def call(task):
        _init_worker()
        return fn(task)

    call.__name__ = fn.__name__
    return call
