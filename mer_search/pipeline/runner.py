"""Runs a study's steps in order: the one place that decides a skip, logs it, times each step and holds the
output dir's lock.

A step says what it writes, how it knows that is complete, and how to make it. Steps come from a generator,
so a later step may depend on what an earlier one wrote (the stages depend on the prepared data).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from data_prep.atomic import write_json_atomic
from data_prep.locks import DirLock
from mer_search.core.dirs import read_json

log = logging.getLogger("mer_search.pipeline")


@dataclass
class Step:
    name: str                          # as logged: "sweep text", "final training fusion"
    writes: Path                       # what it makes (a file or a folder)
    complete: Callable[[], bool]       # whether `writes` is already whole: then the step is skipped
    run: Callable[[], None]


class Runner:
    def __init__(self, out: Path, timings: Path):
        self.out, self.timings_path = out, timings
        before = read_json(timings)           # what earlier runs of this study measured, kept beside this run's
        self.timings: dict[str, float] = before if isinstance(before, dict) else {}
        self.skipped: list[str] = []

    def run(self, steps: Iterable[Step]) -> None:
        with DirLock(self.out, "pipeline output dir"):       # one pipeline per --out
            for step in steps:
                if step.complete():
                    log.info("[pipeline] %s: done before, skipped", step.name)
                    self.skipped.append(step.name)
                    continue
                log.info("[pipeline] %s ...", step.name)
                t0 = time.time()
                step.run()
                self.timings[step.name] = round(time.time() - t0, 2)
                log.info("[pipeline] %s: done in %.1f s", step.name, self.timings[step.name])
                write_json_atomic(self.timings_path, self.timings)      # seconds per step, as each one ends
