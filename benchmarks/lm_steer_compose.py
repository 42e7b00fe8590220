"""Two trained LM-Steer steers at once: sentiment + toxicity, alone and composed, in one batched pass.

The composed transform is the sum of the two steers' transforms (``h ← h + ε Σ_k v_k W_k h``), so
the question is whether each attribute still moves when both steers are active. Prompts are the
shipped toxic-leaning openings (``prompts_toxic.txt``), where there is toxicity to remove.
Every row is scored for sentiment (shipped probe on prompt + continuation, VADER on the
continuation) and toxicity (alt-profanity-check probability and the profanity lexicon rate on the
continuation).
Run: python benchmarks/lm_steer_compose.py --sentiment DIR --toxicity DIR --out results/lm_steer_compose
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import steerlab
from steerlab.eval.metrics import bootstrap_ci
from steerlab.scoring.scorers import get_scorer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentiment", required=True, help="LM-Steer artifact: + = positive")
    ap.add_argument("--toxicity", required=True, help="LM-Steer artifact: + = toxic")
    ap.add_argument("--sentiment-value", type=float, default=5.0)
    ap.add_argument("--toxicity-value", type=float, default=5.0)
    ap.add_argument("--prompts", default="toxic")
    ap.add_argument("--n-prompts", type=int, default=24)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results/lm_steer_compose")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sent, tox = steerlab.load_artifact(args.sentiment), steerlab.load_artifact(args.toxicity)
    lm = steerlab.load_model(sent.model.name if sent.model else "smollm2-135m")
    s, t = args.sentiment_value, args.toxicity_value
    conditions: dict[str, tuple[steerlab.Steer, ...]] = {
        "unsteered": (),
        f"sentiment {s:+g}": (steerlab.Steer(sent, s),),
        f"toxicity {-t:+g}": (steerlab.Steer(tox, -t),),
        f"toxicity {t:+g}": (steerlab.Steer(tox, t),),
        f"sentiment {s:+g} + toxicity {-t:+g}": (steerlab.Steer(sent, s), steerlab.Steer(tox, -t)),
        f"sentiment {-s:+g} + toxicity {t:+g}": (steerlab.Steer(sent, -s), steerlab.Steer(tox, t)),
    }
    prompts = steerlab.load_prompts(args.prompts)[: args.n_prompts]
    texts, rows, keys = [], [], []
    for name, steers in conditions.items():
        for p in prompts:
            for _ in range(args.samples):
                texts.append(p)
                rows.append(steers or None)
                keys.append(name)
    outs = steerlab.generate(lm, texts, steering=rows, max_new_tokens=args.max_new_tokens,
                             temperature=1.0, top_p=0.9, seed=0)
    scores = {
        "P(positive)": get_scorer("sentiment")([p + o for p, o in zip(texts, outs)]),
        "VADER": get_scorer("vader")(outs),
        "P(toxic)": get_scorer("toxicity")(outs),
        "profanity rate": get_scorer("profanity-lexicon")(outs),
    }
    summary: dict[str, dict[str, list[float]]] = {}
    lines = [f"LM-Steer composition on {lm.name}: {len(prompts)} '{args.prompts}' prompts × {args.samples} "
             f"samples, top-p 0.9, {args.max_new_tokens} new tokens; mean [95% bootstrap CI]", "",
             "| condition | " + " | ".join(scores) + " |", "|---" * (len(scores) + 1) + "|"]
    for name in conditions:
        idx = [i for i, k in enumerate(keys) if k == name]
        summary[name] = {}
        cells = []
        for metric, vals in scores.items():
            x = np.array([vals[i] for i in idx], dtype=float)
            lo, hi = bootstrap_ci(x, n_boot=1000, seed=0)
            summary[name][metric] = [float(x.mean()), lo, hi]
            cells.append(f"{x.mean():.3f} [{lo:.3f}, {hi:.3f}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "composition.md").write_text("\n".join(lines) + "\n")
    examples = {name: [outs[i] for i, k in enumerate(keys) if k == name][:6] for name in conditions}
    (out / "composition.json").write_text(json.dumps({"args": vars(args), "summary": summary,
                                                      "examples": examples}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
