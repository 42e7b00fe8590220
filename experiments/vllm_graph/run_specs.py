"""Start one vLLM engine on SmolLM2 (float32) — ``eager`` or ``compiled`` (vLLM's default) — and
generate 16 greedy tokens for each [prompt, steering] pair in SPECS.json (default: the nine specs
of tests/test_vllm.py); prints ``START <seconds to start>`` and ``RESULT <texts as JSON>``.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 VLLM_CACHE_ROOT=/tmp/vc .venv-vllm/bin/python \
        experiments/vllm_graph/run_specs.py compiled [SPECS.json]
"""

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from vllm import LLM, SamplingParams  # noqa: E402

from steerlab.models.packaged import PACKAGED, converted_dir  # noqa: E402

if len(sys.argv) > 2:
    specs = json.loads(Path(sys.argv[2]).read_text())
else:
    from tests.test_vllm import PROMPTS, SPECS

    specs = [[PROMPTS[i % 4], s] for i, s in enumerate(SPECS)]
t = time.time()
llm = LLM(model=str(converted_dir(PACKAGED["smollm2-135m"])), dtype="float32", max_model_len=512,
          kv_cache_memory_bytes=1 << 30, enforce_eager=sys.argv[1] == "eager")
print("START", time.time() - t, flush=True)
out = []
for prompt, spec in specs:
    p = SamplingParams(max_tokens=16, temperature=0.0, extra_args={"steering": spec} if spec else None)
    out.append(llm.generate([prompt], [p], use_tqdm=False)[0].outputs[0].text)
print("RESULT " + json.dumps(out), flush=True)
os._exit(0)
