"""The whole study in the default run: `mer-search pipeline` in this process on the shared synthetic corpus
(every stage: text, speech, context, fusion, floor, bundle), stopped by SIGTERM inside the speech sweep,
resumed by the same command, rerun with every step skipped, and its bundle predicting test back to the
bundled model's own score. The README's commands run verbatim, in a subprocess, in the slow tier
(tests/test_cli.py)."""

import json
import os
import signal
import threading
import time

import pandas as pd
import pytest
from click.testing import CliRunner

from helpers import rung_records
from mer_search.cli import main

pytestmark = [pytest.mark.ray, pytest.mark.e2e]
STAGES = ("text", "text_context", "text_context_joint", "speech", "speech_context", "speech_context_joint", "fusion",
          "fusion_context", "speech_floor")
ROWS = ["text", "text + context", "text + context (joint)", "speech", "speech + context", "speech + context (joint)",
        "text + speech", "text + speech + context", "ensemble", "speech floor", "majority class"]


def _signal_self_when(ready, sig, done: threading.Event, timeout=600):
    """Send `sig` to this process once ready() (from a helper thread; the CLI's handler runs in the main one)."""
    def watch():
        t0 = time.time()
        while not done.is_set() and time.time() - t0 < timeout:
            if ready():
                os.kill(os.getpid(), sig)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_the_pipeline_stops_resumes_skips_and_its_bundle_predicts(synth_corpus, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    out = tmp_path / "out"
    cmd = ["pipeline", "--corpus", str(synth_corpus), "--out", str(out), "--budget", "tiny"]   # W&B offline

    done = threading.Event()
    _signal_self_when(lambda: len(rung_records(out / "sweeps" / "speech")) >= 2, signal.SIGTERM, done)
    stopped = CliRunner().invoke(main, cmd)
    done.set()
    assert stopped.exit_code == 143, stopped.output
    status = json.loads((out / "sweeps" / "speech" / "status.json").read_text())
    assert status["finished"] is False and status["stopped_by"] == "SIGTERM"
    assert not (out / "configs" / "speech.yaml").exists(), "a step after the stopped sweep ran"
    assert (out / "final" / "text_context" / "summary.json").exists()          # the stages before it finished

    caplog.clear()
    with caplog.at_level("INFO", logger="mer_search"):
        r = CliRunner().invoke(main, cmd)
    assert r.exit_code == 0, r.output
    skipped = [m for m in caplog.messages if m.endswith("done before, skipped")]
    assert "[pipeline] sweep text: done before, skipped" in skipped            # not run again
    assert "[pipeline] sweep speech: done before, skipped" not in skipped      # resumed, not skipped
    trials = pd.read_parquet(out / "sweeps" / "speech" / "trials.parquet")
    assert trials.trial_id.nunique() == 4 and not trials.cut_short.any()       # every trial once, finished
    for tid, g in trials.groupby("trial_id"):
        assert g.training_iteration.tolist() == list(range(1, len(g) + 1)), tid
    table = (out / "summary.md").read_text()
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and "wF1" not in line]
    assert rows == ROWS
    dev = {s: json.loads((out / "final" / s / "summary.json").read_text())["dev_wf1"]["mean"] for s in STAGES}
    # one W&B run per trial (a resumed trial reopens its run: the same id), one per final training
    assert len({p.name.split("-", 3)[-1] for p in out.glob("**/wandb/offline-run-*")}) == 8 * 4 + 8 + 1
    card = json.loads((out / "bundle" / "bundle.json").read_text())["card"]
    # the answer: the ensemble of the rows' final models where averaging beat one model on held-out dev folds,
    # else the row best on dev
    ensemble = json.loads((out / "ensemble.json").read_text())
    assert len(ensemble["pool"]) == 2 * len(STAGES[:-1]) and sum(ensemble["weights"]) >= 1
    assert card["stage"] == ("ensemble" if ensemble["helps"] else max(STAGES, key=dev.get))
    assert f"best (chosen on dev): {card['row']};" in table

    # a rerun skips every step but prepare (which keeps its finished work itself, and says it computed nothing)
    caplog.clear()
    with caplog.at_level("INFO"):
        again = CliRunner().invoke(main, cmd)
    assert again.exit_code == 0, again.output
    started = [m for m in caplog.messages if m.startswith("[pipeline]") and m.endswith(" ...")]
    assert started == ["[pipeline] prepare ..."] and any("0 shards (0 clips) to compute" in m for m in caplog.messages)
    skipped = [m.removeprefix("[pipeline] ").removesuffix(": done before, skipped") for m in caplog.messages
               if m.endswith("done before, skipped")]
    per_stage = ["sweep {}", "report {}", "export {}", "final training {}"]
    assert skipped == [s.format(stage) for stage in STAGES[:-1] for s in per_stage + ["features {}"] * (
        stage in ("text", "text_context", "text_context_joint", "speech", "speech_context", "speech_context_joint"))] + \
        ["config speech_floor", "final training speech_floor", "ensemble", "bundle"]
    assert (out / "summary.md").read_text() == table

    # the bundle labels the test dialogues with the bundled model's own test score
    import mer_search

    test = next(v for k, v in card["scores"].items() if k.startswith(("this model", "ensemble")) and k.endswith("test"))
    predictions, metrics = mer_search.load(out / "bundle").predict(synth_corpus / "test_sent_emo.csv",
                                                                    clips=synth_corpus)
    assert f"{metrics['csv_wf1']:.4f}" == test
    assert len(predictions) == len(pd.read_csv(synth_corpus / "test_sent_emo.csv"))
