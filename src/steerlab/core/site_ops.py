"""Steering as data: what a method does to one site's hidden state, written as ops an engine can
run from fixed tables inside a compiled graph (vLLM with torch.compile / CUDA graphs), where
per-call hooks never run.

A method that can express an application this way returns :class:`SiteOp` s from
:meth:`~steerlab.core.steerer.Steerer.site_ops`; every op is linear in the application's strength
``s`` (times the position rule's 0/1 mask) and the identity at ``s = 0``:

``add``      h ← h + s·v
``project``  h ← h + s·(c − h·û)·û         (û = v/‖v‖; c = 0 ablates the direction, c = target clamps)

At one site, the adds of every application are summed first and added once; the projections then
run one after another in application order — the same order the method's own hooks use, so an
engine that runs the ops equals the hooks.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from steerlab.core.positions import PositionRule


@dataclass(frozen=True)
class SiteOp:
    """One op at one site of one decoder layer (see the module docstring)."""

    site: str  # "block" | "mlp" | "attn"
    layer: int
    kind: str  # "add" | "project"
    direction: Tensor  # (H,) float32
    positions: PositionRule = "all"
    target: float = 0.0  # c of a projection (0: ablate)
