"""Pure PyTorch training: fit(model, train, dev, cfg, reporter) -> history. Never imports ray.

The search plugs in its own reporter; the CLI uses the console one.
"""

from __future__ import annotations

import copy
import errno
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Protocol

import numpy as np
import torch
from torch import nn

from mer_search.core.config_io import COUNT, NATURAL, POSITIVE, Range
from mer_search.core.dirs import RunDir
from mer_search.core.errors import ConfigError
from mer_search.core.metrics import better, mode_of

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 30
    lr: float = 1e-3                   # a fine-tuned encoder: its top layer's lr
    optimizer: str = "adam"            # adam | adamw (fused where the device supports it)
    weight_decay: float = 0.0
    schedule: str = "none"             # none | cosine | plateau | linear (warmup, then linear decay per step)
    warmup_ratio: float = 0.0          # linear: share of all steps spent warming up from 0
    schedule_epochs: int = 0           # cosine/linear are planned over this many epochs; 0 = epochs
    head_lr: float | None = None       # models with param_groups (fine-tuned encoders): the head's lr
    layer_decay: float = 1.0           # ... and each encoder layer below the top at this times the one above
    label_smoothing: float = 0.0
    grad_accum: int = 1                # batches per optimizer step
    grad_clip: float = 1.0             # max gradient norm; 0 = off
    patience: int = 5                  # epochs without dev improvement before stopping; 0 = never
    metric: str = "dev_wf1"            # dev_wf1 | dev_mf1 | dev_acc | dev_loss
    seed: int = 0
    device: str = "auto"               # auto | cpu | cuda
    threads: int = 0                   # torch CPU threads of a final training: 0 = the CPUs it may run on
    amp: bool = True                   # mixed precision on CUDA (bf16 where supported, else fp16 + scaling)
    class_weights: list[float] | None = None
    evals_per_epoch: int = 1           # dev evaluations (and reports) an epoch: >1 lets a search judge a trial
                                       # part-way through a long epoch; only epoch ends select and checkpoint


# where each numeric setting makes sense (checked with the types: `FILE: train.lr: -0.01 must be > 0`)
TRAIN_RANGES = {"epochs": COUNT, "lr": POSITIVE, "weight_decay": NATURAL, "warmup_ratio": Range(0, 1, high_open=True),
                "schedule_epochs": NATURAL, "head_lr": POSITIVE, "layer_decay": Range(0, 1, low_open=True),
                "label_smoothing": Range(0, 1, high_open=True), "grad_accum": COUNT, "grad_clip": NATURAL,
                "patience": NATURAL, "seed": NATURAL, "threads": NATURAL, "evals_per_epoch": COUNT}


class Reporter(Protocol):
    """`epoch` is training progress: whole at an epoch's end, fractional (1.25) at an evaluation inside one."""
    def report(self, epoch: float, metrics: dict[str, float]) -> None: ...


class NullReporter:
    def report(self, epoch: float, metrics: dict[str, float]) -> None:
        pass


class ConsoleReporter:
    def report(self, epoch: float, metrics: dict[str, float]) -> None:
        at = f"{epoch:5.2f}" if epoch != int(epoch) else f"{int(epoch):3d}"
        if "dev_loss" not in metrics:      # trained on dev too: nothing held out to show
            log.info("epoch %s  train loss %.4f  (%.1f s)", at, metrics["train_loss"], metrics["epoch_s"])
            return
        log.info("epoch %s  train loss %.4f  dev loss %.4f  dev acc %.4f  dev wF1 %.4f  (%.1f s)", at,
                 metrics["train_loss"], metrics["dev_loss"], metrics["dev_acc"], metrics["dev_wf1"],
                 metrics["epoch_s"])


class EpochProgress:
    """Progress inside a long epoch (a fine-tuning epoch takes minutes on a CPU): a bar on a terminal, and a
    log line every ~10 % of the batches elsewhere (trial logs, CI), with utterances/s and the time left."""

    def __init__(self, epoch: int, batches: int, min_epoch_s: float = 20.0):
        import sys

        self.epoch, self.batches, self.done, self.utts = epoch, batches, 0, 0
        self.t0 = time.perf_counter()
        self.next_line = max(1, batches // 10)
        self.min_epoch_s = min_epoch_s       # short epochs (most models) stay quiet
        self.bar = None
        if batches > 1 and sys.stderr.isatty() and log.isEnabledFor(logging.INFO):
            from tqdm import tqdm

            self.bar = tqdm(total=batches, desc=f"epoch {epoch}", unit="batch", leave=False, dynamic_ncols=True)

    def step(self, utterances: int) -> None:
        self.done += 1
        self.utts += utterances
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{self.rate():.0f} utt/s", refresh=False)
            return
        if self.done >= self.next_line and self.done < self.batches:
            self.next_line += max(1, self.batches // 10)
            elapsed = time.perf_counter() - self.t0
            eta = elapsed / self.done * (self.batches - self.done)
            if elapsed + eta >= self.min_epoch_s:
                log.info("epoch %d: %d/%d batches (%d%%), %.0f utt/s, %s left", self.epoch, self.done,
                         self.batches, 100 * self.done // self.batches, self.rate(), clock(eta))

    def rate(self) -> float:
        return self.utts / max(time.perf_counter() - self.t0, 1e-9)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def clock(seconds: float) -> str:
    """A duration as people read it: 45s, 12m03s, 2h05m."""
    h, rest = divmod(int(round(seconds)), 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)
    inside: list[dict] = field(default_factory=list)      # evaluations inside epochs (evals_per_epoch > 1)
    best_epoch: int = 0
    best: dict = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pin_threads(n: int = 0) -> int:
    """Fix torch's CPU threads for this process: `n`, or (0) as many as the CPUs it may run on, and a single
    inter-op thread. A trial pins to its CPU share, a final training to its own setting: left to torch's
    defaults, two torch processes on 2 cores oversubscribe them (one ran 5x slower beside another)."""
    if n <= 0:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:        # settable once, before any inter-op work: already fixed in this process
        pass
    return n


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        log.warning("device cuda requested, but this machine has no CUDA device: training on the CPU")
        return torch.device("cpu")
    return torch.device(name)


def to_device(batch: dict, device: torch.device) -> dict:
    """Onto the device; to a GPU through pinned memory, so the copy runs beside the work already queued."""
    if device.type == "cuda":
        return {k: (v.pin_memory() if v.device.type == "cpu" else v).to(device, non_blocking=True)
                if torch.is_tensor(v) else v for k, v in batch.items()}
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def confusion(labels: np.ndarray, preds: np.ndarray, n: int = 0) -> np.ndarray:
    """(n, n) counts: rows are true classes, columns predicted (n grows to fit any larger label)."""
    labels, preds = np.asarray(labels, np.int64), np.asarray(preds, np.int64)
    n = max(n, int(labels.max(initial=-1)) + 1, int(preds.max(initial=-1)) + 1)
    return np.bincount(labels * n + preds, minlength=n * n).reshape(n, n)


def _f1(cm: np.ndarray) -> tuple[np.ndarray, float, float]:
    n = len(cm)
    tp, support, predicted = np.diag(cm).astype(float), cm.sum(1), cm.sum(0)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros(n), where=denom > 0)
    weighted = float((f1 * support).sum() / support.sum()) if support.sum() else 0.0
    macro = float(f1[denom > 0].mean()) if (denom > 0).any() else 0.0
    return f1, weighted, macro


def f1_scores(labels: np.ndarray, preds: np.ndarray, n: int = 0) -> tuple[np.ndarray, float, float]:
    """Per-class, weighted and macro F1 exactly as sklearn's f1_score(zero_division=0) computes them
    (tested against it); numpy alone, so trial workers skip importing sklearn (~0.8 s each)."""
    return _f1(confusion(labels, preds, n))


def per_class(labels: np.ndarray, preds: np.ndarray, n: int) -> dict[str, list[float]]:
    """Precision, recall, F1 and support per class (zero where undefined, as sklearn's zero_division=0)."""
    cm = confusion(labels, preds, n)
    tp, support, predicted = np.diag(cm).astype(float), cm.sum(1), cm.sum(0)
    f1, _, _ = _f1(cm)
    m = len(cm)
    return {"precision": np.divide(tp, predicted, out=np.zeros(m), where=predicted > 0)[:n].tolist(),
            "recall": np.divide(tp, support, out=np.zeros(m), where=support > 0)[:n].tolist(),
            "f1": f1[:n].tolist(), "support": support[:n].tolist()}


def metrics_from(labels: np.ndarray, preds: np.ndarray, loss: float, prefix: str, n: int,
                 exclude: int | None = None) -> dict[str, float]:
    """Loss, accuracy, weighted and macro F1 and per-class F1 over `n` classes (a model's logits width); with
    `exclude` (a dataset scored as DailyDialog is), micro F1 over the other classes too ({prefix}_microf1)."""
    cm = confusion(labels, preds, n)
    per, weighted, macro = _f1(cm)
    out = {f"{prefix}_loss": loss, f"{prefix}_acc": float(np.mean(np.asarray(labels) == np.asarray(preds))),
           f"{prefix}_wf1": weighted, f"{prefix}_mf1": macro}
    out.update({f"{prefix}_f1_{i}": float(v) for i, v in enumerate(per[:n])})
    if exclude is not None:
        out[f"{prefix}_microf1"] = micro_f1_excluding(cm, exclude)
    return out


def micro_f1_excluding(cm: np.ndarray, exclude: int) -> float:
    """Micro F1 over every class but `exclude`: its true positives over the others' predictions (precision)
    and over the others' true rows (recall), as sklearn's f1_score(average="micro", labels=others) counts."""
    keep = np.arange(len(cm)) != exclude
    tp = float(np.diag(cm)[keep].sum())
    predicted, actual = float(cm[:, keep].sum()), float(cm[keep, :].sum())
    return 2 * tp / (predicted + actual) if predicted + actual else 0.0


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable[dict], device: torch.device | None = None,
            with_features: bool = False) -> dict[str, np.ndarray]:
    """Logits (and features) for every row the batches cover, in table-row order."""
    device = device or next(model.parameters()).device
    model.eval()
    rows, logits, labels, feats = [], [], [], []
    for batch in batches:
        b = to_device(batch, device)
        z = model.features(b) if with_features else None
        out = (model.logits(z) if hasattr(model, "logits") else model.head(z)) if z is not None else model(b)
        rows.append(batch["row"].numpy())
        labels.append(batch["labels"].numpy())
        logits.append(out.float().cpu().numpy())
        if z is not None:
            feats.append(z.float().cpu().numpy())
    order = np.argsort(np.concatenate(rows), kind="stable")
    res = {"row": np.concatenate(rows)[order], "logits": np.concatenate(logits)[order],
           "labels": np.concatenate(labels)[order],
           "exclude": getattr(batches, "metric_exclude", None)}      # the dataset's micro-F1 leaves it out
    if with_features:
        res["features"] = np.concatenate(feats)[order]
    return res


def score(res: dict[str, np.ndarray], prefix: str = "dev", loss_fn: nn.Module | None = None) -> dict[str, float]:
    """Loss and metrics of `predict`'s output."""
    loss = float((loss_fn or nn.CrossEntropyLoss())(torch.from_numpy(res["logits"]), torch.from_numpy(res["labels"])))
    return metrics_from(res["labels"], res["logits"].argmax(1), loss, prefix, res["logits"].shape[1],
                        res.get("exclude"))


def evaluate(model: nn.Module, batches: Iterable[dict], prefix: str = "dev",
             loss_fn: nn.Module | None = None) -> dict[str, float]:
    return score(predict(model, batches), prefix, loss_fn)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if hasattr(model, "param_groups"):     # per-layer lrs (fine-tuned encoders)
        params = model.param_groups(cfg.lr, cfg.head_lr, cfg.layer_decay, cfg.weight_decay)
    else:
        params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        # fused: one kernel for all parameters; on a 2-core CPU the default step took ~2 s for MiniLM's 22M
        # parameters, the fused one ~0.05 s (bench/RESULTS.md, "Fine-tuned MiniLM")
        try:
            return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        except (RuntimeError, ValueError):
            return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; valid: adam, adamw")


def _schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """The lr schedule, and whether it steps per optimizer step (linear) rather than per epoch."""
    planned = cfg.schedule_epochs or cfg.epochs
    if cfg.warmup_ratio and cfg.schedule != "linear":
        raise ConfigError(f"train.warmup_ratio needs train.schedule linear (not {cfg.schedule!r})")
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, planned)), False
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode_of(cfg.metric),
                                                          factor=0.5, patience=max(1, cfg.patience // 2)), False
    if cfg.schedule == "linear":
        total = max(1, planned * steps_per_epoch)
        warmup = int(cfg.warmup_ratio * total)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total - step) / max(1, total - warmup))

        return torch.optim.lr_scheduler.LambdaLR(opt, factor), True
    if cfg.schedule != "none":
        raise ConfigError(f"unknown schedule {cfg.schedule!r}; valid: none, cosine, plateau, linear")
    return None, False


def _better(metric: str, new: float, old: float | None) -> bool:
    return better(new, old, mode_of(metric))


def fit(model: nn.Module, train: Iterable[dict], dev: Iterable[dict] | None, cfg: TrainConfig,
        reporter: Reporter | None = None, checkpoint: "CheckpointWriter | None" = None,
        start_epoch: int = 1, resume: dict | None = None) -> History:
    """Train with early stopping on cfg.metric; the model ends holding its best dev weights.
    With dev=None (dev is part of the training data) there is nothing to select on: the last epoch is kept.
    Each epoch's shuffling and dropout are seeded by (seed, epoch), and `resume` (a checkpoint payload) restores
    the optimizer, schedule and early-stopping state: a resumed run continues exactly as an unbroken one."""
    if dev is None and (cfg.schedule == "plateau" or cfg.patience):
        raise ConfigError("without held-out dev data, use a fixed epoch count: train.patience 0 and no plateau "
                          "schedule")
    seed_everything(cfg.seed)
    reporter = reporter or NullReporter()
    device = pick_device(cfg.device)
    model.to(device)
    opt = _optimizer(model, cfg)
    accum = max(1, int(cfg.grad_accum))
    steps_per_epoch = -(-len(train) // accum) if hasattr(train, "__len__") else 1
    sched, per_step = _schedule(opt, cfg, steps_per_epoch)
    weights = torch.tensor(cfg.class_weights, dtype=torch.float32, device=device) if cfg.class_weights else None
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    history = History()
    best_state, best_value, stale = None, None, 0
    if resume:
        start_epoch = int(resume["epoch"]) + 1
        if resume.get("optimizer"):
            opt.load_state_dict(resume["optimizer"])
        if sched is not None and resume.get("scheduler"):
            sched.load_state_dict(resume["scheduler"])
        best_value, stale = resume.get("best_value"), int(resume.get("stale", 0))
    if dev is not None and not resume and getattr(model, "keeps_its_start", False):
        best_value, best_state, history.best = _start(model, dev, cfg.metric)     # the "epoch 0" to beat
        if checkpoint is not None:
            checkpoint.save(model, 0, history.best, best=True, state=_resume_state(opt, sched, best_value, 0))
    for epoch in range(start_epoch, cfg.epochs + 1):
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)      # dropout etc.: the same whether resumed or not
        if hasattr(train, "set_epoch"):
            train.set_epoch(epoch)
        t0 = time.perf_counter()
        model.train()
        total, count, wait = 0.0, 0, 0.0
        t_fetch = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        pending = 0
        n_batches = len(train) if hasattr(train, "__len__") else 0
        evals_at = _evals_inside(n_batches, cfg.evals_per_epoch) if dev is not None else {}
        progress = EpochProgress(epoch, n_batches)
        for i, batch in enumerate(train, 1):
            wait += time.perf_counter() - t_fetch
            b = to_device(batch, device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss = loss_fn(model(b).float(), b["labels"])
            scaler.scale(loss / accum).backward()
            pending += 1
            if pending == accum:
                _step(model, opt, scaler, sched if per_step else None, cfg.grad_clip)
                pending = 0
            total += float(loss.detach()) * len(batch["labels"])
            count += len(batch["labels"])
            progress.step(len(batch["labels"]))
            if i in evals_at:       # part-way: reported, not selected on (the epoch's end does that)
                at = epoch - 1 + evals_at[i]
                inside = {"epoch": at, "train_loss": total / max(count, 1),
                          **evaluate(model, dev, "dev", nn.CrossEntropyLoss()),
                          "epoch_s": time.perf_counter() - t0, "lr": opt.param_groups[0]["lr"]}
                model.train()
                history.inside.append(inside)
                reporter.report(at, inside)
            t_fetch = time.perf_counter()
        progress.close()
        if pending:         # the epoch's last, partial accumulation
            _step(model, opt, scaler, sched if per_step else None, cfg.grad_clip)
        train_s = time.perf_counter() - t0
        if not math.isfinite(total):
            raise FloatingPointError(f"training loss became {total} at epoch {epoch}; lower lr or clip gradients")
        metrics = {"epoch": epoch, "train_loss": total / max(count, 1)}
        if dev is not None:
            metrics.update(evaluate(model, dev, "dev", nn.CrossEntropyLoss()))
        metrics["epoch_s"] = time.perf_counter() - t0
        metrics["train_s"] = train_s
        metrics["train_utt_per_s"] = count / max(train_s, 1e-9)
        metrics["data_wait_share"] = wait / max(train_s, 1e-9)      # of the training loop's time
        metrics["lr"] = opt.param_groups[0]["lr"]
        if device.type == "cuda":       # what --gpus-per-trial auto plans the next trials of this family with
            metrics["gpu_peak_mb"] = torch.cuda.max_memory_reserved(device) / 2**20
        history.epochs.append(metrics)
        value = metrics[cfg.metric] if dev is not None else None
        improved = dev is None or _better(cfg.metric, value, best_value)
        if improved:
            best_value, stale = value, 0
            best_state = copy.deepcopy(model.state_dict())
            history.best_epoch, history.best = epoch, dict(metrics)
        else:
            stale += 1
        if sched is not None and not per_step:
            sched.step(value) if cfg.schedule == "plateau" else sched.step()
        if checkpoint is not None:
            checkpoint.save(model, epoch, metrics, best=improved,
                            state=_resume_state(opt, sched, best_value, stale))
        reporter.report(epoch, metrics)
        if cfg.patience and stale >= cfg.patience:
            log.info("early stop at epoch %d: no %s improvement for %d epochs", epoch, cfg.metric, stale)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def _resume_state(opt, sched, best_value: float | None, stale: int) -> dict:
    """What a checkpoint carries for training to resume exactly: optimizer, schedule, early-stopping state."""
    return {"optimizer": opt.state_dict(), "best_value": best_value, "stale": stale,
            "scheduler": sched.state_dict() if sched is not None else None}


def _start(model: nn.Module, dev, metric: str) -> tuple[float, dict, dict]:
    """A model that starts as a trained answer (a residual fusion: its better input) is scored before training;
    an epoch must beat that on dev to replace it, so training cannot leave it worse than where it began."""
    metrics = {"epoch": 0, **evaluate(model, dev, "dev", nn.CrossEntropyLoss())}
    log.info("epoch 0 (the start, kept unless an epoch beats it): %s %.4f", metric, metrics[metric])
    return metrics[metric], copy.deepcopy(model.state_dict()), metrics


def _evals_inside(n_batches: int, per_epoch: int) -> dict[int, float]:
    """{batch number: epoch fraction} of the evaluations inside an epoch (its end is always one)."""
    if per_epoch <= 1 or n_batches < per_epoch:
        return {}
    return {round(k * n_batches / per_epoch): k / per_epoch for k in range(1, per_epoch)}


def _step(model: nn.Module, opt, scaler, sched, grad_clip: float) -> None:
    if grad_clip > 0:
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(opt)
    scaler.update()
    opt.zero_grad(set_to_none=True)
    if sched is not None:
        sched.step()


class CheckpointWriter:
    """Writes the last epoch's checkpoint every epoch and the best one on improvement (RunDir names them):
    state_dict + config + vocab hash. Only the last carries the optimizer state (resume reads it): for a
    fine-tuned encoder AdamW's moments are twice the weights, so the best stays a third of the last's size."""

    def __init__(self, directory: str | Path, config: dict, vocab_hash: str):
        self.dir = Path(directory)
        self.config, self.vocab_hash = config, vocab_hash

    def save(self, model: nn.Module, epoch: int, metrics: dict, best: bool, state: dict | None = None) -> None:
        """state: optimizer, schedule and early-stopping state, so that training can resume exactly."""
        weights = {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                   "config": self.config, "vocab_hash": self.vocab_hash, "epoch": epoch,
                   "metrics": {k: float(v) for k, v in metrics.items()}}
        self.dir.mkdir(parents=True, exist_ok=True)
        run = RunDir(self.dir)
        files = {run.last: {**weights, **_to_cpu(state or {})}}
        if best:
            files[run.best] = weights
        for path, payload in files.items():
            tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
            try:
                torch.save(payload, tmp)
                tmp.replace(path)
            except RuntimeError as e:       # torch's zip writer reports a full disk as a RuntimeError
                if shutil.disk_usage(self.dir).free >= FULL_DISK_BYTES:
                    raise
                raise OSError(errno.ENOSPC, f"No space left on device writing a checkpoint ({e})".splitlines()[0],
                              str(path)) from None
            finally:
                tmp.unlink(missing_ok=True)


FULL_DISK_BYTES = 64 << 20     # a save that fails with less free than this: the disk is full


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint as plain data; never unpickles code (weights_only=True)."""
    return torch.load(path, map_location="cpu", weights_only=True)
