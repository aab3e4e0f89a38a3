"""`mer-search pipeline`: the reference study end to end, each stage skipped when its output exists.

    prepare -> text sweep -> export -> final train -> features
            -> speech sweep -> export -> final train -> features;  speech floor (speech_stats, not searched)
            -> context sweep on text features   -> export -> final train   (text + context)
            -> context sweep on speech features -> export -> final train   (speech + context)
            -> fusion sweep on text + speech features -> export -> final train (text + speech)
            -> summary.md: the reference project's table, dev (and test) weighted F1 and accuracy,
               with the speech floor and the majority class beneath

Everything lands under one output dir; a stopped pipeline rerun with the same
command resumes: finished stages are skipped, an interrupted sweep is resumed.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mer_search.errors import ConfigError

log = logging.getLogger(__name__)

# trials per sweep, epochs per trial (ASHA's max_t), seeds of each final training
BUDGETS = {"tiny": {"num_samples": 4, "max_epochs": 8, "seeds": 2},
           "small": {"num_samples": 10, "max_epochs": 10, "seeds": 3},
           "medium": {"num_samples": 30, "max_epochs": 20, "seeds": 3},
           "large": {"num_samples": None, "max_epochs": None, "seeds": 5}}   # None: the space's own
# summary rows in the reference project's order: (row name, stage name)
ROWS = (("text", "text"), ("text + context", "text_context"), ("speech", "speech"),
        ("speech + context", "speech_context"), ("text + speech", "fusion"),
        ("speech floor", "speech_floor"))
# the floor every speech row is held against (per-band log-mel mean + std into a linear layer), not searched:
# trained to convergence whatever the budget, so the rows above it are not flattered by an undertrained floor
SPEECH_FLOOR = Path(__file__).resolve().parent / "configs" / "speech_stats.yaml"


@dataclass
class PipelineOptions:
    meld_root: Path
    out: Path
    budget: str = "small"
    workers: int = 1
    text_only: bool = False           # no audio: only the text rows of the table
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    address: str | None = None
    wandb: str = "offline"
    seed: int = 0
    with_test: bool = True            # score test when it is prepared
    text_space: str = "text_any"      # the text stage's space: a name under spaces/ or a file (text_finetune: GPUs)
    prepare_extra: dict = field(default_factory=dict)


@dataclass
class Stage:
    name: str                 # text, speech, text_context, speech_context, fusion
    space: Path
    features: dict            # sweep --features* -> stage whose features feed this one


def space_path(name: str) -> Path:
    """A space file, or the name of a shipped one (./spaces/NAME.yaml wins when it exists)."""
    from mer_search.search.space import find_space

    return find_space(name)


def sweep_epochs(budget_epochs: int | None, space: Path) -> int | None:
    """The budget caps a trial's epochs; a space that needs fewer (fine-tuning: 3) keeps its own."""
    from mer_search.config_io import load_yaml

    space_epochs = (load_yaml(space).get("search") or {}).get("max_epochs")
    return min(filter(None, (budget_epochs, space_epochs)), default=None)


def stages(text_only: bool, text_space: str = "text_any") -> list[Stage]:
    s = [Stage("text", space_path(text_space), {}),
         Stage("text_context", space_path("context_two_stage"), {"features": "text"})]
    if not text_only:
        s += [Stage("speech", space_path("speech_any"), {}),
              Stage("speech_context", space_path("context_two_stage"), {"features": "speech"}),
              Stage("fusion", space_path("fusion"), {"features_text": "text", "features_speech": "speech"})]
    return s


class Pipeline:
    def __init__(self, opts: PipelineOptions):
        if opts.budget not in BUDGETS:
            raise ConfigError(f"--budget {opts.budget!r}: one of {', '.join(BUDGETS)}")
        self.opts, self.out = opts, Path(opts.out)
        self.budget = BUDGETS[opts.budget]
        space_path(opts.text_space)            # a wrong name fails now, not after the prepare step
        self.prepared = self.out / "prepared"
        self.timings: dict[str, float] = {}

    # -- paths ---------------------------------------------------------------------------------------------
    def sweep_dir(self, stage: str) -> Path:
        return self.out / "sweeps" / stage

    def config_path(self, stage: str) -> Path:
        return self.out / "configs" / f"{stage}.yaml"

    def final_dir(self, stage: str) -> Path:
        return self.out / "final" / stage

    def features_dir(self, stage: str) -> Path:
        return self.out / "features" / stage

    # -- stages --------------------------------------------------------------------------------------------
    def _skip(self, what: str, done: bool) -> bool:
        if done:
            log.info("[pipeline] %s: done before, skipped", what)
        else:
            log.info("[pipeline] %s ...", what)
        return done

    def prepare_options(self):
        """What the pipeline prepares: the splits at hand, with frozen MiniLM embeddings (text_pretrained)."""
        from data_prep.embeddings import DEFAULT
        from data_prep.prepare import PrepareOptions

        return PrepareOptions(meld_root=Path(self.opts.meld_root), out=self.prepared, workers=self.opts.workers,
                              text_only=self.opts.text_only, splits=available_splits(self.opts.meld_root),
                              **{"text_embeddings": DEFAULT, **self.opts.prepare_extra})

    def prepare(self, progress=None) -> dict:
        """Prepare the corpus (prepare itself skips finished work, so a rerun only reads); returns its manifest."""
        from data_prep.prepare import prepare

        manifest = self.prepared / "manifest.json"
        self._skip("prepare", manifest.exists() and json.loads(manifest.read_text()).get("complete"))
        t0 = time.time()
        manifest = prepare(self.prepare_options(), progress=progress)
        self.timings["prepare"] = time.time() - t0
        return manifest

    def sweep(self, stage: Stage) -> None:
        from mer_search.search.report import write_report
        from mer_search.search.sweep import SweepOptions, run_sweep

        from mer_search.results import sweep_status

        d = self.sweep_dir(stage.name)
        if not self._skip(f"sweep {stage.name}", sweep_status(d)["finished"]):
            t0 = time.time()
            run_sweep(SweepOptions(space=str(stage.space), prepared=str(self.prepared), out=d,
                                   resume=(d / "sweep.json").exists(), num_samples=self.budget["num_samples"],
                                   max_epochs=sweep_epochs(self.budget["max_epochs"], stage.space),
                                   cpus_per_trial=self.opts.cpus_per_trial,
                                   gpus_per_trial=self.opts.gpus_per_trial, address=self.opts.address,
                                   seed=self.opts.seed, wandb=self.opts.wandb,
                                   feature_dirs={k: str(self.features_dir(v)) for k, v in stage.features.items()}))
            self.timings[f"sweep {stage.name}"] = time.time() - t0
        if not (d / "report" / "index.html").exists():
            write_report(d)

    def export(self, stage: Stage) -> None:
        from mer_search.results import export_config

        path = self.config_path(stage.name)
        if self._skip(f"export {stage.name}", path.exists()):
            return
        cfg = export_config(self.sweep_dir(stage.name))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))

    def speech_floor(self) -> None:
        """The shipped speech_stats config trained like a final model, beside the searched speech rows."""
        path = self.config_path("speech_floor")
        if not path.exists():
            from mer_search.experiment import load_config

            cfg = load_config(SPEECH_FLOOR)
            cfg["data"]["prepared"] = str(self.prepared)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.final(Stage("speech_floor", path, {}))

    def final(self, stage: Stage) -> None:
        from mer_search.experiment import load_config, run_seeds

        d = self.final_dir(stage.name)
        if self._skip(f"final training {stage.name}", (d / "summary.json").exists()):
            return
        t0 = time.time()
        quiet = logging.getLogger("mer_search.experiment")
        level, _ = quiet.level, quiet.setLevel(logging.WARNING)     # no config dump per seed
        cfg = load_config(self.config_path(stage.name))
        try:
            summary = run_seeds(cfg, d, self.budget["seeds"], reporter=_Quiet(),
                                splits=("dev", "test") if self.opts.with_test else ("dev",))
        finally:
            quiet.setLevel(level)
        if self.opts.wandb != "disabled":
            from mer_search.wandb_runs import log_final

            log_final(summary, cfg, d, stage.name, self.opts.wandb)
        self.timings[f"final {stage.name}"] = time.time() - t0

    def features(self, stage: Stage) -> None:
        from mer_search.experiment import extract_features

        d = self.features_dir(stage.name)
        if self._skip(f"features {stage.name}", (d / "manifest.json").exists()):
            return
        extract_features(self.final_dir(stage.name) / "seed_0" / "best.pt", d)

    def run(self, progress=None, on_prepared=None) -> str:
        """Every stage in order; returns the summary table as Markdown (also written to summary.md).
        `progress` makes prepare's progress bar; `on_prepared(manifest)` hears when the data is ready."""
        import ray

        self.out.mkdir(parents=True, exist_ok=True)
        manifest = self.prepare(progress)
        if on_prepared:
            on_prepared(manifest)
        try:
            for stage in stages(self.opts.text_only or not _has_audio(self.prepared), self.opts.text_space):
                self.sweep(stage)
                self.export(stage)
                self.final(stage)
                if stage.name in ("text", "speech"):
                    self.features(stage)
                if stage.name == "speech":
                    self.speech_floor()
        finally:
            ray.shutdown()
        table = self.summary()
        (self.out / "summary.md").write_text(table)
        return table

    def summary(self) -> str:
        """The reference project's table: one row per model family, dev (and test) weighted F1 and accuracy."""
        from mer_search.config_io import load_yaml
        from mer_search.models import model_label

        rows = []
        for label, stage in ROWS:
            path = self.final_dir(stage) / "summary.json"
            if not path.exists():
                continue
            s = json.loads(path.read_text())
            cfg = load_yaml(self.config_path(stage))
            cells = [label, model_label(cfg["model"])]
            for split in ("dev", "test"):
                for metric in ("wf1", "acc"):
                    m = s.get(f"{split}_{metric}")
                    cells.append(f"{m['mean']:.3f} +- {m['std']:.3f}" if m else "-")
            rows.append(cells)
        rows.append(majority_row(self.prepared))
        header = ["model", "architecture", "dev wF1", "dev acc", "test wF1", "test acc"]
        seeds = self.budget["seeds"]
        lines = [f"Budget {self.opts.budget}: {self.budget['num_samples'] or 'the space'} trials per sweep, "
                 f"{self.budget['max_epochs'] or 'the space'} epochs max, final models over {seeds} seeds "
                 f"(mean +- std).", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines) + "\n"


def majority_row(prepared: Path) -> list[str]:
    """Always predicting train's most frequent emotion: dev and test weighted F1 and accuracy."""
    import numpy as np
    import pandas as pd

    from data_prep.reader import emotion_names
    from mer_search.train import metrics_from

    names = emotion_names(prepared)
    label = int(pd.read_parquet(prepared / "train.parquet", columns=["emotion"]).emotion.mode()[0])
    cells = ["majority class", f"always {names[label]}"]
    for split in ("dev", "test"):
        path = prepared / f"{split}.parquet"
        if not path.exists():
            cells += ["-", "-"]
            continue
        y = pd.read_parquet(path, columns=["emotion"]).emotion.to_numpy()
        m = metrics_from(y, np.full_like(y, label), float("nan"), split, len(names))
        cells += [f"{m[f'{split}_wf1']:.3f}", f"{m[f'{split}_acc']:.3f}"]
    return cells


def available_splits(meld_root: str | Path) -> tuple[str, ...]:
    """train and dev, plus test when its CSV is there (MELD's test labels are not always at hand)."""
    from data_prep import meld

    return tuple(s for s in meld.SPLITS if s != "test" or (Path(meld_root) / meld.CSV_NAMES["test"]).exists())


def _has_audio(prepared: Path) -> bool:
    return json.loads((prepared / "manifest.json").read_text())["settings"]["audio"] is not None


class _Quiet:
    def report(self, epoch: int, metrics: dict) -> None:
        pass
