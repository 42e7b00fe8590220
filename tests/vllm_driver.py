"""Runs steerlab's vLLM plugin on vLLM's offline engine and prints what it generated, as JSON; run
by tests/test_vllm.py in the vLLM environment (``.venv-vllm``), one process, eager mode:

    OMP_NUM_THREADS=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 python tests/vllm_driver.py JOB.json

JOB: {"model": DIR, "max_tokens": N, "solo": [[prompt, steering], ...], "batch": [[prompt, steering], ...],
      "sequence": [[prompt, steering], ...], "refused": [steering, ...],
      "engine": [{"prompts": [...], "steering": [row steering, ...], "chat": bool, "attributes": ...}, ...]}.
Output: {"solo": [text, ...], "batch": [...], "sequence": [...] (one request at a time, in order,
sharing the prefix cache), "refused": [error message or null, ...], "engine": [[text, ...], ...]
(through :class:`steerlab.vllm.engine.VllmEngine`)}.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def main() -> None:
    job = json.loads(open(sys.argv[1]).read())
    if job.get("default_mode"):
        return default_mode(job)
    from vllm import SamplingParams

    from steerlab.core.steerer import Steer
    from steerlab.service.resolve import ArtifactStore
    from steerlab.vllm.engine import VllmEngine

    engine = VllmEngine(job["model"], dtype="float32", max_model_len=512, enable_lora=True, max_lora_rank=8,
                        max_num_seqs=64, enable_prefix_caching=True, kv_cache_memory_bytes=1 << 30)
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

    from steerlab.models.loading import load_model
    from steerlab.server import create_app
    from steerlab.vllm.serving import VllmServingEngine

    app = create_app(load_model(model), engine=VllmServingEngine(engine))
    out: list[Any] = []
    with TestClient(app) as client:
        for body in bodies:
            body = {"model": model, "max_tokens": max_tokens, "temperature": 0, **body}
            r = client.post("/v1/completions", json=body)
            out.append(r.json()["choices"][0]["text"] if r.status_code == 200
                       else [r.status_code, r.json()["error"]["message"]])
    return out


def default_mode(job: dict[str, Any]) -> None:
    """vLLM's own ``LLM`` in its default (compiled) mode, as a user who follows vLLM's docs builds
    it: the plugin switches it to eager, so steering runs. Then, with
    ``STEERLAB_VLLM_COMPILED=refuse``, a compiled config is kept and steered requests are refused
    at admission. Output: {"solo": [text, ...], "eager": bool, "refuse_compiled": bool,
    "refused": message or null, "unsteered_admitted": bool}."""
    import logging

    from vllm import LLM, SamplingParams
    from vllm.engine.arg_utils import EngineArgs

    from steerlab.vllm.admission import SteeringAdmission

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logging.getLogger("steerlab.vllm").addHandler(Keep())
    llm = LLM(model=job["model"], dtype="float32", max_model_len=512, kv_cache_memory_bytes=1 << 30)
    result: dict[str, Any] = {"eager": bool(llm.llm_engine.vllm_config.model_config.enforce_eager)}
    result["solo"] = []
    for prompt, steering in job["solo"]:
        params = SamplingParams(max_tokens=job["max_tokens"], temperature=0.0,
                                extra_args={"steering": steering} if steering is not None else None)
        result["solo"].append(llm.generate([prompt], [params], use_tqdm=False)[0].outputs[0].text)
    result["warned"] = any("enforce_eager=True" in m for m in seen)
    os.environ["STEERLAB_VLLM_COMPILED"] = "refuse"
    config = EngineArgs(model=job["model"], dtype="float32", max_model_len=512).create_engine_config()
    result["refuse_compiled"] = int(config.compilation_config.mode) != 0
    try:
        SteeringAdmission.validate_params(SamplingParams(extra_args={"steering": job["solo"][1][1]}))
        result["refused"] = None
    except ValueError as e:
        result["refused"] = str(e)
    SteeringAdmission.validate_params(SamplingParams(max_tokens=4))  # unsteered: admitted
    result["unsteered_admitted"] = True
    sys.stdout.write("\nRESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
