"""Screen vector settings on qwen2.5-1.5b (or ``--model``) in one generation pass, both directions of an attribute.

The shipped card protocol (24 prompts x 4 samples) costs ~2 min per condition on 2 CPU cores, so
settings are screened here first on fewer samples, every condition in one per-row-steered batch.
Sentiment: the templated-pairs vector (``sentiment-vec-qwen1.5b``) against vectors extracted in
memory from Rotten Tomatoes snippets (movies in half 0; the prompts come from half 1). Formality:
vectors extracted in memory from ``experiments/formality/formality_600.jsonl`` (news + Commons vs
tweets + chat). Each at several layers and strengths; prints success towards each side (the
tasks' scorer), perplexity under qwen2.5-0.5b and the budget line (``*`` = within it). The
winner is then run through ``steerlab eval`` at the card protocol.

    python experiments/qwen/screen.py sentiment [--samples 2] [--n-data 300] [--set mean:10:2,-2]
    python experiments/qwen/screen.py formality
    python experiments/qwen/screen.py sentiment --vec self=/tmp/sentiment-self --set self:15:-1,-2
    python experiments/qwen/screen.py sentiment --vec lms=/tmp/lmsteer --set lms:-:-2,-4   # LM-Steer
    python experiments/qwen/screen.py sentiment --set tmpl:15:1:operator=clamp:clamp_value=-9.3   # clamp
"""

from __future__ import annotations

import argparse
import random
import time

import steerlab
from steerlab.artifacts import shipped_path
from steerlab.data.pairs import ContrastSet, as_contrast
from steerlab.eval.harness import load_reference
from steerlab.eval.protocol import Condition, Protocol, prompts_for, sample_conditions, summarise
from steerlab.eval.tasks import TASKS
from steerlab.methods.vectors.steerer import extract


def sample_vector(lm: steerlab.LoadedModel, data: ContrastSet, n: int, read: str, layers: list[int],
                  name: str) -> steerlab.Artifact:
    """Mean-difference vector of ``n`` + ``n`` texts of ``data`` (seed 0), in memory."""
    rng = random.Random(0)
    sub = ContrastSet(rng.sample(data.positive, min(n, len(data.positive))),
                      rng.sample(data.negative, min(n, len(data.negative))), paired=False,
                      name=data.name, source=data.source + f" ({n}+{n}, seed 0)")
    return extract(lm, sub, layers=layers, read=read, name=name)


ATTRS = {
    # attribute: (task towards the positive side, task towards the negative side, data, default grid)
    "sentiment": ("sentiment-positive", "sentiment-negative", "rt-sentiment",
                  ["tmpl:10:1,-1.5:generated", "tmpl:8+10+12:0.5,-0.7", "mean:10:2,4,-2,-4", "last:10:2,4,-2,-4",
                   "mean:8+10+12:2,-2"]),
    "formality": ("formality-formal", "formality-casual", "experiments/formality/formality_600.jsonl",
                  ["mean:10:1,2,-1,-2", "last:10:1,2,-1,-2", "mean:14:1,2,-2", "mean:8+10+12:0.7,-0.7"]),
}


def layer_options(field: str) -> dict[str, object]:
    """A --set LAYERS field as steering options: "8+10" -> layers [8, 10]; "-" -> none (an
    artifact without layers, e.g. LM-Steer: --vec lms=DIR --set lms:-:-2,-4)."""
    return {} if field == "-" else {"layers": [int(x) for x in field.split("+")]}


def set_options(lay: str, rest: list[str]) -> dict[str, object]:
    """Options of one --set part: the LAYERS field, then fields after the strengths, each
    ``name=value`` (``operator=clamp``, ``clamp_value=-9.3``; numbers parsed) or a bare
    position rule (``generated``)."""
    opts = layer_options(lay)
    for field in rest:
        name, eq, value = field.partition("=")
        if not eq:
            opts["positions"] = field
            continue
        for parse in (int, float, str):
            try:
                opts[name] = parse(value)
                break
            except ValueError:
                continue
    return opts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("attr", choices=sorted(ATTRS))
    ap.add_argument("--model", default="qwen2.5-1.5b")
    ap.add_argument("--layers", default="6,8,10,12,14", help="layers the in-memory vectors record")
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--n-prompts", type=int, default=24)
    ap.add_argument("--n-data", type=int, default=300, help="texts per side for the in-memory vectors")
    ap.add_argument("--set", action="append", default=None,
                    help="VECTOR:LAYERS:STRENGTHS[:POSITIONS][:NAME=VALUE...], e.g. mean:8+10:2,-2 (VECTOR: tmpl, "
                    "mean, last, or a KEY given by --vec; LAYERS '-' for an artifact without layers, e.g. "
                    "LM-Steer; options such as operator=clamp:clamp_value=-9.3); parts joined by & compose, "
                    "e.g. tmpl:15:-1&lms:-:-2")
    ap.add_argument("--vec", action="append", default=[], metavar="KEY=PATH",
                    help="also screen a saved artifact (a vector, or LM-Steer with LAYERS -) under KEY")
    ap.add_argument("--down-only", action="store_true", help="leave out the prompting+ baseline (a screen "
                    "towards the down direction only: a third less generation)")
    args = ap.parse_args()
    up_name, down_name, data_name, grid = ATTRS[args.attr]
    t0 = time.perf_counter()
    lm = steerlab.load_model(args.model)
    ref = load_reference(lm, "auto")
    layers = [int(x) for x in args.layers.split(",")]
    specs = args.set or grid
    used = {spec.split(":")[0] for spec in specs}
    data = as_contrast(data_name)
    vecs: dict[str, steerlab.Artifact] = {  # in-memory reads only where a setting uses them (minutes each)
        read: sample_vector(lm, data, args.n_data, read, layers, f"{args.attr}-{read}")
        for read in ("mean", "last") if read in used}
    tmpl = shipped_path(f"{args.attr}-vec" + ("-qwen1.5b" if args.model == "qwen2.5-1.5b" else ""))
    if tmpl is not None:  # the shipped vector, where one ships (sentiment's is from the templated pairs)
        vecs["tmpl"] = steerlab.load_artifact(tmpl)
    for spec in args.vec:
        key, _, path = spec.partition("=")
        vecs[key] = steerlab.load_artifact(path)
    for key, v in vecs.items():
        st = v.meta.get("stats", {})
        print(key, v.name, {la: round(st[str(la)]["norm"], 2) for la in layers if str(la) in st},
              {la: round(st[str(la)]["accuracy"], 2) for la in layers if str(la) in st}, flush=True)
    print(f"vectors ready {time.perf_counter() - t0:.0f}s", flush=True)

    up, down = TASKS.get(up_name), TASKS.get(down_name)
    conds = [Condition("unsteered", "unsteered"),
             Condition("prompting+", "prompting", prefix=up.instruction + "\n\n"),
             Condition("prompting-", "prompting", prefix=down.instruction + "\n\n")]
    if args.down_only:
        conds.pop(1)
    for spec in specs:
        if "&" in spec:  # a composition: KEY:LAYERS:STRENGTH[:OPTIONS] parts, one strength each, applied together
            parts = [part.split(":") for part in spec.split("&")]
            steers = tuple(steerlab.Steer(vecs[k], float(s), set_options(lay, rest)) for k, lay, s, *rest in parts)
            conds.append(Condition(spec, "steered", steers))
            continue
        key, lay, strengths, *rest = spec.split(":")
        opts = set_options(lay, rest)
        for st in strengths.split(","):
            s = float(st)
            label = f"{key} x{s:g} " + " ".join(f"{k}={v}" for k, v in opts.items())
            conds.append(Condition(label, "steered", (steerlab.Steer(vecs[key], s, dict(opts)),), strength=s,
                                   options=opts))

    protocol = Protocol(n_prompts=args.n_prompts, samples=args.samples, max_new_tokens=20, seed=0)
    samples = sample_conditions(lm, up, conds, protocol, ref, prompts_for(up, protocol))
    res = summarise(up, samples, protocol)
    base = res[0].perplexity
    print(f"\nbudget: perplexity <= {base * 1.1:.1f} (unsteered {base:.1f}); {time.perf_counter() - t0:.0f}s")
    print(f"{'condition':50s} {'%up':>6s} {'%down':>6s} {'ppl':>7s} {'2nd':>7s} {'dist3':>6s}")
    for r in res:
        second = next((v for k, v in r.extra.items() if k.endswith("_mean")), float("nan"))
        print(f"{r.name:50s} {100 * r.success:6.1f} {100 * (1 - r.success):6.1f} {r.perplexity:7.1f} "
              f"{second:+7.3f} {r.dist[2]:6.3f}{'  *' if r.perplexity <= base * 1.1 else ''}", flush=True)
    print("95% intervals over prompts (bootstrap): %down, ppl; with one prompting row (--down-only), the "
          "paired difference from it in %down points")
    for r in res:
        lo, hi = r.success_ci
        paired = "" if r.vs_prompting is None else (
            f"  {-100 * r.vs_prompting[0]:+5.1f} [{-100 * r.vs_prompting[2]:+5.1f}, {-100 * r.vs_prompting[1]:+5.1f}]")
        print(f"{r.name:50s} [{100 * (1 - hi):5.1f}, {100 * (1 - lo):5.1f}]  [{r.perplexity_ci[0]:5.1f}, "
              f"{r.perplexity_ci[1]:5.1f}]{paired}", flush=True)


if __name__ == "__main__":
    main()
