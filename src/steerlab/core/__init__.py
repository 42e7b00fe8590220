"""Core abstractions shared by every method: artifacts, steerers, hooks, positions, registries."""

from steerlab.core.artifact import Artifact, load_artifact, save_artifact
from steerlab.core.fingerprint import ModelFingerprint
from steerlab.core.steerer import METHODS, Application, Steer, Steerer, apply, get_steerer, patch

__all__ = [
    "METHODS", "Application", "Artifact", "ModelFingerprint", "Steer", "Steerer", "apply",
    "get_steerer", "load_artifact", "patch", "save_artifact",
]
