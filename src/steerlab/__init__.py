"""steerlab — steer language models at inference time, measurably.

Quick start::

    import steerlab
    lm = steerlab.load_model()                       # packaged SmolLM2-135M, offline
    vec = steerlab.extract(lm, "sentiment", layers=range(8, 16))
    with steerlab.apply(lm, steerlab.Steer(vec, 4.0)):
        print(steerlab.generate(lm, ["My day was"]))

The public names load lazily (PEP 562), so ``import steerlab`` and the CLI's start-up import no
torch or transformers until a name that needs them is used; this also lets the CLI switch the
Hugging Face hub offline before huggingface_hub reads its settings.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from steerlab._version import __version__
from steerlab.errors import SteerlabError

_LAZY = {
    "Artifact": "steerlab.core.artifact", "load_artifact": "steerlab.core.artifact",
    "save_artifact": "steerlab.core.artifact", "ModelFingerprint": "steerlab.core.fingerprint",
    "METHODS": "steerlab.core.methods", "MethodSpec": "steerlab.core.methods",
    "register_method": "steerlab.core.methods", "Application": "steerlab.core.steerer",
    "Steer": "steerlab.core.steerer",
    "Steerer": "steerlab.core.steerer", "apply": "steerlab.core.apply", "get_steerer": "steerlab.core.steerer",
    "patch": "steerlab.core.apply", "prepare": "steerlab.core.apply", "Prepared": "steerlab.core.steerer",
    "ContrastSet": "steerlab.data.pairs", "as_contrast": "steerlab.data.pairs",
    "load_contrast": "steerlab.data.pairs", "load_prompts": "steerlab.data.pairs",
    "generate": "steerlab.generation.generate", "Decoding": "steerlab.generation.decoding",
    "SteeringVector": "steerlab.methods.vectors",
    "export_gguf": "steerlab.methods.vectors", "extract": "steerlab.methods.vectors",
    "distil": "steerlab.methods.vectors",
    "import_gguf": "steerlab.methods.vectors", "sweep_layers": "steerlab.methods.vectors",
    "Layout": "steerlab.models", "LoadedModel": "steerlab.models", "load_model": "steerlab.models",
    "wrap_model": "steerlab.models",
}

__all__ = [
    "METHODS", "Application", "Artifact", "ContrastSet", "Decoding", "Layout", "LoadedModel", "MethodSpec",
    "ModelFingerprint",
    "Prepared", "Steer", "Steerer", "SteeringVector", "SteerlabError", "__version__", "apply", "as_contrast",
    "distil", "export_gguf", "extract", "generate", "get_steerer", "import_gguf", "load_artifact",
    "load_contrast", "load_model", "load_prompts", "patch", "prepare", "register_method", "save_artifact",
    "sweep_layers", "wrap_model",
]

if TYPE_CHECKING:
    from steerlab.core.apply import apply, patch, prepare
    from steerlab.core.artifact import Artifact, load_artifact, save_artifact
    from steerlab.core.fingerprint import ModelFingerprint
    from steerlab.core.methods import METHODS, MethodSpec, register_method
    from steerlab.core.steerer import Application, Prepared, Steer, Steerer, get_steerer
    from steerlab.data.pairs import ContrastSet, as_contrast, load_contrast, load_prompts
    from steerlab.generation.decoding import Decoding
    from steerlab.generation.generate import generate
    from steerlab.methods.vectors import SteeringVector, distil, export_gguf, extract, import_gguf, sweep_layers
    from steerlab.models import Layout, LoadedModel, load_model, wrap_model


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'steerlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
