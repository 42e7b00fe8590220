"""DGLM beside the other shipped steers on the same eval protocol (24 prompts x 4 samples x 20
tokens, top-p 0.9, seed 0, perplexity under qwen2.5-0.5b), read from each artifact's eval card:
per task, unsteered, prompting, and each artifact's sweep, marking the best success within the
+10% perplexity budget.

    python experiments/dglm/compare.py > experiments/dglm/compare.md
"""

from __future__ import annotations

import json

from steerlab.artifacts import shipped

TASKS = {"sentiment-positive": ["sentiment-vec", "lmsteer-sentiment", "dglm-smollm2"],
         "sentiment-negative": ["sentiment-vec", "lmsteer-sentiment", "dglm-smollm2"],
         "detoxify": ["lmsteer-toxicity", "dglm-smollm2"]}


def main() -> None:
    cat = shipped()
    for task, names in TASKS.items():
        print(f"\n### {task}\n")
        print("| condition | success | perplexity | within +10% ppl |")
        print("|---|---:|---:|---|")
        base = None
        for name in names:
            card = json.loads((cat[name].path / "steer_config.json").read_text()).get("eval_card", {}).get(
                f"eval:{task}")
            if card is None:
                print(f"| {name} | (no card) | | |")
                continue
            if base is None:
                base = card
                for k in ("unsteered", "prompting"):
                    print(f"| {k} | {card[k]['success']:.0%} | {card[k]['perplexity']:.0f} | |")
            limit = card["recommended"]["perplexity_limit"]
            for row in card["sweep"]:
                ok = "yes" if row["perplexity"] <= limit else ""
                print(f"| {name} x{row['strength']:g} | {row['success']:.0%} | {row['perplexity']:.0f} | {ok} |")


if __name__ == "__main__":
    main()
