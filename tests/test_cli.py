"""The command line: help everywhere, synth, and the demo end to end."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from mer_search.cli import main


@pytest.mark.parametrize("command", [[], ["prepare"], ["synth"], ["demo"], ["train"], ["features"], ["sweep"],
                                     ["spaces"], ["spaces", "validate"], ["spaces", "show"], ["report"], ["sync"],
                                     ["export"], ["predict"], ["pipeline"]])
def test_help(command):
    r = CliRunner().invoke(main, [*command, "--help"])
    assert r.exit_code == 0 and "Usage:" in r.output and "--help" in r.output


def test_synth_writes_meld_layout(tmp_path):
    r = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "c"), "--dialogues", "6", "--seed", "1"])
    assert r.exit_code == 0, r.output
    root = tmp_path / "c"
    for name in ("train_sent_emo.csv", "dev_sent_emo.csv", "test_sent_emo.csv"):
        df = pd.read_csv(root / name)
        assert list(df.columns) == ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID",
                                    "Utterance_ID", "Season", "Episode", "StartTime", "EndTime"]
    assert len(list((root / "train_splits").glob("*.mp4"))) >= 10
    assert list((root / "output_repeated_splits_test").glob("final_videos_test*.mp4"))


def test_synth_is_seeded(tmp_path):
    for name in ("a", "b"):
        CliRunner().invoke(main, ["synth", "--out", str(tmp_path / name), "--dialogues", "6", "--seed", "4"])
    assert (tmp_path / "a" / "train_sent_emo.csv").read_text() == (tmp_path / "b" / "train_sent_emo.csv").read_text()
    assert (tmp_path / "a" / "synth_truth.json").read_text() == (tmp_path / "b" / "synth_truth.json").read_text()


@pytest.mark.ray
def test_demo_runs_the_pipeline_and_resumes(tmp_path):
    """The main job: a synthetic corpus through every stage; a rerun skips them all; a removed stage reruns alone."""
    import shutil

    cmd = [sys.executable, "-m", "mer_search.cli", "demo", "--out", str(tmp_path / "demo"), "--dialogues", "8"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "demo"
    assert "quirks" in r.stdout and "undecodable" in r.stdout
    table = (out / "summary.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ") and "wF1" not in line}
    assert list(rows) == ["text", "text + context", "speech", "speech + context", "text + speech", "speech floor",
                          "majority class"]
    assert "speech_stats" in rows["speech floor"] and "always neutral" in rows["majority class"]
    for name, stage in (("text", "text"), ("text + speech", "fusion")):
        s = json.loads((out / "final" / stage / "summary.json").read_text())
        assert f"{s['dev_wf1']['mean']:.3f} +- {s['dev_wf1']['std']:.3f}" in rows[name]
        assert len(s["per_seed"]) == 2 and "test_wf1" in s
    assert table in r.stdout
    for stage in ("text", "text_context", "speech", "speech_context", "fusion"):
        assert (out / "sweeps" / stage / "report" / "index.html").exists()
        assert pd.read_parquet(out / "sweeps" / stage / "trials.parquet").trial_id.nunique() == 4
        assert (out / "configs" / f"{stage}.yaml").exists()
    assert (out / "features" / "text" / "dev.npy").exists() and (out / "features" / "speech" / "keys.parquet").exists()
    assert len(list(out.glob("**/wandb/offline-run-*"))) == 5 * 4 + 5 + 1      # trials, finals, the floor

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0 and "0 shards (0 clips) to compute" in again.stderr
    assert again.stderr.count("done before, skipped") == 1 + 5 * 3 + 2 + 1 and " ...\n" not in again.stderr.split("prepared")[-1]
    fusion = (out / "final" / "fusion" / "summary.json").read_text()
    shutil.rmtree(out / "final" / "fusion")
    third = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert third.returncode == 0 and "final training fusion ..." in third.stderr
    assert third.stderr.count("done before, skipped") == 1 + 5 * 3 + 2 + 1 - 1
    assert json.loads((out / "final" / "fusion" / "summary.json").read_text())["dev_wf1"] == \
        json.loads(fusion)["dev_wf1"]       # the same seeds give the same model


def test_import_of_data_prep_leaves_ray_out():
    code = "import sys, data_prep.prepare, mer_search.cli; print('ray' in sys.modules, 'optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
