"""End-to-end preparation of a synthetic MELD-layout corpus: quirks, shards, manifest, resume."""

import json
import logging
from pathlib import Path

import numpy as np
import torch
import pandas as pd
import pytest

from data_prep import PrepError
from data_prep.atomic import sha256_file
from data_prep.audio import AudioParams, decode_clip, logmel
from data_prep.prepare import PrepareOptions, load_manifest, prepare
from data_prep.reader import ShardReader


def _tables(out):
    return {s: pd.read_parquet(out / f"{s}.parquet") for s in ("train", "dev", "test")}


def _keys(df, mask):
    return sorted([df.split.iloc[0], int(d), int(u)] for d, u in zip(df[mask].dialogue_id, df[mask].utterance_id))


def test_every_injected_quirk_is_detected(prepared, synth_corpus):
    truth = json.loads((synth_corpus / "synth_truth.json").read_text())
    t = pd.concat(_tables(prepared).values())
    quirks = pd.read_csv(prepared / "quirks.csv")
    found = {k: sorted([s, int(d), int(u)] for s, d, u in zip(g.split, g.dialogue_id, g.utterance_id))
             for k, g in quirks.groupby("kind")}
    assert found["undecodable"] == sorted(truth["corrupt"])
    assert found["missing"] == sorted(truth["missing"])
    assert found["short"] == sorted(truth["short"])
    assert found["long"] == sorted(truth["long"])
    assert found["final_videos"] == sorted(truth["final_videos"])
    assert found["without CSV row"] == sorted(truth["extra"])
    # channel layouts are counted, not listed: one row per split and layout, the clips it covers in `count`
    channels = quirks[quirks.kind == "channels"]
    assert channels["count"].sum() == sum(truth["channels"].values()) > len(channels)
    assert not channels.duplicated(["split", "problem"]).any() and (channels.dialogue_id == -1).all()
    assert (quirks[quirks.kind != "channels"]["count"] == 1).all()
    # and the table says what was done
    status = {(r.split, r.dialogue_id, r.utterance_id): r for r in t.itertuples()}
    assert all(truth[k] for k in ("corrupt", "missing", "short", "long", "final_videos"))    # each loop checks some
    for key in truth["corrupt"]:
        r = status[tuple(key)]
        assert (r.audio_status, r.shard, r.length) == ("undecodable", -1, 0)
    for key in truth["missing"]:
        r = status[tuple(key)]
        assert (r.audio_status, r.shard) == ("missing", -1) and pd.isna(r.audio_path)
    for key in truth["short"]:
        r = status[tuple(key)]
        assert (r.audio_status, r.blacklisted, r.length) == ("short", True, 1)
    for key in truth["long"]:
        r = status[tuple(key)]
        assert r.capped and r.length == 3001 and r.duration_s > 30
    for key in truth["final_videos"]:
        assert Path(status[tuple(key)].audio_path).name.startswith("final_videos_test")
    extra_d = {k[1] for k in truth["extra"]}
    assert not t.dialogue_id.isin(extra_d).any()


def test_table_columns_and_counts(prepared, synth_corpus):
    tables = _tables(prepared)
    need = {"split", "dialogue_id", "utterance_id", "speaker", "text", "text_raw", "tokens", "emotion",
            "sentiment", "start_s", "end_s", "shard", "offset", "length", "audio_status", "channels"}
    for split, df in tables.items():
        assert need <= set(df.columns)
        csv = pd.read_csv(synth_corpus / f"{split}_sent_emo.csv")
        assert len(df) == len(csv)
        assert not df.duplicated(["dialogue_id", "utterance_id"]).any()
        assert df.emotion.between(0, 6).all() and df.sentiment.between(0, 2).all()
        assert (df.end_s > df.start_s).all()


def test_shards_hold_exactly_what_a_fresh_computation_gives(prepared, synth_corpus):
    df = _tables(prepared)["dev"]
    reader = ShardReader(prepared)
    ok = df[df.audio_status == "ok"]
    assert len(ok) > 3
    threads = torch.get_num_threads()
    torch.set_num_threads(1)            # as prepare computes (one thread a decode): the same floats to the bit
    try:
        fresh = {}
        for r in ok.itertuples():
            dec = decode_clip(synth_corpus / r.audio_path, AudioParams())
            fresh[r.audio_path] = logmel(dec.wave, dec.sample_rate, AudioParams())[0]
    finally:
        torch.set_num_threads(threads)
    for r in ok.itertuples():
        want = fresh[r.audio_path]
        got = reader.get("dev", r.shard, r.offset, r.length)
        assert isinstance(got, np.memmap) or isinstance(got.base, np.memmap)
        np.testing.assert_array_equal(np.asarray(got), want, err_msg=f"{r.audio_path} {r.shard} {r.offset} {r.length} {want.shape}")
    # utterances tile each shard exactly: no gap, no overlap
    for shard, g in df[df.shard >= 0].groupby("shard"):
        g = g.sort_values("offset")
        assert (g.offset.values[1:] == (g.offset + g.length).values[:-1]).all()
        assert g.offset.iloc[0] == 0
        assert (g.offset + g.length).iloc[-1] == reader.shard("dev", shard).shape[0]


def test_manifest_lists_every_file_with_a_valid_checksum(prepared):
    m = load_manifest(prepared)
    assert m["complete"] and m["settings"]["audio"]["n_mels"] == 40 and m["settings"]["audio"]["hop_length"] == 80
    assert m["versions"]["torch"] and m["versions"]["av"]
    # tokens/ is not prepare's output: fine-tuned encoders cache their tokenization there (mer_search.data.dialogue_text)
    on_disk = {str(p.relative_to(prepared)) for p in prepared.rglob("*")
               if p.is_file() and p.suffix in (".npy", ".parquet") and p.relative_to(prepared).parts[0] != "tokens"}
    listed = {k for k in m["files"] if k.endswith((".npy", ".parquet"))}
    assert on_disk == listed
    for name, info in m["files"].items():
        assert sha256_file(prepared / name) == info["sha256"], name
    for split in ("train", "dev", "test"):
        assert m["files"][f"{split}.parquet"]["rows"] == m["splits"][split]["rows"]


def test_rerun_skips_finished_shards(prepared, synth_corpus, caplog):
    before = {p: p.stat().st_mtime_ns for p in (prepared / "audio").rglob("*.npy")}
    with caplog.at_level(logging.INFO, logger="data_prep.prepare"):
        prepare(PrepareOptions(meld_root=synth_corpus, out=prepared, shard_size=16))
    assert "0 shards (0 clips) to compute" in caplog.text
    assert before == {p: p.stat().st_mtime_ns for p in (prepared / "audio").rglob("*.npy")}


def test_different_parameters_are_refused_then_overwritten(synth_corpus, tmp_path):
    out = tmp_path / "p"
    prepare(PrepareOptions(meld_root=synth_corpus, out=out, splits=("dev",), shard_size=8))
    with pytest.raises(PrepError, match=r"different parameters \(audio.n_mels: 40 -> 64\).*--overwrite"):
        prepare(PrepareOptions(meld_root=synth_corpus, out=out, splits=("dev",), shard_size=8,
                               audio=AudioParams(n_mels=64)))
    assert load_manifest(out)["settings"]["audio"]["n_mels"] == 40   # the refusal changed nothing
    m = prepare(PrepareOptions(meld_root=synth_corpus, out=out, splits=("dev",), shard_size=8,
                               audio=AudioParams(n_mels=64), overwrite=True))
    assert m["settings"]["audio"]["n_mels"] == 64
    assert ShardReader(out).shard("dev", 0).shape[1] == 64


def test_workers_give_identical_output(synth_corpus, tmp_path):
    one = prepare(PrepareOptions(meld_root=synth_corpus, out=tmp_path / "w1", splits=("dev",), shard_size=4))
    two = prepare(PrepareOptions(meld_root=synth_corpus, out=tmp_path / "w2", splits=("dev",), shard_size=4,
                                 workers=2))
    assert {k: v["sha256"] for k, v in one["files"].items()} == {k: v["sha256"] for k, v in two["files"].items()}


def test_text_only_needs_no_clips(synth_corpus, tmp_path):
    import shutil

    root = tmp_path / "csv_only"
    root.mkdir()
    for s in ("train", "dev", "test"):
        shutil.copy(synth_corpus / f"{s}_sent_emo.csv", root)
    m = prepare(PrepareOptions(meld_root=root, out=tmp_path / "t", text_only=True))
    df = pd.read_parquet(tmp_path / "t" / "test.parquet")
    assert (df.audio_status == "text_only").all() and (df.shard == -1).all()
    assert m["settings"]["audio"] is None and not (tmp_path / "t" / "audio").exists()


@pytest.mark.ray
def test_ray_tasks_give_the_same_shards(synth_corpus, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    local = prepare(PrepareOptions(meld_root=synth_corpus, out=tmp_path / "l", splits=("dev",), shard_size=4))
    try:
        via_ray = prepare(PrepareOptions(meld_root=synth_corpus, out=tmp_path / "r", splits=("dev",),
                                         shard_size=4, workers=2, address="local"))
    finally:
        ray.shutdown()
    assert {k: v["sha256"] for k, v in local["files"].items()} == \
           {k: v["sha256"] for k, v in via_ray["files"].items()}
