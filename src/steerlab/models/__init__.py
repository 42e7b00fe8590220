"""Model loading, per-architecture intervention sites and activation recording."""

from steerlab.models.layout import ARCHITECTURES, SITES, Layout
from steerlab.models.loading import LoadedModel, load_model, wrap_model
from steerlab.models.packaged import DEFAULT_MODEL, PACKAGED

__all__ = ["ARCHITECTURES", "DEFAULT_MODEL", "PACKAGED", "SITES", "Layout", "LoadedModel",
           "load_model", "wrap_model"]
