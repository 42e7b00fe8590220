"""Why does steering towards positive sentiment lose to prompting at the +10% perplexity budget on
SmolLM2-135M, and which setting wins where anything does?

One harness pass per call (same prompts, seeds and samples for every condition, with the
unsteered model and the prompting baseline): the shipped sentiment vector swept over layer,
position rule and operator, at strengths relative to the layer's mean positive−negative gap.
Writes the report (JSON with every number) and prints the within-budget conditions against
prompting.

    python experiments/sentiment_budget/sweep.py layers      # where: layer x strength, all positions
    python experiments/sentiment_budget/sweep.py positions   # when: all / generated, best layers
    python experiments/sentiment_budget/sweep.py confirm L P S...  # a bigger sample for chosen settings
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import steerlab
from steerlab.eval.harness import evaluate
from steerlab.eval.protocol import Protocol

OUT = Path(__file__).resolve().parent / "results"


def run(name: str, task: str, variants: list[dict], strengths: list[float], protocol: Protocol) -> None:
    lm = steerlab.load_model()
    vec = steerlab.load_artifact("sentiment-vec")
    report = evaluate(lm, task, vec, strengths=strengths, variants=variants, protocol=protocol)
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(report.to_dict(), indent=1, default=str))
    un = report.row("unsteered")
    pr = report.row("prompting")
    assert un is not None and pr is not None
    limit = un.perplexity * 1.10
    print(f"unsteered {un.success:.3f} ppl {un.perplexity:.0f} | prompting {pr.success:.3f} "
          f"[{pr.success_ci[0]:.2f}, {pr.success_ci[1]:.2f}] ppl {pr.perplexity:.0f} | budget {limit:.0f}")
    for r in sorted(report.results, key=lambda r: -r.success):
        if r.kind != "steered":
            continue
        mark = "within" if r.perplexity <= limit else "over  "
        print(f"{mark} {r.name:45s} {r.success:.3f} [{r.success_ci[0]:.2f}, {r.success_ci[1]:.2f}] "
              f"ppl {r.perplexity:6.0f} dist3 {r.dist[2]:.2f}")


def main(args: list[str]) -> None:
    small = Protocol(n_prompts=24, samples=4, max_new_tokens=20)
    if args[0] == "layers":
        run("layers", "sentiment-positive", [{"layers": [la]} for la in (5, 8, 11, 14, 17, 20)], [2, 4, 6], small)
    elif args[0] == "positions":
        layers = [int(x) for x in args[1:]] or [8, 11]
        variants = [{"layers": [la], "positions": p} for la in layers for p in ("all", "generated")]
        run("positions", "sentiment-positive", variants, [2, 3, 4, 6], small)
    elif args[0] == "confirm":
        layer, positions, *strengths = args[1:]
        big = Protocol(n_prompts=100, samples=4, max_new_tokens=20)
        for task, sign in (("sentiment-positive", 1), ("sentiment-negative", -1)):
            run(f"confirm-{task}", task, [{"layers": [int(layer)], "positions": positions}],
                [sign * float(s) for s in strengths], big)


if __name__ == "__main__":
    main(sys.argv[1:] or ["layers"])
