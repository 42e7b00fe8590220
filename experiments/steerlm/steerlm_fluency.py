"""Fluency cost of SteerLM adapters: perplexity of sweep outputs under a larger packaged reference.

Reads the rows a controllability sweep saved (``controllability.json`` from ``steerlab steerlm
eval``), draws ``--n`` random rows per system (all attributes and levels mixed), and reports each
system's perplexity under ``--reference`` (default Qwen2.5-0.5B, conditioned on the original
prompt) and its 3-gram repetition rate. The prompting baseline is the unsteered base model, so
its row is the fluency a SteerLM adapter should keep.

    python experiments/steerlm/steerlm_fluency.py R/control3/controllability.json --out R/fluency.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np

import steerlab
from steerlab.eval.metrics import repetition_rate
from steerlab.eval.perplexity import conditional_perplexity


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path, help="controllability.json with saved outputs")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=240, help="rows per system")
    ap.add_argument("--reference", default="qwen2.5-0.5b")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = json.loads(args.sweep.read_text())["outputs"]
    ref = steerlab.load_model(args.reference)
    rng = random.Random(args.seed)
    res = {}
    for name in sorted({r["system"] for r in rows}):
        pick = rng.sample([r for r in rows if r["system"] == name], args.n)
        t0 = time.time()
        pr = conditional_perplexity(ref, [r["prompt"] for r in pick], [r["output"] for r in pick])
        ppl = [p for p in pr.per_sample if p == p]  # NaN for empty outputs
        res[name] = {"n": len(ppl), "ppl_median": statistics.median(ppl), "ppl_mean": float(np.mean(ppl)),
                     "ppl_total": pr.total, "rep3": float(np.mean([repetition_rate(r["output"]) for r in pick])),
                     "s": round(time.time() - t0)}
        print(name, {k: round(v, 3) if isinstance(v, float) else v for k, v in res[name].items()}, flush=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
