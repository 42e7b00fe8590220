"""Built-in steering methods; importing this package registers them all."""

from steerlab.methods import vectors  # noqa: F401
