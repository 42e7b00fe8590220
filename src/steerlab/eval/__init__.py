"""Evaluation: the harness (tasks, protocol, metrics, perplexity, reports, plots) and SteerLM
controllability sweeps. Scorers, encoders and probes live in :mod:`steerlab.scoring`."""

from steerlab.scoring.scorers import SCORERS, get_scorer

__all__ = ["SCORERS", "get_scorer"]
