"""Activation steering (ActAdd / CAA): contrastive directions added to hidden states."""

from steerlab.core.methods import MethodSpec, register_method
from steerlab.methods.vectors.aggregators import AGGREGATORS
from steerlab.methods.vectors.distil import distil, distil_pairs
from steerlab.methods.vectors.gguf_io import export_gguf, import_gguf
from steerlab.methods.vectors.operators import OPERATORS
from steerlab.methods.vectors.steerer import VectorOptions, VectorSteerer, extract
from steerlab.methods.vectors.sweep import LayerSweep, sweep_layers
from steerlab.methods.vectors.vector import SteeringVector

METHOD = register_method(MethodSpec("vectors", SteeringVector, VectorSteerer,
                                    description="contrastive directions added to, ablated from or clamped in "
                                                "hidden states"))

__all__ = ["AGGREGATORS", "METHOD", "OPERATORS", "LayerSweep", "SteeringVector", "VectorOptions",
           "VectorSteerer", "distil", "distil_pairs", "export_gguf", "extract", "import_gguf", "sweep_layers"]
