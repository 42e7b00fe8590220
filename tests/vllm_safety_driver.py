"""Runs the vLLM plugin's safety cases on vLLM's offline engine and prints the results as JSON; run
by tests/test_vllm.py in the vLLM environment (``.venv-vllm``):

    OMP_NUM_THREADS=1 python tests/vllm_safety_driver.py JOB.json

JOB: {"engines": [{"model": DIR, "kwargs": {...LLM keyword arguments}, "runs": [RUN, ...]}, ...]}.
Engines are built one after another in this process (each deleted before the next). A RUN is one of

- ``{"kind": "generate", "items": [[prompt, steering], ...], "max_tokens": N}``: one ``LLM.generate``
  call; a prompt is a string or a list of token ids. Result: ``{"texts": [...], "ids": [[...], ...]}``,
  or ``{"error": message}`` when the call raised;
- ``{"kind": "turn2", "prompt": ids, "steering": S, "max_tokens": N}``: request A, then B = A's prompt
  and output ids with the same steering, on this engine. Result: ``{"a": ids, "b_prompt": ids, "b": ids}``;
- ``{"kind": "reuse", "prompt": text, "first": S1, "second": S2, "steps": K, "max_tokens": N}``:
  ``add_request`` with S1, K steps, ``abort_request``, ``add_request`` under the same id with S2, run to
  the end. Result: ``{"ids": [...]}``;
- ``{"kind": "admit", "items": [[prompt, steering, sampling extras], ...], "max_tokens": N}``: each
  request added alone (``add_request``) and the engine stepped until all finish. Result per item:
  ``{"ids": [...]}`` or ``{"error": message}``;
- ``{"kind": "replay", "engine": E, "run": R, "field": F, "steering": S, "max_tokens": N}``: generate
  from the token ids an earlier engine's run returned in ``F``. Result: ``{"ids": [...]}``;
- ``{"kind": "embed", "prompts": [...]}``: a pooling engine's embeddings. Result: ``{"embeddings": [[...], ...]}``;
- ``{"kind": "env", "names": [...]}``: those environment variables as this process sees them now.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from typing import Any


def _prompt(p: Any) -> Any:
    return {"prompt_token_ids": list(p)} if isinstance(p, list) else p


def main() -> None:
    job = json.loads(open(sys.argv[1]).read())
    from vllm import LLM, SamplingParams

    def params(steering: Any, max_tokens: int, **extra: Any) -> SamplingParams:
        return SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True,
                              extra_args={"steering": steering} if steering is not None else None, **extra)

    out: list[list[Any]] = []
    for spec in job["engines"]:
        llm = LLM(model=spec["model"], dtype="float32", seed=0, **spec.get("kwargs", {}))
        engine = llm.llm_engine if spec.get("kwargs", {}).get("runner") != "pooling" else None
        results: list[Any] = []
        for run in spec["runs"]:
            kind, n = run["kind"], run.get("max_tokens", 8)
            if kind == "generate":
                try:
                    outs = llm.generate([_prompt(p) for p, _ in run["items"]], [params(s, n) for _, s in run["items"]],
                                        use_tqdm=False)
                    results.append({"texts": [o.outputs[0].text for o in outs],
                                    "ids": [list(o.outputs[0].token_ids) for o in outs]})
                except Exception as e:  # noqa: BLE001 - the message is what the test reads
                    results.append({"error": f"{type(e).__name__}: {e}"})
            elif kind == "turn2":
                a = llm.generate([_prompt(run["prompt"])], [params(run["steering"], n)], use_tqdm=False)[0]
                b_prompt = list(a.prompt_token_ids) + list(a.outputs[0].token_ids)
                b = llm.generate([_prompt(b_prompt)], [params(run["steering"], n)], use_tqdm=False)[0]
                results.append({"a": list(a.outputs[0].token_ids), "b_prompt": b_prompt,
                                "b": list(b.outputs[0].token_ids)})
            elif kind == "reuse":
                engine.add_request("same-id", _prompt(run["prompt"]), params(run["first"], n))
                for _ in range(run["steps"]):
                    engine.step()
                engine.abort_request(["same-id"])
                engine.add_request("same-id", _prompt(run["prompt"]), params(run["second"], n))
                ids: list[int] = []
                while engine.has_unfinished_requests():
                    for o in engine.step():
                        if o.finished:
                            ids = list(o.outputs[0].token_ids)
                results.append({"ids": ids})
            elif kind == "admit":
                items: list[Any] = [None] * len(run["items"])
                for i, (p, s, extra) in enumerate(run["items"]):
                    try:
                        engine.add_request(f"admit-{len(results)}-{i}", _prompt(p), params(s, n, **(extra or {})))
                    except Exception as e:  # noqa: BLE001 - refused at admission, alone
                        items[i] = {"error": f"{type(e).__name__}: {e}"}
                try:
                    while engine.has_unfinished_requests():
                        for o in engine.step():
                            if o.finished:
                                items[int(o.request_id.rsplit("-", 1)[1])] = {"ids": list(o.outputs[0].token_ids)}
                except Exception as e:  # noqa: BLE001 - a step raised: what the test must never see
                    results.append({"step_error": f"{type(e).__name__}: {e}", "items": items})
                    continue
                results.append({"items": items})
            elif kind == "replay":
                prompt = out[run["engine"]][run["run"]][run["field"]]
                o = llm.generate([_prompt(prompt)], [params(run["steering"], n)], use_tqdm=False)[0]
                results.append({"ids": list(o.outputs[0].token_ids)})
            elif kind == "embed":
                outs = llm.embed(run["prompts"], use_tqdm=False)
                results.append({"embeddings": [list(map(float, o.outputs.embedding)) for o in outs]})
            elif kind == "env":
                results.append({k: os.environ.get(k) for k in run["names"]})
            else:
                raise ValueError(f"unknown run kind {kind!r}")
        out.append(results)
        del llm, engine
        gc.collect()
    sys.stdout.write("\nRESULT " + json.dumps({"engines": out}) + "\n")
    sys.stdout.flush()
    os._exit(0)  # vLLM's engine threads can hold interpreter shutdown


if __name__ == "__main__":
    main()
