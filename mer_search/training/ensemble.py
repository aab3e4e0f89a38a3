"""An ensemble of trained models: their class probabilities averaged with integer weights.

The weights come from greedy selection with replacement on dev (Caruana et al. 2004, as AutoGluon and
auto-sklearn end): start from nothing, add the member whose addition scores best on dev, again and again, and
keep the best prefix. A member picked twice weighs twice. Selecting on dev flatters the result, so the choice is
also cross-validated: dev is cut into folds by dialogue, the selection is made on the other folds and scored on
each held-out one. That estimate, beside the same estimate for picking the single best member, says whether
averaging really helps (`Selection.helps`); the in-sample dev score is what the chosen ensemble scores (and what
predict reproduces).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROUNDS = 20          # picks, at most; the best prefix is kept
FOLDS = 5


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
    from mer_search.data.corpus import Corpus
    from mer_search.models import build_model
    from mer_search.training.config import parse
    from mer_search.training.inputs import make_batches
    from mer_search.training.train import load_checkpoint, pick_device, predict

    ck = load_checkpoint(checkpoint)
    data, model_cfg, _ = parse(ck["config"], str(checkpoint))
    corpus = Corpus(data.prepared)
    model = build_model(model_cfg)
    model.load_state_dict(ck["state_dict"])
    model.to(pick_device("auto"))
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
                    folds: int = FOLDS) -> float:
    """Dev weighted F1 of the selection made without each fold, scored on that fold (folds by dialogue)."""
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
    return _wf1(labels, held)


@dataclass
class Selection:
    weights: list[int]              # per member, in member order
    dev: float                      # the chosen ensemble on all of dev (in sample)
    cv: float                       # the selection, cross-validated over dev folds
    cv_single: float                # picking one member, cross-validated the same way

    @property
    def helps(self) -> bool:
        """Averaging beats picking one member, both estimated on dev folds the choice did not see."""
        return sum(1 for w in self.weights if w) > 1 and self.cv > self.cv_single


def select(members: list[Outputs], rounds: int = ROUNDS) -> Selection:
    probs = [m.probs for m in members]
    labels, dialogues = members[0].labels, members[0].dialogues
    weights, dev = greedy(probs, labels, rounds)
    return Selection(weights, dev, cross_validated(probs, labels, dialogues, rounds),
                     cross_validated(probs, labels, dialogues, 1))
