"""Attribute scorers: ``texts -> one float per text``, registered by name.

The evaluation harness (issue 3) adds trained probes and toxicity scorers here; the activation
demo and layer sweep use VADER sentiment (compound score in [-1, 1], lexicon-based, offline).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from steerlab.core.registry import Registry
from steerlab.errors import MissingDependencyError

Scorer = Callable[[Sequence[str]], list[float]]

SCORERS: Registry[Scorer] = Registry("scorer")


@lru_cache(maxsize=1)
def _vader():  # type: ignore[no-untyped-def]
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise MissingDependencyError("the vader scorer needs: pip install vaderSentiment") from None
    return SentimentIntensityAnalyzer()


@SCORERS.decorator("vader")
def vader(texts: Sequence[str]) -> list[float]:
    """VADER compound sentiment in [-1, 1] (positive > 0)."""
    analyzer = _vader()
    return [float(analyzer.polarity_scores(t)["compound"]) for t in texts]


def get_scorer(name: str) -> Scorer:
    """A registered scorer by name."""
    return SCORERS.get(name)
