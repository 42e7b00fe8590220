"""Activation steering: contrastive directions added to hidden states (seed 001)."""

from steerlab.methods.vectors.aggregators import AGGREGATORS
from steerlab.methods.vectors.gguf_io import export_gguf, import_gguf
from steerlab.methods.vectors.operators import OPERATORS
from steerlab.methods.vectors.steerer import VectorOptions, VectorSteerer, extract
from steerlab.methods.vectors.sweep import LayerSweep, sweep_layers
from steerlab.methods.vectors.vector import SteeringVector

__all__ = ["AGGREGATORS", "OPERATORS", "LayerSweep", "SteeringVector", "VectorOptions",
           "VectorSteerer", "export_gguf", "extract", "import_gguf", "sweep_layers"]
