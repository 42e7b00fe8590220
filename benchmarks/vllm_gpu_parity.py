"""Parity of steering inside vLLM on a GPU (run by ``benchmarks/vllm_gpu.sh``): the specs of
``tests/vllm_cases.py`` (every vector option, LM-Steer, compositions) and its mixed batch of 32 specs,
greedy in float32, through vLLM compiled with CUDA graphs, vLLM eager, and steerlab's own engine.

    python benchmarks/vllm_gpu_parity.py OUT.json

Writes, per spec, the three texts and whether they agree, and whether the mixed batch equals the
solo runs in each vLLM mode. On a GPU the engines' kernels differ (fused attention, compiled
elementwise code), so a text may part ways after a near-tie; the report counts agreements rather
than asserting them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    out = Path(sys.argv[1])
    from tests.vllm_cases import MAX_TOKENS, MIXED, PROMPTS, SPECS
    from tests.vllm_cases import hf_texts as _hf

    from steerlab.models.packaged import PACKAGED, converted_dir

    model = str(converted_dir(PACKAGED["smollm2-135m"]))
    solo = [[PROMPTS[i % 4], s] for i, s in enumerate(SPECS)] + [[PROMPTS[i % 4], s] for i, s in enumerate(MIXED)]
    batch = [[PROMPTS[i % 4], s] for i, s in enumerate(MIXED)]
    runs: dict[str, Any] = {}
    for mode in ("compiled", "eager"):
        with tempfile.TemporaryDirectory() as work:
            job = Path(work) / "job.json"
            job.write_text(json.dumps({"model": model, "max_tokens": MAX_TOKENS, "solo": solo, "batch": batch,
                                       "eager": mode == "eager", "lora": False}))
            env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "STEERLAB_ARTIFACTS": str(Path(work) / "a")}
            proc = subprocess.run([sys.executable, str(ROOT / "tests" / "vllm_driver.py"), str(job)],
                                  capture_output=True, text=True, env=env, cwd=work, timeout=240)
            lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if not lines:
                sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
                raise SystemExit(f"the {mode} run failed")
            runs[mode] = json.loads(lines[-1][len("RESULT "):])
    os.environ.setdefault("STEERLAB_DEVICE", "cuda")
    hf = _hf(solo[: len(SPECS)])
    rows = []
    for i, (prompt, spec) in enumerate(solo[: len(SPECS)]):
        c, e, h = runs["compiled"]["solo"][i], runs["eager"]["solo"][i], hf[i]
        rows.append({"prompt": prompt, "steering": spec, "compiled": c, "eager": e, "steerlab": h,
                     "compiled_eq_eager": c == e, "compiled_eq_steerlab": c == h})
    n = len(SPECS)
    report = {"specs": rows,
              "compiled_eq_eager": sum(r["compiled_eq_eager"] for r in rows), "of": len(rows),
              "compiled_eq_steerlab": sum(r["compiled_eq_steerlab"] for r in rows),
              "mixed_32_batch_eq_solo": {m: runs[m]["batch"] == runs[m]["solo"][n:] for m in runs},
              "mixed_32_compiled_eq_eager": sum(a == b for a, b in zip(runs["compiled"]["batch"],
                                                                     runs["eager"]["batch"]))}
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "specs"}, indent=1))


if __name__ == "__main__":
    main()
