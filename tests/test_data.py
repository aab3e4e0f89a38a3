"""Batching over prepared data: bucketing, whole dialogues, masks, class weights, augmentation."""

import numpy as np
import pytest
import torch

from mer_search.data.corpus import Batches, Corpus, DataConfig, SplitData, augment, dialogue_index


@pytest.fixture(scope="module")
def corpus(prepared):
    return Corpus(prepared)


def _padding(batches, key, length_key):
    real = total = 0
    for b in batches:
        real += int(b[length_key].sum())
        total += b[key].shape[0] * b[key].shape[1]
    return 1 - real / total


def test_bucketing_cuts_padding(corpus):
    data = SplitData(corpus, "train", {"mel"}, DataConfig(), train=True)
    bucketed = _padding(Batches(data, 8, shuffle=True, seed=0, bucket=True), "mel", "mel_lengths")
    plain = _padding(Batches(data, 8, shuffle=True, seed=0, bucket=False), "mel", "mel_lengths")
    assert bucketed < plain / 2, (bucketed, plain)


def test_every_row_once_per_epoch_and_new_order_each_epoch(corpus):
    data = SplitData(corpus, "train", {"tokens"}, DataConfig(), train=True)
    batches = Batches(data, 5, shuffle=True, seed=1)
    epochs = [np.concatenate([b["row"].numpy() for b in batches]) for _ in range(2)]
    for rows in epochs:
        assert sorted(rows) == list(range(len(corpus.table("train"))))
    assert not np.array_equal(epochs[0], epochs[1])
    assert len(batches) == -(-len(data.rows) // 5)


def test_dialogue_batches_hold_whole_dialogues_in_order(corpus):
    data = SplitData(corpus, "dev", {"tokens"}, DataConfig(), train=False)
    table = corpus.table("dev")
    seen = []
    for b in Batches(data, 2, shuffle=False, dialogues=True):
        idx = b["dialogue_index"]
        for d in range(idx.shape[0]):
            flat = idx[d][idx[d] >= 0].numpy()
            rows = b["row"].numpy()[flat]
            assert table.dialogue_id.iloc[rows].nunique() == 1
            assert list(table.utterance_id.iloc[rows]) == sorted(table.utterance_id.iloc[rows])
            seen.append(int(table.dialogue_id.iloc[rows[0]]))
            assert (table.dialogue_id == seen[-1]).sum() == len(rows)     # the whole dialogue
    assert sorted(seen) == sorted(table.dialogue_id.unique())


def test_dialogue_index_layout():
    idx = dialogue_index(np.array([4, 4, 4, 9, 2, 2]))
    assert idx.tolist() == [[0, 1, 2], [3, -1, -1], [4, 5, -1]]


def test_missing_audio_silence_or_drop(corpus):
    table = corpus.table("dev")
    missing = np.flatnonzero(table.shard.to_numpy() < 0)
    assert len(missing) >= 1
    keep = SplitData(corpus, "dev", {"mel"}, DataConfig(missing_audio="silence"), train=False)
    b = keep.collate(missing, None)
    assert (b["mel_lengths"] == 1).all() and (b["mel"][:, 0] == -100.0).all()
    drop = SplitData(corpus, "dev", {"mel"}, DataConfig(missing_audio="drop"), train=False)
    assert len(drop.rows) == len(table) - len(missing)


def test_class_weights_favour_rare_classes(corpus):
    data = SplitData(corpus, "train", {"tokens"}, DataConfig(), train=True)
    w = data.class_weights()
    counts = np.bincount(data.labels, minlength=7)
    present = counts > 0
    assert w.shape == (7,) and torch.isclose(w.mean(), torch.tensor(1.0))
    assert w[counts.argmax()] == w[present].min()


def test_augmentation_only_touches_real_frames():
    rng = np.random.default_rng(0)
    mel = np.zeros((2, 50, 40), np.float32)
    mel[0, :30] = rng.normal(size=(30, 40))
    mel[1, :50] = rng.normal(size=(50, 40))
    before = mel.copy()
    augment(mel, np.array([30, 50]), DataConfig(noise_std=0.1, time_masks=2, freq_masks=2), rng)
    assert (mel[0, 30:] == 0).all(), "padding must stay untouched"
    assert not np.array_equal(mel[:, :30], before[:, :30])


def test_truncation(corpus):
    data = SplitData(corpus, "train", {"mel", "tokens"}, DataConfig(max_frames=7, max_tokens=3), train=False)
    b = data.collate(data.rows[:10], None)
    assert b["mel"].shape[1] <= 7 and b["tokens"].shape[1] <= 3
