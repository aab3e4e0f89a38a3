"""Every way a sweep can be asked wrongly ends in one clear line and exit 1, before any trial starts."""

import json
import shutil

import pytest
from click.testing import CliRunner

from mer_search.cli import main

GOOD = """# mer-search sweep {path} --prepared PREPARED
search: {{metric: dev_wf1, mode: max, max_epochs: 2, grace_period: 1, reduction_factor: 2, num_samples: 2}}
fixed: {{model.name: text_mlp}}
params:
  train.lr: {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}
"""


@pytest.fixture()
def space(tmp_path):
    p = tmp_path / "good.yaml"
    p.write_text(GOOD.format(path=p))
    return p


@pytest.fixture(scope="module")
def text_only(synth_corpus, tmp_path_factory):
    from data_prep.prepare import PrepareOptions, prepare

    out = tmp_path_factory.mktemp("text_only")
    prepare(PrepareOptions(meld_root=synth_corpus, out=out, text_only=True))
    return out


def _sweep(*args):
    r = CliRunner().invoke(main, ["sweep", *map(str, args)])
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr


def test_bad_space_files(space, prepared, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("search: [unclosed\n")
    assert "invalid YAML" in _sweep(bad, "--prepared", prepared, "--out", tmp_path / "o")
    assert "no space named 'no_such_space'" in _sweep("no_such_space", "--prepared", prepared)
    bad.write_text(GOOD.format(path=bad).replace("metric: dev_wf1", "metric: dev_bogus"))
    assert "unknown metric 'dev_bogus'" in _sweep(bad, "--prepared", prepared, "--out", tmp_path / "o")
    assert "at least 1 trial" in _sweep(space, "--prepared", prepared, "--num-samples", 0)
    assert "give SPACE and --prepared" in _sweep(space)


def test_unreachable_ray_and_unwritable_places(space, prepared, tmp_path):
    assert "cannot reach Ray at 127.0.0.1:1" in _sweep(space, "--prepared", prepared, "--out", tmp_path / "a",
                                                       "--address", "127.0.0.1:1")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert "sweep dir is not writable" in _sweep(space, "--prepared", prepared, "--out", blocker / "sweep")
    assert "not writable" in _sweep(space, "--prepared", prepared, "--out", tmp_path / "b",
                                    "--storage", blocker / "results")
    assert "not writable" in _sweep(space, "--prepared", prepared, "--out", tmp_path / "c",
                                    "--storage", f"file://{blocker}/results")


def test_prepared_data_missing_or_from_other_parameters(space, prepared, text_only, tmp_path):
    assert "run `mer-search prepare` first" in _sweep(space, "--prepared", tmp_path / "nowhere")
    err = _sweep("spaces/speech_cnn1d.yaml", "--prepared", text_only, "--out", tmp_path / "s")
    assert "does not fit space speech_cnn1d" in err and "--text-only" in err
    err = _sweep("spaces/fusion.yaml", "--prepared", prepared, "--out", tmp_path / "f")
    assert "does not fit space fusion" in err and "features_text" in err


def test_resume_and_reuse_mistakes(space, prepared, tmp_path):
    assert "nothing to resume" in _sweep("--resume", tmp_path)
    copy = tmp_path / "prepared_copy"
    shutil.copytree(prepared, copy)
    sweep = tmp_path / "old"
    sweep.mkdir()
    plan = {"space_name": "s", "space_source": "s.yaml", "sweep_dir": str(sweep), "search": {"max_epochs": 2},
            "num_samples": 2, "sampler": "tpe", "scheduler": "asha", "seed": 0, "objectives": [["dev_wf1", "max"]],
            "base": {"data.prepared": str(copy)}, "prepared_sha256": "0" * 64, "study_storage": "sqlite://",
            "study_name": "s", "storage": str(sweep)}       # a plan from before fingerprints: the manifest's hash
    (sweep / "sweep.json").write_text(json.dumps(plan))
    assert "changed or vanished since the sweep started" in _sweep("--resume", sweep)
    assert "already holds a sweep" in _sweep(space, "--prepared", prepared, "--out", sweep)
    assert "not a sweep dir" in _sweep(space, "--prepared", prepared, "--out", tmp_path / "w", "--warm-start", copy)
    r = CliRunner().invoke(main, ["report", str(copy)])
    assert r.exit_code == 1 and "not a sweep dir" in r.stderr


def test_wandb_online_without_a_key(space, prepared, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert "needs WANDB_API_KEY" in _sweep(space, "--prepared", prepared, "--out", tmp_path / "o", "--wandb", "online")


@pytest.mark.ray
def test_the_wandb_key_is_never_written(space, prepared, tmp_path, monkeypatch):
    """The key is read from the environment by wandb only: no config, log, table or run file holds it."""
    secret = "mer-search-test-key-0123456789abcdef0123"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    out = tmp_path / "s"
    r = CliRunner().invoke(main, ["sweep", str(space), "--prepared", str(prepared), "--out", str(out),
                                  "--num-samples", "1", "--max-epochs", "1", "--wandb", "offline"])
    assert r.exit_code == 0, r.output
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files) and (out / "trials.parquet").exists()
    assert not [p for p in files if secret.encode() in p.read_bytes()]
    assert secret not in r.output
