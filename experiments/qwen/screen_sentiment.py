"""Screen sentiment-vector settings on qwen2.5-1.5b in one generation pass (both directions).

The shipped card protocol (24 prompts x 4 samples) costs ~2 min per condition on 2 CPU cores, so
settings are screened here first on fewer samples, every condition in one per-row-steered batch:
the templated-pairs vector (``sentiment-vec-qwen1.5b``) against vectors extracted in memory from
Rotten Tomatoes snippets (movies in half 0; the prompts come from half 1), at several layers,
position rules and operators. Prints success towards positive and negative (the RT probe on
prompt + continuation, as in the tasks), perplexity under qwen2.5-0.5b and the budget line.
The winner is then run through ``steerlab eval`` at the card protocol.

    python experiments/qwen/screen_sentiment.py [--samples 2] [--n-rt 300]
"""

from __future__ import annotations

import argparse
import random
import time

import steerlab
from steerlab.data.corpus_sets import CORPUS_SETS
from steerlab.data.pairs import ContrastSet
from steerlab.eval.harness import load_reference
from steerlab.eval.protocol import Condition, Protocol, prompts_for, sample_conditions, summarise
from steerlab.eval.tasks import TASKS
from steerlab.methods.vectors.steerer import extract


def rt_vector(lm: steerlab.LoadedModel, n: int, read: str, layers: list[int]) -> steerlab.Artifact:
    """Mean-difference vector of ``n`` fresh vs ``n`` rotten snippets (seed 0), in memory."""
    rt = CORPUS_SETS["rt-sentiment"]()
    rng = random.Random(0)
    data = ContrastSet(rng.sample(rt.positive, n), rng.sample(rt.negative, n), paired=False,
                       name="rt-sentiment", source=rt.source + f" ({n}+{n}, seed 0)")
    return extract(lm, data, layers=layers, read=read, name=f"rt-{read}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--n-prompts", type=int, default=24)
    ap.add_argument("--n-rt", type=int, default=300)
    args = ap.parse_args()
    t0 = time.perf_counter()
    lm = steerlab.load_model("qwen2.5-1.5b")
    ref = load_reference(lm, "auto")
    layers = [6, 8, 10, 12, 14]
    tmpl = steerlab.load_artifact("src/steerlab/artifacts/sentiment-vec-qwen1.5b")
    rt_mean = rt_vector(lm, args.n_rt, "mean", layers)
    rt_last = rt_vector(lm, args.n_rt, "last", layers)
    for v in (tmpl, rt_mean, rt_last):
        print(v.name, {la: round(v.meta["stats"][str(la)]["norm"], 2) for la in layers},
              {la: round(v.meta["stats"][str(la)]["accuracy"], 2) for la in layers}, flush=True)
    print(f"vectors ready {time.perf_counter() - t0:.0f}s", flush=True)

    pos, neg = TASKS.get("sentiment-positive"), TASKS.get("sentiment-negative")
    conds = [Condition("unsteered", "unsteered"),
             Condition("prompting+", "prompting", prefix=pos.instruction + "\n\n"),
             Condition("prompting-", "prompting", prefix=neg.instruction + "\n\n")]

    def add(art: steerlab.Artifact, s: float, **opts: object) -> None:
        label = f"{art.name} x{s:g} " + " ".join(f"{k}={v}" for k, v in opts.items())
        conds.append(Condition(label, "steered", (steerlab.Steer(art, s, dict(opts)),), strength=s, options=opts))

    for s in (1.0, -1.5):
        add(tmpl, s, layers=[10], positions="generated")
    add(tmpl, 0.5, layers=[8, 10, 12])
    add(tmpl, -0.7, layers=[8, 10, 12])
    for art in (rt_mean, rt_last):
        for s in (2.0, 4.0, -2.0, -4.0):
            add(art, s, layers=[10])
    add(rt_mean, 2.0, layers=[8, 10, 12])
    add(rt_mean, -2.0, layers=[8, 10, 12])

    protocol = Protocol(n_prompts=args.n_prompts, samples=args.samples, max_new_tokens=20, seed=0)
    samples = sample_conditions(lm, pos, conds, protocol, ref, prompts_for(pos, protocol))
    res = summarise(pos, samples, protocol)
    base = res[0].perplexity
    print(f"\nbudget: perplexity <= {base * 1.1:.1f} (unsteered {base:.1f}); {time.perf_counter() - t0:.0f}s")
    print(f"{'condition':58s} {'%pos':>6s} {'%neg':>6s} {'ppl':>7s} {'vader':>7s} {'dist3':>6s}")
    for r in res:
        vader = r.extra.get("vader_mean", float("nan"))
        print(f"{r.name:58s} {100 * r.success:6.1f} {100 * (1 - r.success):6.1f} {r.perplexity:7.1f} "
              f"{vader:+7.3f} {r.dist[2]:6.3f}{'  *' if r.perplexity <= base * 1.1 else ''}", flush=True)


if __name__ == "__main__":
    main()
