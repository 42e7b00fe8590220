#!/usr/bin/env bash
# Continue the shipped DGLM decoder side (prompt generator + LoRA) with a new schedule: warm start
# from the artifact, half the learning rate, new batches (seed 1), a share of short-prefix rows.
#   bash experiments/dglm/continue_decoder.sh [N_STEPS] [OUT]   (~2 s per step on 2 cores)
set -euo pipefail
N=${1:-1000}
OUT=${2:-/tmp/d/dglm-cont}
ART=src/steerlab/artifacts/dglm-smollm2
.venv/bin/python experiments/dglm/export_parts.py $ART /tmp/d/parts
.venv/bin/steerlab dglm train-decoder --diffusion /tmp/d/parts/diffusion --init-from $ART --out "$OUT" \
  --probe sentiment=/tmp/d/parts/probe-sentiment --probe toxicity:clean,toxic=/tmp/d/parts/probe-toxicity \
  --n-steps "$N" --lr 5e-4 --prefix-drop 0.25 --short-prefix 0.5 --seed 1 --name dglm-smollm2 --overwrite
