"""Evaluation: scorers (and, with issue 3, metrics, sweeps and reports)."""

from steerlab.eval.scorers import SCORERS, get_scorer

__all__ = ["SCORERS", "get_scorer"]
