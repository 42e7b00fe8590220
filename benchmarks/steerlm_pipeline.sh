#!/bin/bash
# The whole SteerLM pipeline on the default model, each step timed (seconds in $R/times.txt).
# Run: bash benchmarks/steerlm_pipeline.sh [results/steerlm]
# The annotation samples under four LM-Steer variants (sentiment ±6, toxicity ±4) to widen the
# attribute spread; set SENTIMENT_STEER / TOXICITY_STEER to reuse trained steers (each ~17 min).
# Greedy samples (--temperature 0) and SFT on contrast pairs at lr 2e-3 are the setting that made
# the verbosity knob work (experiments/steerlm/session5_experiments.md); T 0.8 samples and
# SFT on every record did not move any knob.
set -euo pipefail
R=${1:-results/steerlm}
S=${STEERLAB:-.venv/bin/steerlab}
mkdir -p "$R"
t() { local name=$1; shift; /usr/bin/time -f "$name %e" -a -o "$R/times.txt" "$@"; }
SENT=${SENTIMENT_STEER:-$R/lmsteer-sentiment}
TOX=${TOXICITY_STEER:-$R/lmsteer-toxicity}
[ -d "$SENT" ] || t lmsteer-sentiment $S train lm-steer --data rt-sentiment --out "$SENT"
[ -d "$TOX" ] || t lmsteer-toxicity $S train lm-steer --data tweets-toxicity --out "$TOX"
[ -d "$R/value-model" ] || t train-value $S steerlm train-value --out "$R/value-model"
t annotate $S steerlm annotate --overwrite --value-model "$R/value-model" --out "$R/data" --samples 5 --max-per-topic 10 \
  --temperature 0 --vary "$SENT=6" --vary "$SENT=-6" --vary "$TOX=4" --vary "$TOX=-4"
t sft $S steerlm sft --overwrite --data "$R/data/annotated.v2t.jsonl" --out "$R/steerlm-r1" --contrast-gap 2 --lr 2e-3
t bootstrap $S steerlm bootstrap --overwrite --adapter "$R/steerlm-r1" --value-model "$R/value-model" \
  --data "$R/data/annotated.v2t.jsonl" --out "$R/steerlm-r2" --max-per-topic 10 --samples 2 --lr 2e-3
t eval $S steerlm eval --overwrite --adapter "$R/steerlm-r1" --adapter "$R/steerlm-r2" --value-model "$R/value-model" \
  --out "$R/control" --n-prompts 8 --samples 2
