"""Write each shipped artifact's one-line eval summary from the eval cards the harness stored in it.

Run after ``steerlab eval --artifact src/steerlab/artifacts/NAME --task T ...`` (commands in
``experiments/artifacts/README.md``): for every ``eval:TASK`` card, the best steered strength
against unsteered and prompting, with perplexity, and whether any strength stays within the
fluency budget.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from steerlab.core.artifact import update_eval_card

ROOT = Path("src/steerlab/artifacts")


def summary(card: dict) -> str:
    best = max(card["sweep"], key=lambda r: r["success"])
    un, pr = card["unsteered"], card["prompting"]
    rec = card.get("recommended") or {}
    chosen = next((r for r in card["sweep"] if r["strength"] == rec.get("strength")), None)
    within = (f"best within +{100 * rec['budget']:.0f}% ppl: x{rec['strength']:g} = {100 * chosen['success']:.0f}%"
              if chosen is not None else f"none within +{100 * rec.get('budget', 0.1):.0f}% ppl")
    return (f"{card['task']}: {100 * best['success']:.0f}% at x{best['strength']:g} (ppl {best['perplexity']:.0f}) vs "
            f"unsteered {100 * un['success']:.0f}% (ppl {un['perplexity']:.0f}), prompting "
            f"{100 * pr['success']:.0f}% (ppl {pr['perplexity']:.0f}); {within}")


def main(names: list[str]) -> None:
    for name in names:
        doc = json.loads((ROOT / name / "steer_config.json").read_text())
        cards = {k: v for k, v in doc.get("eval_card", {}).items() if k.startswith("eval:")}
        if not cards:
            continue
        text = " | ".join(summary(c) for _, c in sorted(cards.items()))
        update_eval_card(ROOT / name, {"summary": text})
        print(f"{name}: {text}")


if __name__ == "__main__":
    main(sys.argv[1:] or [p.name for p in ROOT.iterdir() if (p / "steer_config.json").is_file()])
