"""The service layer: a JSON-serialisable steering request (:class:`GenerationRequest`,
:class:`SteerSpec`) and the one :func:`resolve` that turns it into steers, a model and decoding
settings. The CLI and the HTTP server are thin layers over it."""

from steerlab.service.resolve import ArtifactStore, Resolved, model_for, resolve, run
from steerlab.service.spec import GenerationRequest, SteerSpec

__all__ = ["ArtifactStore", "GenerationRequest", "Resolved", "SteerSpec", "model_for", "resolve", "run"]
