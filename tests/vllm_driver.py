"""Runs steerlab's vLLM plugin on vLLM's offline engine and prints what it generated, as JSON; run
by tests/test_vllm.py in the vLLM environment (``.venv-vllm``), one process, vLLM's default
compiled mode (``"eager": true`` in the job: ``enforce_eager``):

    OMP_NUM_THREADS=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 python tests/vllm_driver.py JOB.json

JOB: {"model": DIR, "max_tokens": N, "solo": [[prompt, steering], ...], "batch": [[prompt, steering], ...],
      "sequence": [[prompt, steering], ...], "refused": [steering, ...],
      "engine": [{"prompts": [...], "steering": [row steering, ...], "chat": bool, "attributes": ...}, ...],
      "fresh": [[prompt, steering], ...] (run after warm-up, counting compilations), "eager": bool,
      "lora": bool (default true)}.
Output: {"solo": [text, ...], "batch": [...], "sequence": [...] (one request at a time, in order,
sharing the prefix cache), "refused": [error message or null, ...], "engine": [[text, ...], ...]
(through :class:`steerlab.vllm.engine.VllmEngine`), "compiled": bool (the engine's mode),
"compiles": [counters before, counters after] the "fresh" requests}.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def main() -> None:
    job = json.loads(open(sys.argv[1]).read())
    from vllm import SamplingParams

    from steerlab.core.steerer import Steer
    from steerlab.service.resolve import ArtifactStore
    from steerlab.vllm.engine import VllmEngine

    lora = job.get("lora", True)  # vLLM's CPU backend runs LoRA engines eagerly
    engine = VllmEngine(job["model"], dtype="float32", max_model_len=512, enable_lora=lora,
                        **({"max_lora_rank": 8} if lora else {}), max_num_seqs=64, enable_prefix_caching=True,
                        kv_cache_memory_bytes=1 << 30, enforce_eager=bool(job.get("eager")))
    llm = engine.llm
    store = ArtifactStore()

    def params(steering: Any) -> SamplingParams:
        extra = {"steering": steering} if steering is not None else None
        return SamplingParams(max_tokens=job["max_tokens"], temperature=0.0, extra_args=extra)

    def run(items: list[list[Any]]) -> list[str]:
        if not items:
            return []
        outs = llm.generate([p for p, _ in items], [params(s) for _, s in items], use_tqdm=False)
        return [o.outputs[0].text for o in outs]

    result: dict[str, Any] = {"solo": [run([item])[0] for item in job.get("solo", [])],
                              "batch": run(job.get("batch", [])),
                              "sequence": [run([item])[0] for item in job.get("sequence", [])], "refused": []}
    result["engine"] = []
    for case in job.get("engine", []):  # steerlab.generate's contract on the vLLM engine
        steers = [tuple(Steer(store.get(x["artifact"]), x.get("strength", 1.0),
                              {k: v for k, v in x.items() if k not in ("artifact", "strength")})
                        for x in row) or None for row in case["steering"]]
        result["engine"].append(engine.generate(case["prompts"], steers, max_new_tokens=job["max_tokens"],
                                                chat=case.get("chat", False), attributes=case.get("attributes"),
                                                progress=False))
    result["server"] = serve(engine, job["model"], job.get("server", []), job["max_tokens"])
    from steerlab.vllm.requests import is_compiled

    result["compiled"] = is_compiled(llm.llm_engine.vllm_config)
    before = compile_counts()
    result["fresh"] = run(job.get("fresh", []))  # new specs in one batch, then one by one
    result["fresh"] += [run([item])[0] for item in job.get("fresh", [])[:20]]
    result["compiles"] = [before, compile_counts()]
    for steering in job.get("refused", []):
        try:
            run([["Hello", steering]])
            result["refused"].append(None)
        except Exception as e:  # noqa: BLE001 - the message is what the test reads
            result["refused"].append(f"{type(e).__name__}: {e}")
    sys.stdout.write("\nRESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # vLLM's engine threads can hold interpreter shutdown


def serve(engine: Any, model: str, bodies: list[dict[str, Any]], max_tokens: int) -> list[Any]:
    """steerlab's HTTP API over the vLLM engine (``steerlab serve --engine vllm``): each body posted
    to /v1/completions; the completion text, or the error status and message."""
    if not bodies:
        return []
    from fastapi.testclient import TestClient

    from steerlab.models.weightless import load_weightless
    from steerlab.server import create_app
    from steerlab.vllm.serving import VllmServingEngine

    app = create_app(load_weightless(model), engine=VllmServingEngine(engine))  # as serve --engine vllm
    out: list[Any] = []
    with TestClient(app) as client:
        for body in bodies:
            body = {"model": model, "max_tokens": max_tokens, "temperature": 0, **body}
            r = client.post("/v1/completions", json=body)
            out.append(r.json()["choices"][0]["text"] if r.status_code == 200
                       else [r.status_code, r.json()["error"]["message"]])
    return out


def compile_counts() -> dict[str, int]:
    """vLLM's and Dynamo's compilation counters (graphs traced, backend and inductor compiles)."""
    import dataclasses

    from torch._dynamo.utils import counters
    from vllm.compilation.counter import compilation_counter

    out = {f"vllm.{k}": int(v) for k, v in dataclasses.asdict(compilation_counter).items() if isinstance(v, int)}
    out.update({f"dynamo.{k}": int(v) for k, v in counters["stats"].items()})
    out.update({f"frames.{k}": int(v) for k, v in counters["frames"].items()})
    return out


if __name__ == "__main__":
    main()
