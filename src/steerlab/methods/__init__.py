"""Built-in steering methods; importing this package registers them all."""

from steerlab.methods import lm_steer, steerlm, vectors  # noqa: F401
