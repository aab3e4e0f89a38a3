#!/usr/bin/env bash
# A sweep started by an older mer-search (default: 0ca425f, the last commit before the typed, versioned plan;
# bfb481c: the last before SweepDir, SearchSettings and Param),
# SIGKILLed mid-run, then resumed, exported and reported by this checkout's mer-search:
#     bash bench/old_plan_resume.sh [COMMIT]      (about a minute; works in /tmp/oldcheck)
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
OLD=${1:-0ca425f}
mkdir -p /tmp/oldcheck && cd /tmp/oldcheck
rm -rf old sweep prepared corpus space.yaml
git -C "$REPO" worktree remove --force /tmp/oldcheck/old 2>/dev/null
git -C "$REPO" worktree prune
git -C "$REPO" worktree add -q /tmp/oldcheck/old "$OLD"
PY=$REPO/.venv/bin/python
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0
$PY -c "
from data_prep.synth import SynthConfig, synthesize
from data_prep.prepare import PrepareOptions, prepare
from pathlib import Path as P; synthesize(P('corpus'), SynthConfig(dialogues=12, seed=3)); prepare(PrepareOptions(meld_root=P('corpus'), out=P('prepared'), text_only=True))"
cat > space.yaml <<'Y'
# mer-search sweep space.yaml --prepared prepared
search: {metric: dev_wf1, mode: max, max_epochs: 6, grace_period: 1, reduction_factor: 2, num_samples: 8, sampler: tpe}
fixed: {model.name: text_mlp, data.batch_size: 4}
params:
  model.emb_dim: {type: int, low: 8, high: 32}
  train.lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
Y
t0=$(date +%s)
(cd /tmp/oldcheck && PYTHONPATH=/tmp/oldcheck/old $PY -m mer_search.cli sweep space.yaml --prepared prepared --out sweep --wandb offline > old.log 2>&1) &
pid=$!
# kill the old driver once it has recorded some rung results
for i in $(seq 1 600); do
  n=$($PY -c "import json;d=json.load(open('sweep/asha_rungs.json'));print(sum(len(r) for b in d['brackets'] for m,r in b))" 2>/dev/null || echo 0)
  [ "${n:-0}" -ge 6 ] && break; sleep 0.2
done
pkill -9 -P $pid; pkill -9 -f "mer_search.cli sweep" ; kill -9 $pid 2>/dev/null; $PY -m ray.scripts.scripts stop --force >/dev/null 2>&1
echo "old driver killed after $(( $(date +%s) - t0 )) s with $n rung records; version in sweep.json: $($PY -c "import json;print(json.load(open('sweep/sweep.json')).get('version'))")"
ls sweep/trials.parquet 2>/dev/null && echo "ERROR: old sweep finished before the kill"
$REPO/.venv/bin/mer-search sweep --resume sweep > new.log 2>&1; echo "resume rc=$?"; tail -3 new.log
$PY - <<'P'
import json, pandas as pd
t = pd.read_parquet("sweep/trials.parquet")
print("trials", t.trial_id.nunique(), "epochs in order:", all(g.training_iteration.tolist() == list(range(1, len(g) + 1)) for _, g in t.groupby("trial_id")), "errors:", int(t.error.astype(bool).sum()))
print("plan version now", json.load(open("sweep/sweep.json")).get("version"))
P
$REPO/.venv/bin/mer-search export sweep --out best.yaml; echo "export rc=$?"
$REPO/.venv/bin/mer-search report sweep --rows 3 | tail -4; echo "report rc=${PIPESTATUS[0]}"
