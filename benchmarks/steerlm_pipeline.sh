#!/bin/bash
# The whole SteerLM pipeline on the default model, each step timed (seconds in $R/times.txt).
# Run: bash benchmarks/steerlm_pipeline.sh [results/steerlm]
set -euo pipefail
R=${1:-results/steerlm}
S=${STEERLAB:-.venv/bin/steerlab}
mkdir -p "$R"
t() { local name=$1; shift; /usr/bin/time -f "$name %e" -a -o "$R/times.txt" "$@"; }
t train-value $S steerlm train-value --out "$R/value-model"
t extract-vector $S extract --data sentiment --layers 9 --out "$R/sentiment-vec"
t annotate $S steerlm annotate --value-model "$R/value-model" --out "$R/data" --samples 2 --max-per-topic 15 \
  --vary "$R/sentiment-vec=4" --vary "$R/sentiment-vec=-4"
t sft $S steerlm sft --data "$R/data/annotated.v2t.jsonl" --out "$R/steerlm-r1"
t bootstrap $S steerlm bootstrap --adapter "$R/steerlm-r1" --value-model "$R/value-model" \
  --data "$R/data/annotated.v2t.jsonl" --out "$R/steerlm-r2" --max-per-topic 10 --samples 2
t eval $S steerlm eval --adapter "$R/steerlm-r1" --adapter "$R/steerlm-r2" --value-model "$R/value-model" \
  --out "$R/control" --n-prompts 8 --samples 1
