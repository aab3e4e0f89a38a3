"""Plots of a final training: the confusion matrix (PNG, Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def confusion_png(cm: list[list[int]], labels: list[str], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)       # row-normalised: recall on the diagonal
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def split_report(summary: dict, split: str, prepared: str, out: Path, title: str) -> tuple[list[str], Path]:
    """A final training's result on one split: printable lines (mean +- std, per-class table) and its summed
    confusion matrix as a PNG in `out`."""
    from data_prep.reader import emotion_names, localize

    labels = emotion_names(localize(prepared))
    seeds, wf1, acc = summary["seeds"], summary[f"{split}_wf1"], summary[f"{split}_acc"]
    lines = [f"{split}: weighted F1 {wf1['mean']:.4f} +- {wf1['std']:.4f}, accuracy {acc['mean']:.4f} +- "
             f"{acc['std']:.4f} over {seeds} seed(s)",
             f"  {'class':9s} {'precision':>9s} {'recall':>7s} {'f1':>6s} {'support':>8s}"]
    pc = summary[f"{split}_per_class"]
    for i, name in enumerate(labels):
        lines.append(f"  {name:9s} {pc['precision'][i]:9.3f} {pc['recall'][i]:7.3f} {pc['f1'][i]:6.3f} "
                     f"{int(pc['support'][i]):8d}")
    png = confusion_png(summary[f"{split}_confusion"], labels, Path(out) / f"confusion_{split}.png",
                        f"{title}, {seeds} seed(s) summed")
    return lines, png
