"""Measurement primitives shared by methods and evaluation: scorers by name (sentiment, VADER,
toxicity, profanity, embedding probes), packaged sentence encoders and embedding probes.

They sit below the methods (SteerLM's value model labels data with them) and below the evaluation
harness (which reports them), so neither imports the other for them."""

from steerlab.scoring.scorers import SCORERS, get_scorer

__all__ = ["SCORERS", "get_scorer"]
