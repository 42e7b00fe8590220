"""Load benchmark of ``steerlab serve``: throughput and latency at 1, 8 and 32 concurrent clients,
unsteered vs a mix of steering specs, and the time to first token of a short request that arrives
while long ones decode.

The server runs in this process (uvicorn in a thread, the real packaged model); clients are
asyncio tasks over one ``httpx.AsyncClient``, each sending its requests one after another
(greedy, ``max_tokens`` exact via ``ignore_eos`` is not an API field, so completions may end
early; throughput counts the tokens actually generated). Cases run in a rotated order each
repeat and ratios are formed within a repeat, as ``steerlab bench`` does::

    python benchmarks/serve_load.py --out results/serve_load.json
    OMP_NUM_THREADS=1 .venv-vllm/bin/python benchmarks/serve_load.py --engine vllm --out results/serve_load_vllm.json

Goals: mixed specs >= 0.9x unsteered throughput at 32 clients; 32 clients >= 4x one client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import torch

PROMPTS = ["The weather this morning was", "My favourite restaurant in town", "The meeting yesterday",
           "When I opened the door", "The new phone I bought", "Our trip to the mountains",
           "The report from the committee", "After the game last night"]


def mixed_spec(i: int) -> dict[str, Any]:
    """Steering for request ``i`` of the mixed case: every shipped method, several strengths and
    layers, some rows unsteered."""
    kind = i % 6
    if kind == 0:
        return {"steering": None}
    if kind == 1:
        return {"steering": [{"artifact": "sentiment-vec", "strength": 2 + i % 5, "layers": [6 + i % 10]}]}
    if kind == 2:
        return {"steering": [{"artifact": "formality-vec", "strength": -3 + i % 7, "layers": [11]}]}
    if kind == 3:
        return {"steering": [{"artifact": "lmsteer-sentiment", "strength": -5 + i % 11}]}
    if kind == 4:
        return {"steering": [{"artifact": "lmsteer-toxicity", "strength": -2}]}
    return {"steering": [{"artifact": "sentiment-vec", "strength": 3, "layers": [9]},
                         {"artifact": "lmsteer-sentiment", "strength": 2}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _client(http: httpx.AsyncClient, model: str, n: int, offset: int, mixed: bool, max_tokens: int,
                  latencies: list[float]) -> int:
    tokens = 0
    for k in range(n):
        i = offset + k
        body = {"model": model, "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens, "temperature": 0}
        if mixed:
            body.update(mixed_spec(i))
        else:
            body["steering"] = None
        t0 = time.perf_counter()
        r = await http.post("/v1/completions", json=body)
        r.raise_for_status()
        latencies.append(time.perf_counter() - t0)
        tokens += r.json()["usage"]["completion_tokens"]
    return tokens


async def _case(url: str, model: str, clients: int, per_client: int, mixed: bool, max_tokens: int) -> dict[str, Any]:
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        t0 = time.perf_counter()
        counts = await asyncio.gather(*[_client(http, model, per_client, c * per_client, mixed, max_tokens, latencies)
                                        for c in range(clients)])
        wall = time.perf_counter() - t0
    lat = sorted(latencies)
    return {"tokens_per_s": sum(counts) / wall, "p50_s": lat[len(lat) // 2],
            "p95_s": lat[min(len(lat) - 1, int(0.95 * len(lat)))], "requests": len(lat), "tokens": sum(counts)}


async def _ttft(url: str, model: str, long_requests: int) -> dict[str, float]:
    """Time to first token of a short streamed request: alone, then while long requests decode."""
    async def first_token(http: httpx.AsyncClient, prompt: str, max_tokens: int, started: asyncio.Event | None = None
                          ) -> float:
        body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}
        t0 = time.perf_counter()
        first = None
        async with http.stream("POST", "/v1/completions", json=body) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: ") and first is None:
                    first = time.perf_counter() - t0
                    if started is not None:
                        started.set()
        return first or float("nan")

    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        alone = await first_token(http, "Hello there", 4)
        started = [asyncio.Event() for _ in range(long_requests)]
        longs = [asyncio.create_task(first_token(http, PROMPTS[i % len(PROMPTS)], 96, started[i]))
                 for i in range(long_requests)]
        await asyncio.gather(*[e.wait() for e in started])
        during = await first_token(http, "Hello there", 4)
        await asyncio.gather(*longs)
    return {"alone_s": alone, "during_long_s": during, "long_requests": long_requests}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--per-client", type=int, default=2, help="requests each client sends per case")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--engine", choices=("hf", "vllm"), default="hf",
                    help="the server's engine: steerlab's own, or vLLM with the plugin (run with .venv-vllm)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import uvicorn

    from steerlab.models.loading import load_model
    from steerlab.server import ServerConfig, create_app

    lm = load_model(args.model)
    port = _free_port()
    engine = None
    if args.engine == "vllm":
        from steerlab.vllm.engine import VllmEngine
        from steerlab.vllm.serving import VllmServingEngine

        engine = VllmServingEngine(VllmEngine(args.model, dtype="float32", max_num_seqs=32), max_queue=1024)
    app = create_app(lm, config=ServerConfig(max_batch=32, max_queue=1024, max_tokens=256), engine=engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    clients = [int(c) for c in args.clients.split(",")]
    cases = [(c, m) for c in clients for m in (False, True)]
    runs: dict[str, list[dict[str, Any]]] = {f"{c}_{'mixed' if m else 'unsteered'}": [] for c, m in cases}
    try:
        asyncio.run(_case(url, lm.name, 1, 1, False, 4))  # warm-up
        for r in range(args.repeats):
            order = cases[r % len(cases):] + cases[: r % len(cases)]
            for c, m in order:
                res = asyncio.run(_case(url, lm.name, c, args.per_client, m, args.max_tokens))
                runs[f"{c}_{'mixed' if m else 'unsteered'}"].append(res)
                label = "mixed    " if m else "unsteered"
                print(f"repeat {r} clients {c:>2} {label}: {res['tokens_per_s']:.1f} tok/s, "
                      f"p50 {res['p50_s']:.2f} s, p95 {res['p95_s']:.2f} s", flush=True)
        ttft = asyncio.run(_ttft(url, lm.name, 16))
    finally:
        server.should_exit = True
        thread.join(30)

    def med(key: str, field: str) -> float:
        return statistics.median(x[field] for x in runs[key])

    ratios = {}
    top, one = max(clients), min(clients)
    for c in clients:
        paired = [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(runs[f"{c}_mixed"], runs[f"{c}_unsteered"])]
        ratios[f"mixed_vs_unsteered_{c}_clients"] = {"median": statistics.median(paired), "min": min(paired),
                                                      "max": max(paired), "target": 0.9 if c == top else None}
    paired = [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(runs[f"{top}_unsteered"], runs[f"{one}_unsteered"])]
    ratios[f"{top}_clients_vs_{one}"] = {"median": statistics.median(paired), "min": min(paired), "max": max(paired),
                                         "target": 4.0}
    table = {k: {f: med(k, f) for f in ("tokens_per_s", "p50_s", "p95_s")} for k in runs}
    result = {"model": lm.name, "engine": args.engine,
              "threads": args.threads, "max_tokens": args.max_tokens, "per_client": args.per_client,
              "repeats": args.repeats, "cases": table, "ratios": ratios, "ttft": ttft, "all_runs": runs}
    print(json.dumps({"cases": table, "ratios": ratios, "ttft": ttft}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
