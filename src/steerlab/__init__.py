"""steerlab — steer language models at inference time, measurably.

Quick start::

    import steerlab
    lm = steerlab.load_model()                       # packaged SmolLM2-135M, offline
    vec = steerlab.extract(lm, "sentiment", layers=range(8, 16))
    with steerlab.apply(lm, steerlab.Steer(vec, 4.0)):
        print(steerlab.generate(lm, ["My day was"]))
"""

from steerlab._version import __version__
from steerlab.core.artifact import Artifact, load_artifact, save_artifact
from steerlab.core.fingerprint import ModelFingerprint
from steerlab.core.steerer import METHODS, Application, Steer, Steerer, apply, get_steerer, patch
from steerlab.data.pairs import ContrastSet, as_contrast, load_contrast, load_prompts
from steerlab.errors import SteerlabError
from steerlab.generation.generate import generate
from steerlab.methods.vectors import SteeringVector, export_gguf, extract, import_gguf, sweep_layers
from steerlab.models import Layout, LoadedModel, load_model, wrap_model

__all__ = [
    "METHODS", "Application", "Artifact", "ContrastSet", "Layout", "LoadedModel", "ModelFingerprint",
    "Steer", "Steerer", "SteeringVector", "SteerlabError", "__version__", "apply", "as_contrast",
    "export_gguf", "extract", "generate", "get_steerer", "import_gguf", "load_artifact",
    "load_contrast", "load_model", "load_prompts", "patch", "save_artifact", "sweep_layers",
    "wrap_model",
]
