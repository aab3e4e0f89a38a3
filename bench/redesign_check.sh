#!/usr/bin/env bash
# Behaviour unchanged by a redesign: COMMIT (default 01098ae, before issue 32) and this checkout, same seeds,
# one run at a time:
#   1. the demo's summary table (40 dialogues, budget tiny, seed 0), diffed;
#   2. a real-MELD text sweep's ranked table (text_mlp, 8 trials x <= 4 epochs, one at a time, seed 0), diffed
#      (with trials side by side, asynchronous ASHA decides on results in the order they arrive: a version
#      differs from itself there);
#   3. COMMIT's pipeline dir rerun in place by this checkout (every step but prepare skipped, the summary
#      unchanged) and COMMIT's bundle predicting the demo's test split (its card's score).
#     bash bench/redesign_check.sh [COMMIT] [MELD_DIR]     (about 6 minutes on 2 cores; works in /tmp/redesign)
# The other must-show, an interrupted sweep of COMMIT resumed here: bash bench/old_plan_resume.sh COMMIT
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
OLD=${1:-01098ae}
MELD=${2:-$REPO/../shared/meld}
W=/tmp/redesign
. "$REPO/bench/sides.sh"
cd $W && rm -rf demo_* sweep_* report_* prepared pred.csv
for v in old new; do
  start=$(date +%s)
  side $v demo --out $W/demo_$v > $W/demo_$v.log 2>&1
  echo "$v demo: exit $?, $(( $(date +%s) - start )) s"
done
diff <(grep '^|' $W/demo_old/summary.md) <(grep '^|' $W/demo_new/summary.md) && echo "1. demo tables: identical"
side new prepare --corpus "$MELD" --out $W/prepared --splits train,dev --text-only > $W/prepare.log 2>&1
for v in old new; do
  side $v sweep text_mlp --prepared $W/prepared --out $W/sweep_$v --num-samples 8 --max-epochs 4 \
      --max-concurrent 1 --wandb disabled --seed 0 > $W/sweep_$v.log 2>&1    # one at a time: results in order
  side new report $W/sweep_$v --rows 8 | grep -v '^report:' | awk 'NR > 1 {$2 = ""} {print}' > $W/report_$v.txt
done
diff $W/report_old.txt $W/report_new.txt && echo "2. real-MELD sweep ranked tables: identical but Ray's trial ids" \
    && cat $W/report_new.txt
cp $W/demo_old/summary.md $W/summary_before_rerun.md
side new demo --out $W/demo_old > $W/rerun.log 2>&1; echo "3. rerun of $OLD's pipeline dir: exit $?," \
    "$(grep -c 'done before, skipped' $W/rerun.log) steps skipped, run: $(grep -o '\[pipeline\] [a-z ]* \.\.\.$' $W/rerun.log | tr '\n' ' ')"
# (a rerun says why the text space is what it is as "auto, chosen when its sweep started", as COMMIT's does)
diff <(grep -v '^- text:' $W/summary_before_rerun.md) <(grep -v '^- text:' $W/demo_old/summary.md) \
    && echo "   its summary: unchanged (the text space's reason aside: $(grep -o '^- text: text_any ([^)]*)' $W/demo_old/summary.md))"
side new predict $W/demo_old/bundle --csv $W/demo_old/corpus/test_sent_emo.csv --corpus $W/demo_old/corpus \
    --out $W/pred.csv | tail -1
echo "   the bundle's card: $(grep -o 'this model (seed [0-9]*), test [0-9.]*' $W/demo_old/summary.md)"
