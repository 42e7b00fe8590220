#!/bin/bash
# SteerLM at GPU scale: the same verbs as steerlm_pipeline.sh with ~10x the data and steps.
# Run:  STEERLAB_DEVICE=cuda STEERLAB_GEN_BATCH=192 VALUE_MODEL=vm/ SENTIMENT_STEER=rt/ \
#       TOXICITY_STEER=tox/ HUMOR_STEER=humor/ bash benchmarks/steerlm_gpu.sh R PHASE
# PHASE (each resumable, each writing under R): data | sft | eval1 | boot | all.
#   data   annotate 12 samples for each of up to 422 training lines (T 0.8) under six variants
#          (none, sentiment ±6, toxicity ±4 — LM-Steer — and a humour activation vector at 2.5)
#   sft    two round-1 adapters: every record (r1-all) and contrast pairs only (r1-contrast)
#   eval1  controllability sweep of both + the prompting baseline (40 held-out prompts × 2 samples)
#   boot   bootstrap the better round-1 adapter (mean value-model ρ) and sweep the result
# Independent scorers are skipped here (--no-independent); re-score the saved outputs anywhere with
#   steerlab steerlm eval --rescore R/control1/controllability.json --value-model vm/ --out R/control1
set -euo pipefail
R=${1:?results folder}
PHASE=${2:-all}
S=${STEERLAB:-.venv/bin/steerlab}
VM=${VALUE_MODEL:?}
STEPS=${N_STEPS:-1500}
BATCH=${BATCH:-16}
PER_TOPIC=${PER_TOPIC:-40}
SAMPLES=${SAMPLES:-12}
EVAL=(--n-prompts "${EVAL_PROMPTS:-40}" --per-topic 3 --samples "${EVAL_SAMPLES:-2}" --no-independent)
mkdir -p "$R"
t() { local name=$1; shift; local t0=$SECONDS; "$@"; echo "$name $((SECONDS - t0))" >>"$R/times.txt"; }

if [[ $PHASE == data || $PHASE == all ]]; then
  t annotate $S steerlm annotate --overwrite --value-model "$VM" --out "$R/data" --samples "$SAMPLES" \
    --max-per-topic "$PER_TOPIC" --temperature 0.8 --vary "$SENTIMENT_STEER=6" --vary "$SENTIMENT_STEER=-6" \
    --vary "$TOXICITY_STEER=4" --vary "$TOXICITY_STEER=-4" --vary "$HUMOR_STEER=2.5"
fi
if [[ $PHASE == sft || $PHASE == all ]]; then
  t sft-all $S steerlm sft --overwrite --data "$R/data/annotated.v2t.jsonl" --out "$R/r1-all" --lr 2e-3 \
    --n-steps "$STEPS" --batch-size "$BATCH"
  t sft-contrast $S steerlm sft --overwrite --data "$R/data/annotated.v2t.jsonl" --out "$R/r1-contrast" --lr 2e-3 \
    --n-steps "$STEPS" --batch-size "$BATCH" --contrast-gap 2
fi
if [[ $PHASE == eval1 || $PHASE == all ]]; then
  t eval1 $S steerlm eval --overwrite --adapter "$R/r1-all" --adapter "$R/r1-contrast" --value-model "$VM" \
    --out "$R/control1" "${EVAL[@]}"
fi
if [[ $PHASE == boot || $PHASE == all ]]; then
  BEST=$(python3 - "$R/control1/controllability.json" <<'EOF'
import json, sys
rs = json.load(open(sys.argv[1]))["results"]
score = {}
for r in rs:
    if r["system"].startswith("steerlm:"):
        score.setdefault(r["system"][8:], []).append(r["spearman_value_model"])
print(max(score, key=lambda k: sum(score[k]) / len(score[k])))
EOF
)
  echo "bootstrapping $BEST"
  t bootstrap $S steerlm bootstrap --overwrite --adapter "$R/$BEST" --value-model "$VM" --data "$R/data/annotated.v2t.jsonl" \
    --out "$R/r2" --max-per-topic "$PER_TOPIC" --samples 4 --lr 2e-3 --n-steps "$((STEPS * 2 / 3))" \
    --batch-size "$BATCH"
  t eval2 $S steerlm eval --overwrite --adapter "$R/r2" --value-model "$VM" --out "$R/control2" --no-prompting "${EVAL[@]}"
fi
