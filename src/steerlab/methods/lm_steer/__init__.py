"""LM-Steer: learned low-rank transforms of the output word embeddings (Han et al., ACL 2024)."""

from steerlab.core.methods import MethodSpec, register_method
from steerlab.methods.lm_steer.artifact import LMSteer
from steerlab.methods.lm_steer.config import LMSteerTrainConfig
from steerlab.methods.lm_steer.steerer import LMSteerOptions, LMSteerSteerer
from steerlab.methods.lm_steer.train import train

METHOD = register_method(MethodSpec("lm_steer", LMSteer, LMSteerSteerer,
                                    description="learned low-rank transforms of the output word embeddings"))

__all__ = ["LMSteer", "LMSteerTrainConfig", "METHOD", "LMSteerOptions", "LMSteerSteerer", "train"]
