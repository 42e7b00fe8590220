"""How a direction changes a hidden state. Each operator is linear in the strength ``s`` and is
the identity at ``s = 0``:

``add``    h + s·v                      (ActAdd / CAA)
``ablate`` h − s·(h·v̂)v̂                 (s = 1 removes the direction entirely)
``clamp``  h + s·(c − h·v̂)v̂             (s = 1 sets the projection on v̂ to the value c)

``s`` is (B, T, 1): the row's strength times the position mask.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from steerlab.core.registry import Registry

Operator = Callable[[Tensor, Tensor, Tensor, float], Tensor]
"""``(h (B, T, H), v (H,), s (B|1, T|1, 1), c) -> (B, T, H)``"""

OPERATORS: Registry[Operator] = Registry("operator")


@OPERATORS.decorator("add")
def add(h: Tensor, v: Tensor, s: Tensor, c: float) -> Tensor:
    return h + s * v


def project(h: Tensor, v: Tensor, s: Tensor, c: float) -> Tensor:
    """``h + s·(c − h·û)·û``: ablate is ``c = 0``, clamp is ``c`` = the target projection."""
    u = v / v.norm()
    return h + s * (c - (h @ u).unsqueeze(-1)) * u


@OPERATORS.decorator("ablate")
def ablate(h: Tensor, v: Tensor, s: Tensor, c: float) -> Tensor:
    return project(h, v, s, 0.0)


@OPERATORS.decorator("clamp")
def clamp(h: Tensor, v: Tensor, s: Tensor, c: float) -> Tensor:
    return project(h, v, s, c)
