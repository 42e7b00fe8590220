"""Core abstractions shared by every method: artifacts, steerers, hooks, positions, registries."""

from steerlab.core.apply import apply, patch, prepare
from steerlab.core.artifact import Artifact, load_artifact, save_artifact
from steerlab.core.fingerprint import ModelFingerprint
from steerlab.core.steerer import METHODS, Application, Prepared, Steer, Steerer, get_steerer

__all__ = [
    "METHODS", "Application", "Artifact", "ModelFingerprint", "Prepared", "Steer", "Steerer", "apply",
    "get_steerer", "load_artifact", "patch", "prepare", "save_artifact",
]
