"""Write each shipped artifact's one-line eval summary from the eval cards the harness stored in it.

(``steerlab artifacts`` computes the same line from the cards; this stores it in the artifact for
readers of the JSON.) Run after ``steerlab eval --artifact src/steerlab/artifacts/NAME --task T ...`` (commands in
``experiments/artifacts/README.md``): for every ``eval:TASK`` card, the best steered strength
against unsteered and prompting, with perplexity, and whether any strength stays within the
fluency budget.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from steerlab.artifacts.cards import summary
from steerlab.core.artifact import update_eval_card

ROOT = Path("src/steerlab/artifacts")


def main(names: list[str]) -> None:
    for name in names:
        doc = json.loads((ROOT / name / "steer_config.json").read_text())
        cards = {k: v for k, v in doc.get("eval_card", {}).items() if k.startswith("eval:")}
        if not cards:
            continue
        text = summary(doc.get("eval_card", {}))
        update_eval_card(ROOT / name, {"summary": text})
        print(f"{name}: {text}")


if __name__ == "__main__":
    main(sys.argv[1:] or [p.name for p in ROOT.iterdir() if (p / "steer_config.json").is_file()])
