"""What several test modules share: a resumable sweep's space, reading a sweep's study and ASHA records,
killing a driver with everything it started, an EmoryNLP-shaped corpus. Test modules import from here, never
from each other."""

import json
import os
import signal
from pathlib import Path

import optuna
import pandas as pd
import psutil

from mer_search.core.dirs import SweepDir

SPACE = """# mer-search sweep {path} --prepared PREPARED
search: {{metric: dev_wf1, mode: max, max_epochs: 4, grace_period: 1, reduction_factor: 2, num_samples: 8,
         sampler: tpe}}
fixed: {{model.name: speech_lstm, data.batch_size: 4, data.max_frames: 300}}
params:
  model.hidden: {{type: int, low: 16, high: 48}}
  model.dropout: {{type: float, low: 0.0, high: 0.5}}
  train.lr: {{type: float, low: 1.0e-4, high: 3.0e-2, log: true}}
"""


def sweep_study(where):
    """A sweep's Optuna study: its default journal file in a sweep dir, or a storage URL."""
    from mer_search.search.state import study_storage

    storage = study_storage(str(SweepDir(where).study_path) if isinstance(where, Path) else where)
    return optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)


def rung_records(out):
    try:
        saved = json.loads(SweepDir(out).rungs_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {(float(m), tid): v for bracket in saved["brackets"] for m, rec in bracket for tid, v in rec.items()}


def assert_each_trial_once(table, trials: int) -> None:
    """Every planned trial exactly once, each with epochs 1..n and no repeats, none failed."""
    assert table.trial_id.nunique() == trials
    for tid, g in table.groupby("trial_id"):
        assert g.training_iteration.tolist() == list(range(1, len(g) + 1)), tid
        assert g.error.eq("").all(), tid


def kill_tree(proc):
    """SIGKILL the driver and everything it started (Ray's helpers ignore SIGTERM and outlive the driver)."""
    family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    for pid in family:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    psutil.wait_procs([p for p in map(_process, family) if p], timeout=10)


def _process(pid):
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


EMORY = ("Joyful", "Mad", "Peaceful", "Neutral", "Sad", "Powerful", "Scared")
# MELD's emotions relabelled onto EmoryNLP's set, to make EmoryNLP-shaped corpora from MELD-shaped rows
RELABEL = {"joy": "Joyful", "anger": "Mad", "neutral": "Neutral", "sadness": "Sad", "surprise": "Powerful",
           "fear": "Scared", "disgust": "Peaceful"}


def emorynlp_corpus(root, source):
    """EmoryNLP's columns and conventions, from MELD-shaped rows: scenes keyed by (Season, Episode, Scene_ID),
    Utterance_ID from 1, list-literal speakers, times with a dot, EmoryNLP's seven labels."""
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev", "test"):
        if not (source / f"{split}_sent_emo.csv").exists():         # MELD's test labels are not always at hand
            continue
        df = pd.read_csv(source / f"{split}_sent_emo.csv", dtype=str, keep_default_na=False)
        d = df.Dialogue_ID.astype(int)
        pd.DataFrame({"Utterance": df.Utterance, "Speaker": df.Speaker.map(lambda s: repr([s])),
                      "Emotion": df.Emotion.map(RELABEL), "Scene_ID": d % 3, "Utterance_ID": df.Utterance_ID.astype(int) + 1,
                      "Season": 1 + d // 6, "Episode": 1 + d // 3 % 2,
                      "Start_Time": df.StartTime.str.replace(",", "."), "End_Time": df.EndTime.str.replace(",", ".")}
                     ).to_csv(root / f"emorynlp_{split}_final.csv", index=False)
    return root


TABLE_COLUMNS = ["dialogue_id", "utterance_id", "split", "emotion_name", "sentiment_name", "speaker", "text_raw",
                 "csv_row", "start_s", "end_s"]


def table_digest(df) -> str:
    """A short sha256 of the columns prepare reads from a CSV (times to 4 decimals): equal tables, equal digests."""
    import hashlib

    ints = {"dialogue_id": "int64", "utterance_id": "int64", "csv_row": "int64"}
    text = df[TABLE_COLUMNS].astype(ints).to_csv(index=False, float_format="%.4f")
    return hashlib.sha256(text.encode()).hexdigest()[:16]
