#!/usr/bin/env bash
# Every row of the pipeline's table, before and after issue 34 (joint context rows, the ensemble row, no repeated
# stage), on spoken corpora: the realistic synthetic corpus at two sizes and real MELD dialogues spoken by the
# synthetic voices. Each side runs from its own tree (COMMIT in a worktree; this checkout), one run at a time,
# budget small, same seeds; then, for this checkout, the ensemble's dev against the best single row's.
#     bash bench/answer_rows.sh [COMMIT] [SIZES] [MELD_DIALOGUES]   (default 61e783e "80,160" 120; ~25 min on 2 cores)
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
OLD=${1:-61e783e}
SIZES=${2:-80,160}
MELD_N=${3:-120}
W=/tmp/answer_rows
. "$REPO/bench/sides.sh"
corpora=()
for n in ${SIZES//,/ }; do
  [ -f $W/synth$n/train_sent_emo.csv ] || side new synth --out $W/synth$n --dialogues $n --seed 13 > /dev/null
  corpora+=(synth$n)
done
if [ -f "$REPO/../shared/meld/train_sent_emo.csv" ] && [ "$MELD_N" != 0 ]; then
  [ -f $W/meld$MELD_N/train_sent_emo.csv ] || side new synth --out $W/meld$MELD_N --dialogues $MELD_N --seed 13 \
      --text-from "$REPO/../shared/meld" > /dev/null
  corpora+=(meld$MELD_N)
fi
for c in "${corpora[@]}"; do
  for v in old new; do
    rm -rf $W/${c}_$v
    start=$(date +%s)
    side $v pipeline --corpus $W/$c --out $W/${c}_$v --wandb disabled > $W/${c}_$v.log 2>&1
    echo "## $c, $v ($( [ $v = old ] && echo $OLD || git -C "$REPO" rev-parse --short HEAD)): exit $?, $(( $(date +%s) - start )) s"
    grep '^|' $W/${c}_$v/summary.md
    grep '^best (chosen on dev)' $W/${c}_$v/summary.md | cut -c1-200
  done
  $PY - $W/${c}_new <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = {p.parent.name: json.loads(p.read_text())["dev_wf1"]["mean"] for p in (out / "final").glob("*/summary.json")
        if p.parent.name != "speech_floor"}
e = json.loads((out / "ensemble.json").read_text())
best = max(rows, key=rows.get)
print(f"ensemble dev {e['dev_wf1']:.4f} (cross-validated {e['cv']:.4f}, one model {e['cv_single']:.4f}) vs best "
      f"single row {best} {rows[best]:.4f}: {'>=' if e['dev_wf1'] >= rows[best] else 'BELOW'}; "
      f"the answer: {'ensemble' if e['helps'] else best}")
PY
done
sides_done
