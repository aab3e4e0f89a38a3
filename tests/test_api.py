"""The package namespace does the common jobs without a subprocess: sweep, pipeline, load + predict."""

import pytest

import mer_search


@pytest.mark.ray
def test_sweep_from_python(prepared, space_file, tmp_path, monkeypatch):
    import ray

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    try:
        table = mer_search.sweep(space_file, prepared, tmp_path / "sweep", num_samples=2, max_epochs=1,
                                 wandb="disabled")
    finally:
        ray.shutdown()
    assert table.trial_id.nunique() == 2 and "dev_wf1" in table.columns
    from mer_search.search.sweep import SweepError

    with pytest.raises(SweepError, match="already holds a sweep"):       # as the CLI says it: resume instead
        mer_search.sweep(space_file, prepared, tmp_path / "sweep", num_samples=2, wandb="disabled")


def test_pipeline_from_python_passes_its_options(monkeypatch, tmp_path):
    import mer_search.pipeline as p

    seen = {}
    monkeypatch.setattr(p.Pipeline, "run", lambda self: seen.setdefault("opts", self.opts) and "| table |")
    assert mer_search.run_pipeline(tmp_path, tmp_path / "out", budget="tiny", text_only=True, dataset="emorynlp") \
        == "| table |"
    opts = seen["opts"]
    assert (opts.budget, opts.text_only, opts.dataset, opts.out) == ("tiny", True, "emorynlp", tmp_path / "out")
    with pytest.raises(TypeError, match="budgett"):
        mer_search.run_pipeline(tmp_path, tmp_path / "out", budgett="tiny")
