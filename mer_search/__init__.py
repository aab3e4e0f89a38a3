"""mer-search: hyperparameter search for multimodal emotion recognition on MELD.

The common jobs from Python, without a subprocess (each imports what it needs when called):

    import mer_search
    table = mer_search.sweep("text_mlp", prepared="runs/meld", out="runs/sweeps/mlp", num_samples=8)
    summary = mer_search.run_pipeline(meld_root="MELD.Raw", out="runs/pipeline", budget="small")
    predictions, scores = mer_search.load("runs/pipeline/bundle").predict("new_dialogues.csv")
"""

__version__ = "0.1.0"
# the layers, lowest first: each is a subpackage, and a module imports only from its own layer and those below
# (tests/test_structure.py reads this list; docs/architecture.md shows what each holds)
LAYERS = ("core", "data", "models", "training", "serving", "search", "pipeline", "cli")


def load(path):
    """A model bundle (or a checkpoint) to label new dialogues: `mer_search.load(path).predict(df)`."""
    from mer_search.serving.predict import load as load_model

    return load_model(path)


def sweep(space, prepared, out, **options):
    """Run a search space (a shipped name or a YAML file) on prepared data into the sweep dir `out`; returns the
    trial table. `options`: any of mer_search.search.sweep.SweepOptions (num_samples, max_epochs, sampler,
    scheduler, cpus_per_trial, gpus_per_trial, address, seed, wandb, resume, ...)."""
    from pathlib import Path

    from mer_search.search.space import find_space
    from mer_search.search.sweep import SweepOptions, run_sweep

    return run_sweep(SweepOptions(space=str(find_space(space)), prepared=str(prepared), out=Path(out), **options))


def run_pipeline(meld_root, out, **options):
    """The whole study (prepare, every stage, the summary and the bundle); returns the summary table (Markdown).
    Not `pipeline`: that name is the module mer_search.pipeline.
    `options`: any of mer_search.pipeline.PipelineOptions (budget, dataset, text_only, workers, wandb, ...)."""
    from pathlib import Path

    from mer_search.pipeline import Pipeline, PipelineOptions

    return Pipeline(PipelineOptions(meld_root=Path(meld_root), out=Path(out), **options)).run()
