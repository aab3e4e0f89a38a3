"""`Pipeline`: one study's options, stages and answer, and the steps that make them (run by `Runner`)."""

from __future__ import annotations

import logging
import time
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator

from data_prep.reader import SPLITS
from mer_search.core.dirs import FeatureDir, RunDir, SweepDir, read_json
from mer_search.pipeline import summary, text_space, time_budget
from mer_search.pipeline.layout import PipelineDir
from mer_search.pipeline.runner import Runner, Step
from mer_search.pipeline.stages import AUTO, PipelineOptions, Stage, is_finetuning, stages
from mer_search.pipeline.ensemble_step import ensemble_step
from mer_search.pipeline.steps import bundle_step, stage_steps

log = logging.getLogger("mer_search.pipeline")


class Pipeline:
    def __init__(self, opts: PipelineOptions):
        self.opts, self.out = opts, Path(opts.out)
        self.budget = opts.budget_settings()
        self.dir = PipelineDir(self.out)
        self.prepared = self.dir.prepared
        self.why: dict[str, str] = {}          # stage -> why it used its space (the summary says)
        self._text_space: str | None = None
        self._gpus = 0.0
        self.t0 = time.time()

    def run(self, progress=None, on_prepared: Callable[[dict], None] | None = None) -> str:
        """Every step in order; returns the summary table as Markdown (also written to summary.md).
        `progress` makes prepare's progress bar; `on_prepared(manifest)` hears when the data is ready."""
        from mer_search.search.sweep import Sweep

        with Sweep.ray_kept():      # one Ray for every stage's sweep, started by the first that runs
            self.gpus()
            Runner(self.out, self.dir.timings).run(self.steps(progress, on_prepared))
        table = self.summary()
        self.dir.summary.write_text(table)
        return table

    def steps(self, progress=None, on_prepared=None) -> Iterator[Step]:
        """prepare; each stage's steps (stage_steps), but for a stage that would repeat an earlier one; the
        ensemble of what they trained; the bundle of the answer."""
        yield Step("prepare", self.prepared, lambda: False,          # always: it keeps its finished work itself
                   lambda: self.prepare(progress, on_prepared))
        for stage in self.stages():
            if (same := self.same_as(stage)) is not None:
                log.info("[pipeline] %s: not run, it would repeat %s (%s)", stage.name, same.name,
                         self.why[stage.name])
                continue
            yield from stage_steps(self, stage)
        if self.best_row() is not None:
            yield ensemble_step(self)
            yield bundle_step(self)

    def prepare(self, progress=None, on_prepared=None) -> dict:
        """The splits at hand, with frozen MiniLM embeddings (text_pretrained); returns the manifest."""
        from data_prep.embeddings import DEFAULT
        from data_prep.prepare import PrepareOptions, prepare

        o = self.opts
        manifest = prepare(PrepareOptions(meld_root=Path(o.meld_root), out=self.prepared, workers=o.workers,
                                          text_only=o.text_only, dataset=o.dataset, text_embeddings=DEFAULT,
                                          splits=available_splits(o.meld_root, o.dataset)), progress=progress)
        self.manifest = manifest
        if not o.text_only and not self.has_audio:
            log.info("[pipeline] dataset %s has no audio: the speech, fusion and floor stages are skipped",
                     manifest.get("dataset", {}).get("name", o.dataset))
        if on_prepared:
            on_prepared(manifest)
        return manifest

    @cached_property
    def manifest(self) -> dict:
        """The prepared dir's manifest, read once (prepare() replaces it with the one it writes)."""
        from data_prep.reader import load_manifest

        return load_manifest(self.prepared)

    @property
    def has_audio(self) -> bool:
        return self.manifest["settings"]["audio"] is not None

    def text_space(self) -> str:
        """The text stage's space: as given; with auto, the one its sweep already started with, else chosen."""
        if self._text_space is None:
            d = SweepDir(self.dir.sweep("text"))
            if self.opts.text_space != AUTO:
                self._text_space, self.why["text"] = self.opts.text_space, "--text-space"
            elif d.holds_sweep():
                self._text_space = d.load_plan().space_source
                self.why["text"] = "auto, chosen when its sweep started"
            else:
                self._text_space, self.why["text"] = text_space.auto_text_space(
                    self.manifest["splits"]["train"]["rows"], self.opts, self.budget, self.gpus())
            log.info("[pipeline] text space: %s (%s)", Path(self._text_space).stem, self.why["text"])
        return self._text_space

    def gpus(self) -> float:
        """The GPUs the sweeps' trials get (looked for once; the summary says why)."""
        if "gpus" not in self.why:
            self._gpus, self.why["gpus"] = text_space.trial_gpus(self.opts)
            log.info("[pipeline] GPUs: %s", self.why["gpus"])
        return self._gpus

    def stages(self) -> list[Stage]:
        audio = self.manifest["settings"]["audio"] or {}
        return stages(self.opts.text_only or not self.has_audio, self.text_space(), self.finetune_start(),
                      functionals=audio.get("functionals", "none") != "none")

    def finetune_start(self) -> bool:
        """With `--text-space auto` and text_any chosen (no GPU, no time for a fine-tuning search): whether its
        start point is trained too (text_space.finetune_start); kept once it has started."""
        if "text_finetuned" not in self.why:
            import os

            if self.opts.text_space != AUTO or Path(self.text_space()).stem != "text_any":
                self._start, self.why["text_finetuned"] = False, "a fine-tuning space is searched, or --text-space"
            elif self.dir.config("text_finetuned").exists():
                self._start, self.why["text_finetuned"] = True, "auto, chosen when it first ran"
            else:
                splits = self.manifest["splits"]
                self._start, self.why["text_finetuned"] = text_space.finetune_start(
                    splits["train"]["rows"], sum(v["rows"] for v in splits.values()), os.cpu_count() or 1,
                    self.opts.budget)
            if self._start:
                log.info("[pipeline] fine-tuning start point: %s", self.why["text_finetuned"])
        return self._start

    def sweep_budget_s(self, stage: Stage) -> float | None:
        """This stage's sweep's share of what is left of --time-budget (time_budget.sweep_share_s)."""
        if self.opts.time_budget_s is None:
            return None
        todo = {s.name: is_finetuning(s.space) for s in self.stages()
                if s.space is not None and not RunDir(self.dir.final(s.name)).finished()}
        return time_budget.sweep_share_s(self.opts.time_budget_s - (time.time() - self.t0), stage.name, todo)

    def same_as(self, stage: Stage) -> Stage | None:
        """The earlier stage this one would repeat: the same space (or config) on the same inputs (the fusion of
        each modality's better row, when neither context row beat its plain row on dev, is the plain fusion).
        None while the stages it reads have not finished."""
        every = self.stages()
        earlier = every[:every.index(stage)]
        try:
            mine = self.feature_dirs(stage)
            for other in earlier:
                if (other.space, other.config) == (stage.space, stage.config) and \
                        set(other.consumes) == set(stage.consumes) and self.feature_dirs(other) == mine:
                    self.why[stage.name] = (f"same inputs and space as {other.row}: "
                                            + ", ".join(f"{k} from {Path(v).name}" for k, v in sorted(mine.items())))
                    return other
        except (FileNotFoundError, KeyError, TypeError, ValueError):      # an input not extracted yet
            return None
        return None

    def feature_dirs(self, stage: Stage) -> dict[str, str]:
        """Each input's feature dir: of the stages it may read, the one whose features scored higher on dev."""
        def better(names: tuple[str, ...]) -> str:
            return max(names, key=lambda n: FeatureDir(self.dir.features(n)).dev_score(self.metric))

        return {key: str(self.dir.features(better(names))) for key, names in stage.consumes.items()}

    @property
    def metric(self) -> str:
        """What the rows are chosen by: dev weighted F1, or the dataset's micro F1 without a class."""
        from mer_search.core.metrics import dataset_metric

        return dataset_metric(self.manifest)

    def chosen_seed(self, stage: str) -> RunDir:
        """A stage's final seed best on dev: the model its features (and the bundle) come from."""
        final = RunDir(self.dir.final(stage))
        best = max(read_json(final.summary)["per_seed"], key=lambda m: m[self.metric])
        return final.seed(best["seed"])

    def best_row(self) -> tuple[Stage, dict] | None:
        """The stage whose final models scored best on dev (mean over seeds; a tie goes to the earlier row)."""
        done = [(stage, s) for stage in self.stages()
                if isinstance(s := read_json(RunDir(self.dir.final(stage.name)).summary), dict) and self.metric in s]
        return max(done, key=lambda d: d[1][self.metric]["mean"], default=None)

    def summary(self) -> str:
        return summary.table(self)

    def space_lines(self) -> list[str]:
        return summary.space_lines(self)


def available_splits(meld_root: str | Path, dataset: str = "meld") -> tuple[str, ...]:
    """train and dev, plus test when the dataset declares it and its CSV is there (MELD's test labels are not
    always at hand)."""
    from data_prep.schema import load_schema

    schema = load_schema(dataset)
    return tuple(s for s in SPLITS if s in schema.files
                 and (s != "test" or schema.csv_path(Path(meld_root), s).exists()))
