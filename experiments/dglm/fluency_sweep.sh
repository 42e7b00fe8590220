#!/usr/bin/env bash
# DGLM's fluency / control trade-off on the eval tasks at generation-time settings (no retraining):
# classifier-free guidance on the prefix (cfg) and the proposal's noise (sigma2), strengths 2 / 4
# (weights 20 / 40), covariance step, same protocol as the eval cards (24 prompts x 4 samples).
#   bash experiments/dglm/fluency_sweep.sh [OUT_DIR]   (~3 min per task and setting on 2 cores)
set -euo pipefail
OUT=${1:-experiments/dglm/results/fluency}
A=src/steerlab/artifacts/dglm-smollm2
for setting in "cfg=1 sigma2=0.05" "cfg=2 sigma2=0.3" "cfg=1 sigma2=0.3"; do
  set -- $setting
  tag="$1_$2"
  for spec in "sentiment-positive sentiment:positive" "sentiment-negative sentiment:negative"; do
    read -r task guide <<< "$spec"
    echo "== $tag $task $(date +%T)"
    .venv/bin/steerlab eval --artifact $A --task "$task" --n-prompts 24 --samples 4 --opt "guide=$guide" \
      --opt "$1" --opt "$2" --strength 2 --strength 4 --no-save-card --out "$OUT/$tag/$task" \
      2>&1 | grep -E "^ (unst|prom|dglm)|×" | head -12 || true
  done
done
