"""An ensemble of trained models: their class probabilities averaged with integer weights.

The weights come from greedy selection with replacement on dev (Caruana et al. 2004, as AutoGluon and
auto-sklearn end): start from nothing, add the member whose addition scores best on dev, again and again, and
keep the best prefix. A member picked twice weighs twice. Selecting on dev flatters the result, so the choice is
also cross-validated: dev is cut into folds by dialogue, the selection is made on the other folds and scored on
each held-out one, and so is picking the single best member. Averaging counts as helping (`Selection.helps`) only
when its held-out predictions beat the single pick's in at least 90 % of bootstrap resamples of dev's dialogues
(paired: the same resampled utterances for both), so a small or noisy dev does not crown it by luck; with fewer
than 20 dev dialogues there is too little to resample, and one model stays the answer. The
in-sample dev score is what the chosen ensemble scores (and what predict reproduces).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROUNDS = 20          # picks, at most; the best prefix is kept
FOLDS = 5
RESAMPLES = 1000     # bootstrap resamples of dev's dialogues
SURE = 0.9           # the share of resamples averaging must win to be the answer
MIN_DIALOGUES = 20   # fewer dev dialogues than this: too few to resample, so one model stays the answer


@dataclass
class Outputs:
    """One model's class probabilities on a split, rows in table order, with the labels."""
    probs: np.ndarray
    labels: np.ndarray
    dialogues: np.ndarray


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def outputs(checkpoint: str | Path, splits: tuple[str, ...]) -> dict[str, Outputs]:
    """A trained model's probabilities on each split it can read, as evaluation computes them."""
    from mer_search.training.features import trained_model
    from mer_search.training.inputs import make_batches
    from mer_search.training.train import predict

    model, data, model_cfg, corpus = trained_model(checkpoint)
    out = {}
    for split in splits:
        if split not in corpus.splits:
            continue
        res = predict(model, make_batches(corpus, split, model_cfg, data, False, 0))
        order = np.argsort(res["row"], kind="stable")
        table = corpus.table(split)
        out[split] = Outputs(softmax(res["logits"][order].astype(np.float64)), np.asarray(res["labels"])[order],
                             table.dialogue_id.to_numpy()[np.asarray(res["row"])[order]])
    return out


def average(probs: list[np.ndarray], weights: list[int]) -> np.ndarray:
    """The weighted mean, summed in member order (predict sums the same way: the same floats)."""
    total = np.zeros_like(probs[0])
    for p, w in zip(probs, weights):
        if w:
            total += w * p
    return total / sum(weights)


def _wf1(labels: np.ndarray, probs: np.ndarray) -> float:
    from mer_search.training.train import f1_scores

    return f1_scores(labels, probs.argmax(1), probs.shape[1])[1]


def greedy(probs: list[np.ndarray], labels: np.ndarray, rounds: int = ROUNDS) -> tuple[list[int], float]:
    """Integer weights by greedy selection with replacement; the first pick is the best single member, a tie
    goes to the earlier member, and the best prefix is kept."""
    counts, total = [0] * len(probs), np.zeros_like(probs[0])
    best, best_counts = -1.0, None
    for r in range(1, rounds + 1):
        scores = [_wf1(labels, (total + p) / r) for p in probs]
        j = int(np.argmax(scores))
        counts[j] += 1
        total = total + probs[j]
        if scores[j] > best + 1e-12:
            best, best_counts = scores[j], list(counts)
    return best_counts, best


def cross_validated(probs: list[np.ndarray], labels: np.ndarray, dialogues: np.ndarray, rounds: int,
                    folds: int = FOLDS) -> np.ndarray:
    """Each dev row's probabilities from the selection made without its fold (folds by dialogue)."""
    ids = np.unique(dialogues)
    fold_of = {d: i % folds for i, d in enumerate(np.random.default_rng(0).permutation(ids))}
    fold = np.array([fold_of[d] for d in dialogues])
    held = np.zeros_like(probs[0])
    for k in range(folds):
        test, fit = fold == k, fold != k
        if not test.any():
            continue
        weights, _ = greedy([p[fit] for p in probs], labels[fit], rounds)
        held[test] = average([p[test] for p in probs], weights)
    return held


def paired_wins(a: np.ndarray, b: np.ndarray, labels: np.ndarray, dialogues: np.ndarray,
                resamples: int = RESAMPLES) -> float:
    """The share of bootstrap resamples of the dialogues in which predictions `a` score a higher weighted F1
    than `b` on the same resampled rows."""
    rng = np.random.default_rng(0)
    ids, index = np.unique(dialogues, return_inverse=True)
    rows = [np.flatnonzero(index == i) for i in range(len(ids))]
    wins = 0
    for _ in range(resamples):
        pick = np.concatenate([rows[i] for i in rng.integers(0, len(ids), len(ids))])
        wins += _wf1(labels[pick], a[pick]) > _wf1(labels[pick], b[pick])
    return wins / resamples


@dataclass
class Selection:
    weights: list[int]              # per member, in member order
    dev: float                      # the chosen ensemble on all of dev (in sample)
    cv: float                       # the selection, cross-validated over dev folds
    cv_single: float                # picking one member, cross-validated the same way
    sure: float                     # the share of dev resamples where the first beat the second
    dialogues: int                  # in dev

    @property
    def helps(self) -> bool:
        """Averaging beats picking one member on dev folds the choice did not see, in >= 90 % of resamples of
        at least MIN_DIALOGUES dev dialogues."""
        return sum(1 for w in self.weights if w) > 1 and self.cv > self.cv_single and self.sure >= SURE \
            and self.dialogues >= MIN_DIALOGUES


def select(members: list[Outputs], rounds: int = ROUNDS) -> Selection:
    probs = [m.probs for m in members]
    labels, dialogues = members[0].labels, members[0].dialogues
    weights, dev = greedy(probs, labels, rounds)
    held = cross_validated(probs, labels, dialogues, rounds)
    single = cross_validated(probs, labels, dialogues, 1)
    return Selection(weights, dev, _wf1(labels, held), _wf1(labels, single),
                     paired_wins(held, single, labels, dialogues), len(np.unique(dialogues)))
