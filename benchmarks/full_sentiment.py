"""Full-protocol evaluation of activation steering on the default model, sentiment both ways.

One generation pass covers every condition of both tasks (they share prompts, scorer and the
unsteered row): unsteered, the positive and negative prompting baselines, and the sentiment
vector at ±strengths. Each task then gets a standard report (JSON + Markdown + plots) with the
automatic strength choice under a +10% perplexity budget.
Run: python benchmarks/full_sentiment.py --out results/full   (about 40 min on 2 free CPU cores)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from sentiment_reports import reports_from_samples

import steerlab
from steerlab.core.artifact import update_eval_card
from steerlab.eval.harness import load_reference
from steerlab.eval.protocol import Condition, Protocol, sample_conditions
from steerlab.eval.tasks import TASKS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--layer", type=int, default=9)
    ap.add_argument("--strengths", default="3,6")
    ap.add_argument("--n-prompts", type=int, default=20)
    ap.add_argument("--samples", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results/full")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    lm = steerlab.load_model(args.model)
    vec = steerlab.extract(lm, "sentiment", name="sentiment")
    out = Path(args.out)
    art_dir = vec.save(out / "sentiment-vector", overwrite=True)
    pos, neg = TASKS.get("sentiment-positive"), TASKS.get("sentiment-negative")
    mags = [float(x) for x in args.strengths.split(",")]
    opts = {"layers": [args.layer]}
    conds = [Condition("unsteered", "unsteered"),
             Condition("prompting (positive)", "prompting", prefix=pos.instruction + "\n\n"),
             Condition("prompting (negative)", "prompting", prefix=neg.instruction + "\n\n")]
    for s in [-m for m in reversed(mags)] + mags:
        conds.append(Condition(f"vector L{args.layer} ×{s:+g}", "steered", (steerlab.Steer(vec, s, opts),),
                               strength=s, options=opts))
    proto = Protocol(n_prompts=args.n_prompts, samples=args.samples, max_new_tokens=20)
    ref = load_reference(lm, "auto")
    samples = sample_conditions(lm, pos, conds, proto, ref)
    elapsed = time.perf_counter() - t0
    for report in reports_from_samples(samples, proto, lm.name, ref, ref is lm, vec.name, vec.method, elapsed):
        report.options = opts
        report.save(out, overwrite=True)
        update_eval_card(art_dir, {f"eval:{report.task.name}": report.card()})
        print(report.to_markdown())


if __name__ == "__main__":
    main()
