"""`--text-space auto`: which text space the hardware affords, with its cost model and the reason the
summary prints.

Fine-tuning a pretrained encoder with the dialogue in its input is the strongest text family and a GPU
workload; on CPUs it is chosen only when --time-budget covers its estimated cost.
"""

from __future__ import annotations

from pathlib import Path

# fine-tuning MiniLM with the dialogue in its input (window 3, 128 tokens) trains ~20 utterances a second per
# CPU core (41-44/s on 2 cores: bench/RESULTS.md, "Fine-tuned MiniLM"); what `auto` expects a CPU text stage
# to cost
FINETUNE_UTT_PER_CORE_S = 20.0
# the fine-tuning start point's short input (the utterance and the one after it, 96 tokens) trains faster: 9,989
# MELD train utterances in ~108 s an epoch on 2 cores (issue 34)
START_UTT_PER_CORE_S = 46.0
START_LIMIT_S = 30 * 60       # trained beside text_any when it costs at most this


def visible_gpus(address: str | None) -> float:
    """GPUs the sweeps' trials can get: the cluster's with --address (joining Ray, kept for the sweeps), else
    this machine's."""
    if address:
        from mer_search.search.sweep import Sweep

        return Sweep.cluster_gpus(address)
    import torch

    return float(torch.cuda.device_count())


def mpnet_installed() -> bool:
    """Whether all-mpnet-base-v2 is assembled here (on a cluster every node needs it: ./install.sh mpnet)."""
    from mer_search.data.encoder_cache import EncoderInstallError, installed_path

    try:
        installed_path("all-mpnet-base-v2")
        return True
    except EncoderInstallError:
        return False


def asha_epochs_per_trial(grace: float, reduction_factor: float, max_epochs: float) -> float:
    """The epochs ASHA lets a trial run on average: all reach the first rung, 1/rf of them the next ..."""
    milestones, m = [], float(grace)
    while m < max_epochs:
        milestones.append(m)
        m *= reduction_factor
    cost, prev, reached = 0.0, 0.0, 1.0
    for m in [*milestones, float(max_epochs)]:
        cost += reached * (m - prev)
        prev, reached = m, reached / reduction_factor
    return cost


def finetune_estimate_s(n_train: int, cpus: int, budget: dict, space: Path) -> float:
    """What a text_finetune stage would take on `cpus` CPU cores: its sweep (ASHA's average epochs a trial, on
    the space's share of train), the refits and the final seeds (the space's epochs each, all of train)."""
    from mer_search.core.config_io import load_yaml

    raw = load_yaml(space)
    search = raw.get("search") or {}
    epochs = int(search.get("max_epochs", 3))
    trials = budget["num_samples"] or int(search.get("num_samples", 10))
    share = float((raw.get("fixed") or {}).get("data.train_fraction", 1.0))
    per_trial = share * asha_epochs_per_trial(search.get("grace_period", 1), search.get("reduction_factor", 2), epochs)
    epoch_s = n_train / (FINETUNE_UTT_PER_CORE_S * max(1, cpus))
    return epoch_s * (per_trial * trials + (budget["refit"] + budget["seeds"]) * epochs)


def choose_text_space(gpus: float, time_budget_s: float | None, estimate_s: float,
                      mpnet: bool = False) -> tuple[str, str]:
    """Fine-tuning where the hardware affords it (with mpnet as a choice where trials get GPUs and it is
    installed), the minutes-on-a-CPU space otherwise; returns (space name, why)."""
    from mer_search.training.train import clock

    if gpus > 0 and mpnet:
        return "text_finetune_gpu", f"auto: trials get GPUs ({gpus:g} visible); MiniLM or mpnet"
    if gpus > 0:
        return "text_finetune", (f"auto: trials get GPUs ({gpus:g} visible); MiniLM only: "
                                 f"`./install.sh mpnet` adds all-mpnet-base-v2 to the search (text_finetune_gpu)")
    if time_budget_s is not None and time_budget_s >= 1.5 * estimate_s:
        return "text_finetune", (f"auto: no GPU, but --time-budget {clock(time_budget_s)} covers fine-tuning on "
                                 f"these CPUs (~{clock(estimate_s)} estimated for the text stage)")
    return "text_any", (f"auto: no GPU, and fine-tuning would take ~{clock(estimate_s)} on these CPUs (give "
                        f"--time-budget of at least {clock(1.5 * estimate_s)}, or --text-space text_finetune)")


def trial_gpus(opts) -> tuple[float, str]:
    """The GPUs the sweeps' trials get (none with --gpus-per-trial 0: not even looked for), and why."""
    asked = opts.gpus_per_trial
    if asked == 0:
        return 0.0, "--gpus-per-trial 0: every trial on CPUs"
    gpus = visible_gpus(opts.address)
    where = "the Ray cluster" if opts.address else "this machine"
    if not gpus:
        return 0.0, f"--gpus-per-trial {asked}: {where} has no GPU, so trials train on CPUs"
    if asked == "auto":
        return gpus, (f"--gpus-per-trial auto: {gpus:g} GPU(s) on {where}; each trial takes a share sized by its "
                      f"model's memory (each sweep's log lists them); final trainings, features and the bundle "
                      f"use the GPU too")
    return gpus, f"--gpus-per-trial {asked}: {gpus:g} GPU(s) on {where}"


def auto_text_space(n_train: int, opts, budget: dict, gpus: float) -> tuple[str, str]:
    """`auto` for these options, a train split of `n_train` utterances and the GPUs trials get."""
    import os

    from mer_search.pipeline.stages import space_path

    estimate = finetune_estimate_s(n_train, os.cpu_count() or 1, budget, space_path("text_finetune"))
    return choose_text_space(gpus, opts.time_budget_s, estimate, mpnet_installed() if gpus > 0 else False)


def finetune_start(n_train: int, n_all: int, cpus: int, budget_name: str) -> tuple[bool, str]:
    """Whether to train the fine-tuning start point (configs/text_finetune_short.yaml, 1 seed, 3 epochs, then its
    features for every split) beside text_any, where no fine-tuning search fits; and why."""
    from mer_search.training.train import clock

    if budget_name == "tiny":
        return False, "not at --budget tiny"
    estimate = (3 * n_train + n_all / 3) / (START_UTT_PER_CORE_S * max(1, cpus))
    if estimate > START_LIMIT_S:
        return False, f"its ~{clock(estimate)} on these CPUs is more than {clock(START_LIMIT_S)}"
    return True, (f"auto: no fine-tuning search fits these CPUs, but its start point does (text_finetune_short: the "
                  f"utterance and the one after it, 96 tokens, 3 epochs, 1 seed; ~{clock(estimate)} estimated)")
