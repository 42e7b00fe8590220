"""Steering inside vLLM's compiled graph: fixed tables, filled in place, read by one op per
steered site that Dynamo traces once.

vLLM compiles the decoder stack (torch.compile) and, on a GPU, replays it as CUDA graphs, so a
hook added for one step never runs there. As vLLM's multi-LoRA does, steering here is part of the
forward itself. After the model loads (before vLLM compiles or captures it), every steerable site
— each decoder layer's output (``block``), its MLP and its attention, as configured — runs a
:class:`SteeringSite` after its own forward; the op reads persistent buffers whose addresses
never change:

- ``token_row`` (max tokens,): each token's row in the tables (0 = unsteered, a zero row). A row
  is one request in one *segment* of positions (a position rule such as ``generated`` or ``k``
  splits a request's tokens into segments with different active ops);
- per site: ``add`` (layers, rows, H): the row's summed add vector at each layer (every add op of
  every artifact, strength times direction), and ``proj_unit`` (layers, rows, P, H) /
  ``proj_strength`` / ``proj_target`` (layers, rows, P): up to P projections (ablate / clamp) per
  row, run in order after the add;
- for ``block``: ``on`` (layers, rows): whether a row steers that layer, so an unsteered token of a
  ``pair`` layer passes through bit for bit, and a steered one is collapsed into the residual
  stream (:mod:`steerlab.vllm.conventions`).

The op is a gather of each token's row and an add (``h + add[layer][token_row]``), then P
projections: no artifact index, no per-step (T, D) product, and no limit on how many artifacts
are in flight. An unsteered token adds a zero row; nothing branches on data. The host side
(:mod:`steerlab.vllm.rows`) writes a request's rows when it joins and each step's ``token_row``.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import torch
from torch import Tensor, nn

from steerlab.core.hooks import output_hidden, replace_hidden
from steerlab.errors import SteerlabError
from steerlab.vllm.capacity import Capacity
from steerlab.vllm.conventions import Convention, layer_convention

log = logging.getLogger("steerlab.vllm")
KINDS = ("add", "proj_unit", "proj_strength", "proj_target")


class SteeringTables(nn.Module):
    """The persistent buffers and the op every steered site runs (see the module docstring).
    Tables exist only for the capacity's sites."""

    token_row: Tensor
    on: Tensor

    def __init__(self, num_layers: int, hidden: int, cap: Capacity, dtype: torch.dtype,
                 device: torch.device) -> None:
        super().__init__()
        self.cap, self.num_layers, self.hidden = cap, num_layers, hidden
        self.wrapped: set[tuple[str, int]] = set()  # (site, layer) whose module runs the table op
        self.refused: dict[tuple[str, int], str] = {}  # (site, layer) left unwrapped -> why
        self.conventions: dict[int, Convention] = {}  # layer -> what its decoder layer returns
        L, V, P = num_layers, cap.rows, max(cap.projections, 1)  # noqa: N806

        def buf(name: str, shape: tuple[int, ...], kind: torch.dtype) -> None:
            self.register_buffer(name, torch.zeros(shape, dtype=kind, device=device), persistent=False)

        buf("token_row", (cap.tokens,), torch.long)
        buf("on", (L, V), torch.bool)  # layer-major: a layer's rows are one contiguous table to gather from
        for site in cap.sites:
            buf(f"{site}_add", (L, V, hidden), dtype)
            buf(f"{site}_proj_unit", (L, V, P, hidden), dtype)
            buf(f"{site}_proj_strength", (L, V, P), dtype)
            buf(f"{site}_proj_target", (L, V, P), dtype)
        size = sum(b.numel() * b.element_size() for b in self.buffers())
        log.info("steerlab: steering tables for %d layers x %s, %d rows (%d requests x %d segments), %d projections "
                 "per site: %.1f MiB", L, "/".join(cap.sites) or "no site", V, cap.requests, cap.segments,
                 cap.projections, size / 2**20)

    def table(self, site: str, kind: str) -> Tensor:
        """A site's buffer: ``add``, ``proj_unit``, ``proj_strength`` or ``proj_target``."""
        return cast(Tensor, getattr(self, f"{site}_{kind}"))

    def steer(self, site: str, layer: int, hidden: Tensor) -> Tensor:
        """``hidden`` (T, H) — or (B, T, H), read as B·T tokens — with every token's row of ops
        applied (tokens ≤ capacity)."""
        h = hidden.reshape(-1, hidden.shape[-1])  # (T, H)
        rows = self.token_row[: h.shape[0]]  # (T,)
        h = h + self.table(site, "add")[layer][rows]  # (V, H)[rows] -> (T, H)
        if self.cap.projections:
            units = self.table(site, "proj_unit")[layer][rows]  # (T, P, H)
            strength = self.table(site, "proj_strength")[layer][rows]  # (T, P)
            target = self.table(site, "proj_target")[layer][rows]  # (T, P)
            for j in range(self.cap.projections):
                u = units[:, j]  # (T, H)
                dot = (h * u).sum(dim=-1, keepdim=True)  # (T, 1)
                h = h + strength[:, j:j + 1] * (target[:, j:j + 1] - dot) * u
        return h.view(hidden.shape)

    def steer_block(self, layer: int, out: Any) -> Any:
        """A decoder layer's output, by the layer's convention (:mod:`steerlab.vllm.conventions`):
        ``pair`` — ``(hidden, residual)`` whose sum is the stream; ``first`` — the stream alone, or
        a tuple whose first item is the stream (the rest pass through)."""
        if isinstance(out, Tensor):
            return self.steer("block", layer, out)
        if self.conventions.get(layer, "first") == "first":
            return (self.steer("block", layer, out[0]), *out[1:])
        hidden, residual = out  # (T, H) each
        if residual is None:  # no residual yet: hidden is the stream
            return self.steer("block", layer, hidden), None
        on = self.on[layer][self.token_row[: hidden.shape[0]]].unsqueeze(-1)  # (T, 1)
        steered = self.steer("block", layer, hidden + residual)
        return torch.where(on, steered, hidden), torch.where(on, torch.zeros_like(residual), residual)


class SteeringSite:
    """A site module's forward followed by its table op: what ``module.forward`` becomes (the
    original stays in ``inner``). ``print(module.forward)`` names the site."""

    def __init__(self, tables: SteeringTables, inner: Any, site: str, layer: int) -> None:
        self.tables, self.inner, self.site, self.layer = tables, inner, site, layer

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.inner(*args, **kwargs)
        if self.site == "block":
            return self.tables.steer_block(self.layer, out)
        return replace_hidden(out, self.tables.steer(self.site, self.layer, output_hidden(out)))

    def __repr__(self) -> str:
        return f"SteeringSite(site={self.site!r}, layer={self.layer})"


def wrap_sites(tables: SteeringTables, site_module: Any, num_layers: int, declared: Convention | None = None) -> None:
    """Make every site module's forward (of the capacity's sites) a :class:`SteeringSite`
    (``site_module(layer, site)`` returns the module). A ``block`` site whose layer convention is
    unknown (or contradicts ``declared``, the model class's) stays unwrapped, its reason kept in
    ``tables.refused``. Idempotent per module."""
    for layer in range(num_layers):
        try:
            tables.conventions[layer] = layer_convention(site_module(layer, "block"), declared)
        except (ValueError, SteerlabError) as e:
            tables.refused[("block", layer)] = str(e)
        for site in tables.cap.sites:
            if (site, layer) in tables.refused:
                continue
            try:
                module = site_module(layer, site)
            except SteerlabError as e:  # a site this architecture lacks stays unwrapped (refused when asked)
                tables.refused[(site, layer)] = str(e)
                continue
            tables.wrapped.add((site, layer))
            if not isinstance(module.forward, SteeringSite):
                module.forward = SteeringSite(tables, module.forward, site, layer)
