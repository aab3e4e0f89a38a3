#!/usr/bin/env bash
# --gpus-per-trial auto on a machine without a GPU changes nothing: COMMIT (default 6825248, before auto) and this
# checkout, same seeds, one run at a time, each from its own tree:
#   1. the demo's summary table (40 dialogues, budget tiny, seed 0), diffed;
#   2. the README's study on real MELD text: `pipeline --text-only` (budget small, every default), diffed.
#     bash bench/gpu_auto_cpu_check.sh [COMMIT] [MELD_DIR]     (about 13 minutes on 2 cores; works in /tmp/gpuauto)
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
OLD=${1:-6825248}
MELD=${2:-$REPO/../shared/meld}
W=/tmp/gpuauto
. "$REPO/bench/sides.sh"
cd $W && rm -rf demo_* meld_*
for v in old new; do
  start=$(date +%s)
  side $v demo --out $W/demo_$v > $W/demo_$v.log 2>&1
  echo "$v demo: exit $?, $(( $(date +%s) - start )) s"
done
diff <(grep '^|' $W/demo_old/summary.md) <(grep '^|' $W/demo_new/summary.md) && echo "1. demo tables: identical"
for v in old new; do
  start=$(date +%s)
  side $v pipeline --corpus "$MELD" --out $W/meld_$v --text-only > $W/meld_$v.log 2>&1
  echo "$v pipeline --text-only on real MELD: exit $?, $(( $(date +%s) - start )) s"
done
diff <(grep '^|' $W/meld_old/summary.md) <(grep '^|' $W/meld_new/summary.md) \
    && echo "2. real-MELD pipeline tables: identical" && grep '^|' $W/meld_new/summary.md
echo "this checkout's GPU line: $(grep -- '- GPUs' $W/meld_new/summary.md)"
sides_done
