#!/usr/bin/env bash
# SmolLM2 LM-Steer (sentiment) trained long, then its cards on the 100 x 4 protocol of the SmolLM2
# sentiment rows of the comparison page (paired with prompting), in one go: a machine that keeps
# nothing between sessions can run it start to end (~60 min on 2 cores: training 1,617 s, cards 940 + 895 s).
#   bash experiments/artifacts/lmsteer_long.sh [N_STEPS] [OUT]
# Same settings as the shipped 300-step `lmsteer-sentiment` (rank 128, lr 0.01, batch 16, 64 tokens,
# seed 0) but N_STEPS (default 1,200: three passes over rt-sentiment's 6,409 texts);
# --cache-states keeps the frozen model's final states after the first pass, so later passes cost
# the head only. The learning curve is in the artifact (`steerlab inspect OUT`). Times go to stdout.
set -euo pipefail
N=${1:-1200}
OUT=${2:-/tmp/lms_long}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
t=$(date +%s)
.venv/bin/steerlab train lm-steer --data rt-sentiment --out "$OUT" --name lmsteer-sentiment --rank 128 \
  --cache-states --n-steps "$N" --checkpoint-dir "$OUT.ckpt" --checkpoint-every 50 > "$OUT.train.log" 2>&1
echo "train $(( $(date +%s) - t )) s"
.venv/bin/steerlab inspect "$OUT" | grep training
# Strengths +-1..3: at 1,200 steps the transform's spectral norm is 2.5x the 300-step one's (1,090 vs
# 432), so x1 here pushes about as hard as x2.5 there.
for spec in "sentiment-negative:-s -1 -s -2 -s -3" "sentiment-positive:-s 1 -s 2 -s 3"; do
  task=${spec%%:*}
  t=$(date +%s)
  # shellcheck disable=SC2086  # the strengths are separate words
  .venv/bin/steerlab eval --artifact "$OUT" --task "$task" ${spec#*:} --n-prompts 100 --samples 4 \
    --max-new-tokens 20 --seed 0 --out "$OUT.cards/$task" > "$OUT.$task.log" 2>&1
  echo "$task $(( $(date +%s) - t )) s"
done
