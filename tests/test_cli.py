"""The command line: help everywhere, synth, the demo, and the README's quick start run verbatim end to end."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from mer_search.cli import main
from helpers import rung_records


@pytest.mark.parametrize("command", [[], ["prepare"], ["synth"], ["demo"], ["train"], ["features"], ["sweep"],
                                     ["spaces"], ["spaces", "validate"], ["spaces", "show"], ["report"], ["sync"],
                                     ["export"], ["predict"], ["pipeline"], ["bundle"], ["datasets"]])
def test_help(command):
    r = CliRunner().invoke(main, [*command, "--help"])
    assert r.exit_code == 0 and "Usage:" in r.output and "--help" in r.output


@pytest.mark.e2e     # synthesizes and encodes mp4 clips
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


@pytest.mark.e2e     # synthesizes and encodes mp4 clips
def test_synth_speaks_real_meld_dialogues(meld_dir, tmp_path):
    """--text-from: MELD's dialogues as they are (text, speakers, labels); train and test never share one."""
    r = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "c"), "--dialogues", "8", "--text-from", str(meld_dir)])
    assert r.exit_code == 0, r.output
    real = {s: pd.read_csv(meld_dir / f"{s}_sent_emo.csv", dtype=str, keep_default_na=False) for s in ("train", "dev")}
    spoken = {s: pd.read_csv(tmp_path / "c" / f"{s}_sent_emo.csv", dtype=str, keep_default_na=False)
              for s in ("train", "dev", "test")}
    for split, source in (("train", "train"), ("dev", "dev"), ("test", "train")):
        pairs = set(zip(real[source].Utterance, real[source].Emotion))
        assert set(zip(spoken[split].Utterance, spoken[split].Emotion)) <= pairs, split
    def dialogues(df):
        return {tuple(g.Utterance) for _, g in df.groupby("Dialogue_ID")}

    assert dialogues(spoken["train"]) and not dialogues(spoken["train"]) & dialogues(spoken["test"])
    assert len(list((tmp_path / "c" / "train_splits").glob("*.mp4"))) >= 10
    r = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "d"), "--text-from", str(tmp_path)])
    assert r.exit_code == 1 and "needs train_sent_emo.csv and dev_sent_emo.csv" in r.stderr


@pytest.mark.e2e     # synthesizes and encodes mp4 clips
def test_synth_is_seeded(tmp_path):
    for name in ("a", "b"):
        CliRunner().invoke(main, ["synth", "--out", str(tmp_path / name), "--dialogues", "6", "--seed", "4"])
    assert (tmp_path / "a" / "train_sent_emo.csv").read_text() == (tmp_path / "b" / "train_sent_emo.csv").read_text()
    assert (tmp_path / "a" / "synth_truth.json").read_text() == (tmp_path / "b" / "synth_truth.json").read_text()


def _readme_blocks() -> list[tuple[str, str]]:
    """The README's code blocks marked to be run verbatim here: (language, text)."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    return re.findall(r"<!-- run verbatim by tests/test_cli.py[^>]*-->\n```(\w+)\n(.*?)```", text, flags=re.S)


@pytest.mark.e2e     # synthesizes and encodes mp4 clips
def test_the_demo_synthesizes_once_and_runs_the_pipeline_on_it(monkeypatch, tmp_path):
    import mer_search.cli as cli

    seen = []
    monkeypatch.setattr(cli, "_run_pipeline", seen.append)
    for _ in range(2):
        r = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d"), "--dialogues", "6", "--budget", "tiny"])
        assert r.exit_code == 0, r.output
    assert r.output.count("generating") == 0 and (tmp_path / "d" / "corpus" / "synth_truth.json").exists()
    assert [(o.meld_root, o.out, o.budget) for o in seen] == [(tmp_path / "d" / "corpus", tmp_path / "d", "tiny")] * 2


@pytest.mark.slow     # ~5 min: five pipeline processes; the default run has tests/test_pipeline_smoke.py
@pytest.mark.ray
def test_the_readme_quick_start_runs_verbatim_and_resumes(tmp_path):
    """The README's real-MELD commands, verbatim, with a synthetic corpus as MELD.Raw (MER_SEARCH_BUDGET=tiny):
    the study through every stage, stopped twice and resumed; a rerun skips it all; a removed stage reruns alone;
    then the README's predict command and its Python example on the bundle."""
    import shutil

    blocks = _readme_blocks()
    assert [lang for lang, _ in blocks] == ["bash", "bash", "python"]
    study, predict, python = (code for _, code in blocks)
    line = study.splitlines()[0]
    assert line.startswith("mer-search pipeline --corpus MELD.Raw --out runs/meld")
    r = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "MELD.Raw"), "--dialogues", "8", "--seed", "0"])
    assert r.exit_code == 0, r.output
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "MER_SEARCH_BUDGET": "tiny",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def bash(code: str, timeout: int = 900):
        return subprocess.run(["bash", "-ec", code], capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=tmp_path)

    cmd = ["bash", "-c", f"exec {line}"]           # the signals reach mer-search itself, as from a terminal
    out = tmp_path / "runs" / "meld"
    # Ctrl-C during the first sweep, SIGTERM during the second: each stops the pipeline there (exit 130 / 143,
    # no later stage), and the same command resumes the interrupted sweep
    for sig, stage, later in ((signal.SIGINT, "text", "configs/text.yaml"),
                              (signal.SIGTERM, "text_context", "configs/text_context.yaml")):
        stopped = _signal_when(cmd, env, sig, lambda: len(rung_records(out / "sweeps" / stage)) >= 2, cwd=tmp_path)
        assert stopped.returncode == 128 + sig, stopped.stderr[-3000:]
        assert f"stopped by {sig.name}" in stopped.stderr and line in stopped.stderr
        status = json.loads((out / "sweeps" / stage / "status.json").read_text())
        assert status["finished"] is False and status["stopped_by"] == sig.name and status["cut_short"]
        assert not (out / later).exists(), "a stage after the stopped sweep ran"
    r = bash(study)
    assert r.returncode == 0, r.stderr[-3000:]
    for stage in ("text", "text_context"):      # the resumed sweeps: every trial once, epochs 1..n once each
        trials = pd.read_parquet(out / "sweeps" / stage / "trials.parquet")
        assert trials.trial_id.nunique() == 4 and not trials.cut_short.any()
        for tid, g in trials.groupby("trial_id"):
            assert g.training_iteration.tolist() == list(range(1, len(g) + 1)), (stage, tid)
    assert "quirks" in r.stdout and "undecodable" in r.stdout
    table = (out / "summary.md").read_text()
    assert "Budget tiny" in table
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ") and "wF1" not in line}
    assert list(rows) == ["text", "text + context", "text + context (joint)", "speech", "speech + context",
                          "speech + context (joint)", "text + speech", "text + speech + context", "ensemble",
                          "speech floor", "majority class"]
    assert "speech_stats" in rows["speech floor"] and "always neutral" in rows["majority class"]
    for name, stage in (("text", "text"), ("text + speech", "fusion")):
        s = json.loads((out / "final" / stage / "summary.json").read_text())
        assert f"{s['dev_wf1']['mean']:.3f} +- {s['dev_wf1']['std']:.3f}" in rows[name]
        assert len(s["per_seed"]) == 2 and "test_wf1" in s
    assert r.stdout.count(table) == 2            # printed by the pipeline, then by the README's `cat`
    # the answer: the ensemble where it won on held-out dev folds, else the row best on dev, bundled
    card = json.loads((out / "bundle" / "bundle.json").read_text())["card"]
    order = ("text", "text_context", "text_context_joint", "speech", "speech_context", "speech_context_joint",
             "fusion", "fusion_context", "speech_floor")
    dev = {st: json.loads((out / "final" / st / "summary.json").read_text())["dev_wf1"]["mean"] for st in order}
    ensemble = json.loads((out / "ensemble.json").read_text())
    assert card["stage"] == ("ensemble" if ensemble["helps"] else max(order, key=dev.get))
    assert f"best (chosen on dev): {card['row']};" in table and f"bundle: {Path('runs/meld/bundle')}" in table
    for stage in order[:-1]:
        assert (out / "sweeps" / stage / "report" / "index.html").exists()
        assert pd.read_parquet(out / "sweeps" / stage / "trials.parquet").trial_id.nunique() == 4
        assert (out / "configs" / f"{stage}.yaml").exists()
    assert (out / "features" / "text" / "dev.npy").exists() and (out / "features" / "speech" / "keys.parquet").exists()
    # one W&B run per trial (a resumed trial reopens its run: another offline dir, the same id), final, floor
    assert len({p.name.split("-", 3)[-1] for p in out.glob("**/wandb/offline-run-*")}) == 8 * 4 + 8 + 1

    # the README's predict command and Python example: MELD.Raw's test dialogues through the bundle give the
    # bundled model's own test score
    test = next(v for k, v in card["scores"].items() if k.startswith(("this model", "ensemble")) and k.endswith("test"))
    p = bash(predict, timeout=300)
    assert p.returncode == 0 and f"weighted F1 {test}" in p.stdout + p.stderr, (p.stdout, p.stderr[-2000:])
    written = pd.read_csv(tmp_path / "predictions.csv")
    assert len(written) == len(pd.read_csv(tmp_path / "MELD.Raw" / "test_sent_emo.csv"))
    py = subprocess.run([sys.executable, "-c", python], capture_output=True, text=True, timeout=300, env=env,
                        cwd=tmp_path)
    assert py.returncode == 0 and f"weighted F1 {float(test):.3f}" in py.stdout, (py.stdout, py.stderr[-2000:])

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert again.returncode == 0 and "0 shards (0 clips) to compute" in again.stderr
    # every step skipped but prepare (it keeps its finished work itself): 8 searched stages x (sweep, report,
    # export, final training), 6 feature dirs, the floor's config and final training, the ensemble, the bundle
    steps = 8 * 4 + 6 + 2 + 2
    started = [line for line in again.stderr.splitlines() if "[pipeline]" in line and line.endswith(" ...")]
    assert again.stderr.count("done before, skipped") == steps and len(started) == 1 and "prepare" in started[0]
    fusion = (out / "final" / "fusion" / "summary.json").read_text()
    shutil.rmtree(out / "final" / "fusion")
    third = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert third.returncode == 0 and "final training fusion ..." in third.stderr
    # the fusion's final models are new files: the ensemble is chosen again (from the same numbers), and the
    # bundle made again where the answer holds one of them
    assert "[pipeline] ensemble ..." in third.stderr
    rebundled = "[pipeline] bundle ..." in third.stderr
    assert third.stderr.count("done before, skipped") == steps - 2 - rebundled
    assert json.loads((out / "final" / "fusion" / "summary.json").read_text())["dev_wf1"] == \
        json.loads(fusion)["dev_wf1"]       # the same seeds give the same model


def _signal_when(cmd, env, sig, ready, timeout=600, cwd=None):
    """Run cmd, send sig to it (the driver only, as `kill` would) once ready(), and wait for it to end."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=cwd)
    t0 = time.time()
    while not ready() and proc.poll() is None and time.time() - t0 < timeout:
        time.sleep(0.05)
    assert proc.poll() is None, "the command ended before it could be signalled"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def test_training_and_the_cli_leave_ray_out():
    """`import mer_search.training.train` (and experiment, data_prep.prepare, the CLI) imports no ray and no optuna: one
    fresh interpreter, each module checked as it is imported."""
    code = ("import importlib, sys\n"
            "for m in ('mer_search.training.train', 'mer_search.training.experiment', 'data_prep.prepare', 'mer_search.cli'):\n"
            "    importlib.import_module(m)\n"
            "    print(m, 'ray' in sys.modules, 'optuna' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [f"{m} False False" for m in ("mer_search.training.train", "mer_search.training.experiment",
                                                             "data_prep.prepare", "mer_search.cli")]


def test_an_internal_error_shows_its_traceback_with_v(monkeypatch, tmp_path):
    """A bug (not a user error) is never dressed as one: with -v its traceback, without it a hint to rerun."""
    import mer_search.training.export

    def broken(*args, **kwargs):
        raise KeyError("dev_wf1")

    monkeypatch.setattr(mer_search.training.export, "export_config", broken)
    r = CliRunner().invoke(main, ["export", str(tmp_path)])
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert "internal error (KeyError: 'dev_wf1'); this is a bug in mer-search" in r.stderr and "rerun with -v" in r.stderr
    r = CliRunner().invoke(main, ["-v", "export", str(tmp_path)])
    assert r.exit_code == 1 and "Traceback (most recent call last)" in r.stderr and 'raise KeyError("dev_wf1")' in r.stderr
    monkeypatch.undo()          # a user error stays one line
    r = CliRunner().invoke(main, ["export", str(tmp_path)])
    assert r.exit_code == 1 and r.stderr == f"error: {tmp_path}: not a sweep dir (no sweep.json)\n"
