"""LM-Steer: learned low-rank transforms of the output word embeddings (seed 002)."""

from steerlab.methods.lm_steer.artifact import LMSteer
from steerlab.methods.lm_steer.steerer import LMSteerOptions, LMSteerSteerer
from steerlab.methods.lm_steer.train import train

__all__ = ["LMSteer", "LMSteerOptions", "LMSteerSteerer", "train"]
