"""`mer-search pipeline`: the reference study end to end, each stage skipped when its output exists.

    prepare -> text sweep -> export -> final train -> features
            -> context sweep on text features   -> export -> final train   (text + context)
            -> speech sweep -> export -> final train -> features
            -> context sweep on speech features -> export -> final train   (speech + context)
            -> fusion sweep on text + speech features -> export -> final train (text + speech)
            -> speech floor (speech_stats, not searched) -> final train
            -> summary.md: the reference project's table, dev (and test) weighted F1 and accuracy,
               with the speech floor and the majority class beneath

`stages()` is the one list that says what each stage consumes and produces, and its summary row.

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

from data_prep.atomic import write_atomic
from mer_search.dirs import RunDir, SweepDir, read_json
from mer_search.errors import ConfigError

log = logging.getLogger(__name__)

# trials per sweep, epochs per trial (ASHA's max_t), top trials refitted at full fidelity before export,
# seeds of each final training
BUDGETS = {"tiny": {"num_samples": 4, "max_epochs": 8, "refit": 1, "seeds": 2},
           "small": {"num_samples": 10, "max_epochs": 10, "refit": 2, "seeds": 3},
           "medium": {"num_samples": 30, "max_epochs": 20, "refit": 3, "seeds": 3},
           "large": {"num_samples": None, "max_epochs": None, "refit": 3, "seeds": 5}}   # None: the space's own
AUTO = "auto"
# fine-tuning MiniLM with the dialogue in its input (window 3, 128 tokens) trains ~20 utterances a second per
# CPU core (41-44/s on 2 cores: bench/RESULTS.md, "Fine-tuned MiniLM"); what `auto` expects a CPU text stage
# to cost
FINETUNE_UTT_PER_CORE_S = 20.0
SWEEP_SHARE = 0.5      # of a stage's share of --time-budget, what its sweep may spend (the rest: refit, seeds)
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
    dataset: str = "meld"             # a dataset schema: shipped name or file (`mer-search datasets`)
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    address: str | None = None
    wandb: str = "offline"
    seed: int = 0
    with_test: bool = True            # score test when it is prepared
    text_space: str = AUTO            # the text stage's space: a name under spaces/ or a file, or auto (text_finetune
                                      # where trials get GPUs or the time budget covers it on CPUs, else text_any)
    time_budget_s: float | None = None    # the whole pipeline's; each stage's sweep stops at its share
    refit: int | None = None          # top trials refitted before export (None: the budget's)
    prepare_extra: dict = field(default_factory=dict)


@dataclass
class Stage:
    name: str                 # text, text_context, speech, speech_context, fusion, speech_floor
    row: str                  # its row in the summary table (rows in the order of the stage list)
    space: Path | None = None             # searched in this space; None: `config` trained as it is
    config: Path | None = None
    consumes: dict = field(default_factory=dict)   # sweep --features* option -> the stage whose features it reads
    produces_features: bool = False       # its final model's features feed later stages


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
    """Every stage in the order it runs, which is the reference project's table order, then the answer that
    combines them: text + speech + context."""
    s = [Stage("text", "text", space_path(text_space), produces_features=True),
         Stage("text_context", "text + context", space_path("context_two_stage"), consumes={"features": "text"},
               produces_features=not text_only)]
    if not text_only:
        s += [Stage("speech", "speech", space_path("speech_any"), produces_features=True),
              Stage("speech_context", "speech + context", space_path("context_two_stage"),
                    consumes={"features": "speech"}, produces_features=True),
              Stage("fusion", "text + speech", space_path("fusion"),
                    consumes={"features_text": "text", "features_speech": "speech"}),
              # each modality's better row on dev, with or without context (a fusion starts from the better one)
              Stage("fusion_context", "text + speech + context", space_path("fusion"),
                    consumes={"features_text": "text|text_context", "features_speech": "speech|speech_context"}),
              Stage("speech_floor", "speech floor", config=SPEECH_FLOOR)]
    return s


def visible_gpus(address: str | None) -> float:
    """GPUs the sweeps' trials can get (asked for with --gpus-per-trial): the cluster's with --address (joining
    Ray, kept for the sweeps), else this machine's."""
    if address:
        from mer_search.search.sweep import Sweep

        return Sweep.cluster_gpus(address)
    import torch

    return float(torch.cuda.device_count())


def asha_epochs_per_trial(grace: float, reduction_factor: float, max_epochs: float) -> float:
    """The epochs ASHA lets a trial run on average: all reach the first rung, 1/rf of them the next ..."""
    milestones, m = [], float(grace)
    while m < max_epochs:
        milestones.append(m)
        m *= reduction_factor
    cost, prev, reached = 0.0, 0.0, 1.0
    for m in [*milestones, float(max_epochs)]:
        cost += reached * (m - prev)
        prev, reached = m, reached / reduction_factor
    return cost


def finetune_estimate_s(n_train: int, cpus: int, budget: dict, space: Path) -> float:
    """What a text_finetune stage would take on `cpus` CPU cores: its sweep (ASHA's average epochs a trial, on
    the space's share of train), the refits and the final seeds (the space's epochs each, all of train)."""
    from mer_search.config_io import load_yaml

    raw = load_yaml(space)
    search = raw.get("search") or {}
    epochs = int(search.get("max_epochs", 3))
    trials = budget["num_samples"] or int(search.get("num_samples", 10))
    share = float((raw.get("fixed") or {}).get("data.train_fraction", 1.0))
    per_trial = share * asha_epochs_per_trial(search.get("grace_period", 1), search.get("reduction_factor", 2), epochs)
    epoch_s = n_train / (FINETUNE_UTT_PER_CORE_S * max(1, cpus))
    return epoch_s * (per_trial * trials + (budget["refit"] + budget["seeds"]) * epochs)


def choose_text_space(gpus: float, time_budget_s: float | None, estimate_s: float,
                      mpnet: bool = False) -> tuple[str, str]:
    """`--text-space auto`: fine-tuning where the hardware affords it (with mpnet as a choice where trials get
    GPUs and it is installed), the minutes-on-a-CPU space otherwise."""
    from mer_search.train import clock

    if gpus > 0 and mpnet:
        return "text_finetune_gpu", f"auto: trials get GPUs ({gpus:g} visible, --gpus-per-trial); MiniLM or mpnet"
    if gpus > 0:
        return "text_finetune", (f"auto: trials get GPUs ({gpus:g} visible, --gpus-per-trial); MiniLM only: "
                                 f"`./install.sh mpnet` adds all-mpnet-base-v2 to the search (text_finetune_gpu)")
    if time_budget_s is not None and time_budget_s >= 1.5 * estimate_s:
        return "text_finetune", (f"auto: no GPU, but --time-budget {clock(time_budget_s)} covers fine-tuning on "
                                 f"these CPUs (~{clock(estimate_s)} estimated for the text stage)")
    return "text_any", (f"auto: no GPU, and fine-tuning would take ~{clock(estimate_s)} on these CPUs (give "
                        f"--time-budget of at least {clock(1.5 * estimate_s)}, or --text-space text_finetune)")


def mpnet_installed() -> bool:
    """Whether all-mpnet-base-v2 is assembled here (on a cluster every node needs it: ./install.sh mpnet)."""
    from mer_search.encoder_cache import EncoderInstallError, installed_path

    try:
        installed_path("all-mpnet-base-v2")
        return True
    except EncoderInstallError:
        return False


def parse_duration(text: str) -> float:
    """'2h', '90m', '1h30m', '45s' or plain seconds -> seconds."""
    import re

    t = str(text).strip().lower()
    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?", t)
    if not t or not m or not any(m.groups()):
        raise ConfigError(f"--time-budget {text!r}: give a duration like 2h, 90m, 1h30m or 600s")
    h, mins, secs = (float(g) if g else 0.0 for g in m.groups())
    total = h * 3600 + mins * 60 + secs
    if total <= 0:
        raise ConfigError(f"--time-budget {text!r}: must be longer than zero")
    return total


class Pipeline:
    def __init__(self, opts: PipelineOptions):
        if opts.budget not in BUDGETS:
            raise ConfigError(f"--budget {opts.budget!r}: one of {', '.join(BUDGETS)}")
        self.opts, self.out = opts, Path(opts.out)
        self.budget = dict(BUDGETS[opts.budget])
        if opts.refit is not None:
            self.budget["refit"] = opts.refit
        if opts.text_space != AUTO:
            space_path(opts.text_space)            # a wrong name fails now, not after the prepare step
        self.prepared = self.out / "prepared"
        self.timings: dict[str, float] = {}
        self.why: dict[str, str] = {}          # stage -> why it used its space (the summary says)
        self._text_space: str | None = None
        self.t0 = time.time()

    def text_space(self) -> str:
        """The text stage's space: as given; with auto, the one its sweep already started with, else chosen."""
        if self._text_space is None:
            d = SweepDir(self.sweep_dir("text"))
            if self.opts.text_space != AUTO:
                self._text_space, self.why["text"] = self.opts.text_space, "--text-space"
            elif d.holds_sweep():
                self._text_space = d.load_plan().space_source
                self.why["text"] = "auto, chosen when its sweep started"
            else:
                import os

                import pandas as pd

                n_train = len(pd.read_parquet(self.prepared / "train.parquet", columns=["emotion"]))
                estimate = finetune_estimate_s(n_train, os.cpu_count() or 1, self.budget, space_path("text_finetune"))
                self._text_space, self.why["text"] = choose_text_space(
                    visible_gpus(self.opts.address) if self.opts.gpus_per_trial > 0 else 0.0,
                    self.opts.time_budget_s, estimate, mpnet_installed())
            log.info("[pipeline] text space: %s (%s)", Path(self._text_space).stem, self.why["text"])
        return self._text_space

    def stages(self) -> list[Stage]:
        return stages(self.opts.text_only or not _has_audio(self.prepared), self.text_space())

    def sweep_budget_s(self, stage: Stage) -> float | None:
        """This stage's sweep's share of what is left of --time-budget: the searched stages still to run split
        it (a fine-tuning stage counts four), and a sweep may spend half its stage's share."""
        if self.opts.time_budget_s is None:
            return None
        left = self.opts.time_budget_s - (time.time() - self.t0)
        todo = [s for s in self.stages() if s.space is not None and not RunDir(self.final_dir(s.name)).finished()]
        weight = {s.name: 4.0 if "finetune" in Path(s.space).stem else 1.0 for s in todo}
        share = left * weight.get(stage.name, 1.0) / max(sum(weight.values()), 1.0) * SWEEP_SHARE
        return max(share, 60.0)      # a spent budget still lets each sweep run its first trial a while

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
                              text_only=self.opts.text_only, dataset=self.opts.dataset,
                              splits=available_splits(self.opts.meld_root, self.opts.dataset),
                              **{"text_embeddings": DEFAULT, **self.opts.prepare_extra})

    def prepare(self, progress=None) -> dict:
        """Prepare the corpus (prepare itself skips finished work, so a rerun only reads); returns its manifest."""
        from data_prep.prepare import prepare

        manifest = read_json(self.prepared / "manifest.json")
        self._skip("prepare", isinstance(manifest, dict) and manifest.get("complete"))
        t0 = time.time()
        manifest = prepare(self.prepare_options(), progress=progress)
        self.timings["prepare"] = time.time() - t0
        if not self.opts.text_only and not _has_audio(self.prepared):
            log.info("[pipeline] dataset %s has no audio: the speech, fusion and floor stages are skipped",
                     manifest.get("dataset", {}).get("name", self.opts.dataset))
        return manifest

    def sweep(self, stage: Stage) -> None:
        from mer_search.search.report import write_report
        from mer_search.search.sweep import SweepOptions, run_sweep

        d = SweepDir(self.sweep_dir(stage.name))
        if not self._skip(f"sweep {stage.name}", d.status()["finished"]):
            t0 = time.time()
            run_sweep(SweepOptions(space=str(stage.space), prepared=str(self.prepared), out=d.path,
                                   resume=d.holds_sweep(), num_samples=self.budget["num_samples"],
                                   max_epochs=sweep_epochs(self.budget["max_epochs"], stage.space),
                                   cpus_per_trial=self.opts.cpus_per_trial,
                                   gpus_per_trial=self.opts.gpus_per_trial, address=self.opts.address,
                                   seed=self.opts.seed, wandb=self.opts.wandb,
                                   feature_dirs=self.feature_dirs(stage),
                                   time_budget_s=self.sweep_budget_s(stage)))
            self.timings[f"sweep {stage.name}"] = time.time() - t0
        if not (d.report_dir / "index.html").exists():
            write_report(d.path)

    def export(self, stage: Stage) -> None:
        """The best trial's config; with refit (the budget's), the best on dev of the top K trained again at
        full fidelity."""
        from mer_search.export import export_config
        from mer_search.refit import refit_config

        path = self.config_path(stage.name)
        if self._skip(f"export {stage.name}", _readable_config(path)):
            return
        k = self.budget["refit"]
        if k:
            t0 = time.time()
            quiet = logging.getLogger("mer_search.experiment")
            level, _ = quiet.level, quiet.setLevel(logging.WARNING)     # no config dump per refit
            try:
                cfg = refit_config(self.sweep_dir(stage.name), k, seed=self.opts.seed, reporter=_Quiet())
            finally:
                quiet.setLevel(level)
            self.timings[f"refit {stage.name}"] = time.time() - t0
        else:
            cfg = export_config(self.sweep_dir(stage.name))
        _write_config(path, cfg)

    def fixed_config(self, stage: Stage) -> None:
        """A stage that is not searched (the speech floor): its shipped config, on this pipeline's data."""
        path = self.config_path(stage.name)
        if not _readable_config(path):
            from mer_search.config import load_config

            cfg = load_config(stage.config)
            cfg["data"]["prepared"] = str(self.prepared)
            _write_config(path, cfg)

    def final(self, stage: Stage) -> None:
        from mer_search.config import load_config
        from mer_search.experiment import run_seeds

        d = self.final_dir(stage.name)
        if self._skip(f"final training {stage.name}", RunDir(d).finished()):
            return
        t0 = time.time()
        quiet = logging.getLogger("mer_search.experiment")
        level, _ = quiet.level, quiet.setLevel(logging.WARNING)     # no config dump per seed
        cfg = load_config(self.config_path(stage.name))
        self._seed_from_refit(stage, cfg, RunDir(d))
        try:
            summary = run_seeds(cfg, d, self.budget["seeds"], reporter=_Quiet(), reuse=True,
                                splits=("dev", "test") if self.opts.with_test else ("dev",))
        finally:
            quiet.setLevel(level)
        if self.opts.wandb != "disabled":
            from mer_search.wandb_runs import log_final

            log_final(summary, cfg, d, stage.name, self.opts.wandb)
        self.timings[f"final {stage.name}"] = time.time() - t0

    def _seed_from_refit(self, stage: Stage, cfg: dict, final: RunDir) -> None:
        """The refit that chose the exported config trained it on all of train with this seed already: where
        its config is the final one (dev peaked at its last epoch), it is the final training's first seed
        (checked config for config by run(reuse=True), which trains it again otherwise)."""
        import shutil

        from mer_search.config import first_seed

        refit = (cfg.get("source") or {}).get("refit")
        if not refit or refit.get("seed") != first_seed(cfg) or final.seed(refit["seed"]).path.exists():
            return
        chosen = SweepDir(self.sweep_dir(stage.name)).refit_run(cfg["source"]["trial_id"])
        if chosen.metrics.exists() and chosen.best.exists():
            shutil.copytree(chosen.path, final.seed(refit["seed"]).path)

    def features(self, stage: Stage) -> None:
        """Later stages read the features of this stage's final seed that scored best on dev."""
        from mer_search.dirs import FeatureDir
        from mer_search.features import extract_features

        d = self.features_dir(stage.name)
        if self._skip(f"features {stage.name}", FeatureDir(d).finished()):
            return
        before = read_json(FeatureDir(d).manifest)      # written by an older version: from the same model again
        source = before["checkpoint"] if isinstance(before, dict) and "checkpoint" in before \
            else self.chosen_seed(stage.name).best      # (later stages were trained on its features)
        extract_features(source, d)

    def chosen_seed(self, stage: str) -> RunDir:
        """A stage's final seed best on dev: the model its features (and the bundle) come from."""
        final = RunDir(self.final_dir(stage))
        metric = self.metric
        best = max(read_json(final.summary)["per_seed"], key=lambda m: m[metric])
        return final.seed(best["seed"])

    def feature_dirs(self, stage: Stage) -> dict[str, str]:
        """Each input's feature dir; `a|b`: of stages a and b, the one whose features scored higher on dev."""
        from mer_search.dirs import FeatureDir

        metric = self.metric

        def better(names: str) -> str:
            return max(names.split("|"), key=lambda n: FeatureDir(self.features_dir(n)).dev_score(metric))

        return {key: str(self.features_dir(better(names))) for key, names in stage.consumes.items()}

    def run(self, progress=None, on_prepared=None) -> str:
        """Every stage in order; returns the summary table as Markdown (also written to summary.md).
        `progress` makes prepare's progress bar; `on_prepared(manifest)` hears when the data is ready."""
        from data_prep.locks import DirLock

        with DirLock(self.out, "pipeline output dir"):       # one pipeline per --out
            return self._run(progress, on_prepared)

    def _run(self, progress, on_prepared) -> str:
        manifest = self.prepare(progress)
        if on_prepared:
            on_prepared(manifest)
        from mer_search.search.sweep import Sweep

        with Sweep.ray_kept():      # one Ray for every stage's sweep, started by the first that runs
            for stage in self.stages():
                if stage.space is not None:
                    self.sweep(stage)
                    self.export(stage)
                else:
                    self.fixed_config(stage)
                self.final(stage)
                if stage.produces_features:
                    self.features(stage)
        self.bundle()
        table = self.summary()
        (self.out / "summary.md").write_text(table)
        return table

    @property
    def metric(self) -> str:
        """What the rows are chosen by: dev weighted F1, or the dataset's micro F1 without a class."""
        from mer_search.metrics import dataset_metric

        return dataset_metric(read_json(self.prepared / "manifest.json") or {})

    def best_row(self) -> tuple[Stage, dict] | None:
        """The stage whose final models scored best on dev (mean over seeds; a tie goes to the simpler row)."""
        metric = self.metric
        done = [(stage, s) for stage in self.stages()
                if isinstance(s := read_json(RunDir(self.final_dir(stage.name)).summary), dict) and metric in s]
        return max(done, key=lambda d: d[1][metric]["mean"], default=None)

    @property
    def bundle_dir(self) -> Path:
        return self.out / "bundle"

    def bundle(self) -> None:
        """The answer as one folder: the best row's model (its seed best on dev) with every model it reads."""
        from mer_search.bundle import BUNDLE_JSON, write_bundle

        best = self.best_row()
        if best is None:
            return
        stage, summary = best
        seed = self.chosen_seed(stage.name)
        made = read_json(self.bundle_dir / BUNDLE_JSON)        # of this very checkpoint, written after it
        if self._skip("bundle", isinstance(made, dict) and made["card"].get("checkpoint") == str(seed.best)
                      and (self.bundle_dir / BUNDLE_JSON).stat().st_mtime >= seed.best.stat().st_mtime):
            return
        metrics = read_json(seed.metrics)
        scores = {f"row ({summary['seeds']} seeds), {split}": f"{m['mean']:.4f} +- {m['std']:.4f}"
                  for split in ("dev", "test") if (m := summary.get(f"{split}_wf1"))}
        scores.update({f"this model (seed {metrics['seed']}), {split}": f"{metrics[f'{split}_wf1']:.4f}"
                       for split in ("dev", "test") if f"{split}_wf1" in metrics})
        scores.update({f"this model (seed {metrics['seed']}), {split} micro F1": f"{metrics[f'{split}_microf1']:.4f}"
                       for split in ("dev", "test") if f"{split}_microf1" in metrics})   # a micro-F1 dataset's
        write_bundle(seed.best, self.bundle_dir, card={"row": stage.row, "stage": stage.name, "scores": scores,
                                                        "checkpoint": str(seed.best)})

    def summary(self) -> str:
        """The reference project's table: one row per model family, dev (and test) weighted F1 and accuracy."""
        from mer_search.config_io import load_yaml
        from mer_search.models import model_label

        rows, micro = [], self.metric == "dev_microf1"
        for stage in self.stages():
            path = RunDir(self.final_dir(stage.name)).summary
            if not path.exists():
                continue
            s = json.loads(path.read_text())
            cfg = load_yaml(self.config_path(stage.name))
            cells = [stage.row, model_label(cfg["model"])]
            for split in ("dev", "test"):
                for metric in ("wf1", "acc", *(("microf1",) if micro else ())):
                    m = s.get(f"{split}_{metric}")
                    cells.append(f"{m['mean']:.3f} +- {m['std']:.3f}" if m else "-")
            rows.append(cells)
        rows.append(majority_row(self.prepared))
        header = ["model", "architecture", "dev wF1", "dev acc", "test wF1", "test acc"]
        if micro:            # the dataset's own score beside each split's
            header = ["model", "architecture", "dev wF1", "dev acc", "dev micro F1", "test wF1", "test acc",
                      "test micro F1"]
            rows = [r if len(r) == len(header) else r[:4] + ["-"] + r[4:] + ["-"] for r in rows]
        seeds = self.budget["seeds"]
        dataset = (read_json(self.prepared / "manifest.json") or {}).get("dataset") or {"name": "meld"}
        metric = (dataset.get("metric") or {}).get("name", "weighted_f1").replace("_", " ")
        lines = [f"Dataset {dataset['name']}; rows scored by {metric} (the columns below: weighted F1 and "
                 f"accuracy). Budget {self.opts.budget}: {self.budget['num_samples'] or 'the space'} trials per sweep, "
                 f"{self.budget['max_epochs'] or 'the space'} epochs max, the top {self.budget['refit']} refitted "
                 f"before export, final models over {seeds} seeds (mean +- std).", "",
                 "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines + ["", "Spaces:"] + self.space_lines() + self.best_lines()) + "\n"

    def best_lines(self) -> list[str]:
        """The answer: the row chosen on dev, its scores, and the bundle that applies it to new dialogues."""
        from mer_search.bundle import BUNDLE_JSON

        made = read_json(self.bundle_dir / BUNDLE_JSON)
        if not isinstance(made, dict):
            return []
        card = made["card"]
        return ["", f"best (chosen on dev): {card['row']}; " + "; ".join(f"{k} {v}" for k, v in card["scores"].items()),
                f"bundle: {self.bundle_dir} (`mer-search predict {self.bundle_dir} --csv NEW.csv`)"]

    def space_lines(self) -> list[str]:
        """Which space each searched stage used and why; how its sweep ended; what the refit chose."""
        out = []
        for stage in self.stages():
            if stage.space is None:
                continue
            d = SweepDir(self.sweep_dir(stage.name))
            line = f"- {stage.name}: {Path(stage.space).stem} ({self.why.get(stage.name, 'the pipeline default')})"
            status = d.status() if d.holds_sweep() else {}
            if status.get("state") == "time budget spent":
                line += f"; its sweep stopped at its share of --time-budget after {status.get('trials')} of " \
                        f"{status.get('planned')} trials"
            refit = read_json(d.refit_result_path)
            if isinstance(refit, dict) and "refit" in refit:
                r = refit["refit"]
                line += (f"; refit of the top {r['k']}: sweep rank {r['chosen_rank']} chosen, dev "
                         + ", ".join(f"{t['refit_value']:.3f}" for t in r["trials"]))
            out.append(line)
        return out


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


def available_splits(meld_root: str | Path, dataset: str = "meld") -> tuple[str, ...]:
    """train and dev, plus test when the dataset declares it and its CSV is there (MELD's test labels are not
    always at hand)."""
    from data_prep.schema import load_schema

    schema = load_schema(dataset)
    return tuple(s for s in ("train", "dev", "test") if s in schema.files
                 and (s != "test" or schema.csv_path(Path(meld_root), s).exists()))


WHOLE = "# end of config (a file without this line was cut short and is written again)\n"


def _write_config(path: Path, cfg: dict) -> None:
    write_atomic(path, lambda p: p.write_text(yaml.safe_dump(cfg, sort_keys=False) + WHOLE))


def _readable_config(path: Path) -> bool:
    """A stage's config is trusted only whole (its last line) and loading: one cut short is written again
    (a config that lost its last keys would still parse, and train with defaults)."""
    if not path.exists():
        return False
    from mer_search.config import load_config

    try:
        if not path.read_text().endswith(WHOLE):
            raise ConfigError("cut short")
        load_config(path)
        return True
    except (ConfigError, UnicodeDecodeError) as e:
        log.warning("[pipeline] %s is not a whole config (%s): written again", path, e)
        return False


def _has_audio(prepared: Path) -> bool:
    return json.loads((prepared / "manifest.json").read_text())["settings"]["audio"] is not None


class _Quiet:
    def report(self, epoch: int, metrics: dict) -> None:
        pass
