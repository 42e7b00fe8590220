"""Write labelled register data for extracting a formality vector (deterministic): sentences of
the same four sources the shipped formality probe learned from (formal = news articles + House of
Commons speeches, casual = tweets + chatbot lines), the last ones in each source's seeded order:
for news and tweets those after the probe's 1,500, which it never saw; the Commons speeches (1,546
clean sentences) and the chatbot lines (910) are smaller than that, so their share overlaps the
probe's training text (the vector and the scorer then learned register partly from the same
sentences; the continuations it scores are new text either way). Sentences that begin with one of
the formality prompts are dropped, so no prompt scores its own training text.

    python experiments/formality/formality_pairs.py OUT.jsonl [PER_SOURCE]   (default 150)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from make_formality_probe import DATA, PER_SOURCE, sentences  # noqa: E402


def main(out: str, per_source: int = 150) -> None:
    from steerlab.data.corpora import chatterbot, commons_speeches, news_articles, tweets

    prompts = [p.strip().lower() for p in (DATA / "sets" / "prompts_formality.txt").read_text().splitlines() if p]
    n = PER_SOURCE + per_source

    def fresh(docs: list[str], seed: int) -> list[str]:
        rows = sentences(docs, n + 50, seed)
        rows = rows[max(0, len(rows) - per_source - 50):]
        return [s for s in rows if not any(s.lower().startswith(p) for p in prompts)][:per_source]

    chat = sorted({t.reply for t in chatterbot()} | {t.prompt for t in chatterbot()})
    formal = fresh([d.text for d in news_articles()], 0) + fresh([d.text for d in commons_speeches()], 1)
    casual = fresh([d.text for d in tweets()], 2) + fresh(chat, 3)
    with open(out, "w", encoding="utf-8") as f:
        for label, texts in (("positive", formal), ("negative", casual)):
            for t in texts:
                f.write(json.dumps({"text": t, "label": label}) + "\n")
    print(f"{len(formal)} formal + {len(casual)} casual -> {out}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
