"""steerlab's HTTP server: an OpenAI-compatible API with per-request steering, over the
continuous-batching engine (``steerlab serve``; needs the ``serve`` extra)."""

from steerlab.server.app import create_app
from steerlab.server.config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
