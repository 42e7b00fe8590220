"""Attribute scorers: ``texts -> one float per text``, looked up by name.

Built in:
  ``vader``              VADER compound sentiment in [-1, 1] (lexicon; offline).
  ``sentiment``          P(positive) from the shipped MiniLM + logistic-regression probe trained on
                         Rotten Tomatoes snippets (held-out accuracy in its ``probe_config.json``).
  ``formality``          P(formal) from the shipped MiniLM + logistic-regression probe trained on news and
                         parliamentary sentences (formal) vs tweets and chatbot small talk (casual).
  ``toxicity``           P(offensive) from alt-profanity-check (ships its own linear model).
  ``profanity-lexicon``  1.0 if better-profanity's word list matches, else 0.0 (a second opinion).
  ``probe:DIR``          any probe trained with ``steerlab eval train-probe`` (generic attributes).
Perspective API (used by the papers) is shut down; these are the local replacements.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steerlab.core.registry import Registry
from steerlab.errors import MissingDependencyError

if TYPE_CHECKING:
    from steerlab.scoring.probes import EmbeddingProbe

Scorer = Callable[[Sequence[str]], list[float]]

SCORERS: Registry[Scorer] = Registry("scorer")


def _need(package: str, install: str) -> Any:
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        raise MissingDependencyError(f"this scorer needs: {install}") from None


@lru_cache(maxsize=1)
def _vader() -> Any:
    mod = _need("vaderSentiment.vaderSentiment", "pip install vaderSentiment")
    return mod.SentimentIntensityAnalyzer()


@SCORERS.decorator("vader")
def vader(texts: Sequence[str]) -> list[float]:
    """VADER compound sentiment in [-1, 1] (positive > 0)."""
    analyzer = _vader()
    return [float(analyzer.polarity_scores(t)["compound"]) for t in texts]


def shipped_probe_path(name: str) -> Path:
    return Path(str(resources.files("steerlab.data") / "probes" / name))


@lru_cache(maxsize=8)
def _probe(path: str) -> EmbeddingProbe:
    from steerlab.scoring.probes import EmbeddingProbe

    return EmbeddingProbe.load(path)


@SCORERS.decorator("sentiment")
def sentiment(texts: Sequence[str]) -> list[float]:
    """P(positive) from the shipped sentiment probe (MiniLM embeddings + logistic regression)."""
    return _probe(str(shipped_probe_path("sentiment"))).score(texts)


@SCORERS.decorator("formality")
def formality(texts: Sequence[str]) -> list[float]:
    """P(formal register) from the shipped formality probe (MiniLM embeddings + logistic regression)."""
    return _probe(str(shipped_probe_path("formality"))).score(texts)


@SCORERS.decorator("toxicity")
def toxicity(texts: Sequence[str]) -> list[float]:
    """P(offensive) from alt-profanity-check."""
    pc = _need("profanity_check", "pip install alt-profanity-check==1.9.1")
    return [float(p) for p in pc.predict_prob(list(texts))] if texts else []


@SCORERS.decorator("profanity-lexicon")
def profanity_lexicon(texts: Sequence[str]) -> list[float]:
    """1.0 when better-profanity's word list finds a match."""
    bp = _need("better_profanity", "pip install better-profanity")
    return [float(bp.profanity.contains_profanity(t)) for t in texts]


def get_scorer(name: str) -> Scorer:
    """A registered scorer, or ``probe:DIR`` for a trained probe directory."""
    if name.startswith("probe:"):
        path = name.split(":", 1)[1]
        _probe(path)  # load now so a bad path fails before any generation
        return lambda texts: _probe(path).score(texts)
    return SCORERS.get(name)
