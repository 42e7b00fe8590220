"""Two data-parallel vLLM replicas (Ray actors on this machine) with steerlab's plugin; prints the
texts they generate as JSON. Run by tests/test_vllm.py in the vLLM environment:

    python tests/vllm_ray_driver.py JOB.json

JOB: {"model": DIR, "max_tokens": N, "rows": [[prompt, steering], ...]}.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    job = json.loads(open(sys.argv[1]).read())
    from steerlab.vllm.replicas import VllmReplicas

    keep = ("OMP_NUM_THREADS", "VLLM_ENABLE_V1_MULTIPROCESSING", "HF_HUB_OFFLINE", "VLLM_CACHE_ROOT",
            "STEERLAB_ARTIFACTS", "TOKENIZERS_PARALLELISM", "STEERLAB_CACHE")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    replicas = VllmReplicas(2, job["model"], cpus=1, runtime_env={"env_vars": env}, dtype="float32",
                            max_model_len=512, kv_cache_memory_bytes=1 << 29)
    rows = job["rows"]
    texts = replicas.generate([p for p, _ in rows], [s for _, s in rows], max_new_tokens=job["max_tokens"])
    sys.stdout.write("\nRESULT " + json.dumps({"texts": texts}) + "\n")
    sys.stdout.flush()
    replicas.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()
