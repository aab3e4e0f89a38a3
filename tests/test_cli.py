"""The command line: help everywhere, synth, and the demo end to end."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from mer_search.cli import main


@pytest.mark.parametrize("command", [[], ["prepare"], ["synth"], ["demo"], ["train"], ["features"], ["sweep"],
                                     ["spaces"], ["spaces", "validate"], ["spaces", "show"]])
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


def test_demo_runs_end_to_end(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mer_search.cli", "demo", "--out", str(tmp_path / "demo"),
                        "--dialogues", "8"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "prepared" in r.stdout and "quirks" in r.stdout and "undecodable" in r.stdout
    m = json.loads((tmp_path / "demo" / "prepared" / "manifest.json").read_text())
    assert m["complete"] and set(m["splits"]) == {"train", "dev", "test"}
    # a second demo reuses the corpus and every finished shard
    again = subprocess.run([sys.executable, "-m", "mer_search.cli", "demo", "--out", str(tmp_path / "demo"),
                            "--dialogues", "8"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "0 shards (0 clips) to compute" in again.stderr


def test_import_of_data_prep_leaves_ray_out():
    code = "import sys, data_prep.prepare, mer_search.cli; print('ray' in sys.modules, 'optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
