"""Steering inside vLLM's compiled graph: fixed tables, filled in place, read by ops that Dynamo
traces once.

vLLM compiles the decoder stack (torch.compile) and, on a GPU, replays it as CUDA graphs, so a
hook added for one step never runs there. As vLLM's multi-LoRA does, steering here is part of the
forward itself. After the model loads (before vLLM compiles or captures it), every steerable site
— each decoder layer's output (``block``), its MLP and its attention — gets a wrapper that runs
:meth:`GraphTables.steer`; that op reads persistent buffers whose addresses never change:

- ``variant`` (max tokens,): each token's row in the tables (0 = unsteered, a zero row). A row is
  one request in one *segment* of positions (a position rule such as ``generated`` or ``k`` splits
  a request's tokens into segments with different active ops);
- per site: ``dirs`` / ``units`` (layers, D, H): the directions of up to D artifacts (raw and unit
  length), ``coef`` (layers, rows, D): each row's add strength per direction, and ``pidx`` /
  ``ps`` / ``pc`` (layers, rows, P): up to P projections per row (direction index, strength,
  target), run in order after the add;
- for ``block``: ``on`` (layers, rows): whether a row steers that layer, so an unsteered token's
  ``(hidden, residual)`` pair passes through bit for bit, and a steered one is collapsed into the
  residual stream (as the eager hooks and transformers compute it).

An unsteered token costs a gather of a zero row and a multiply by zero; nothing branches on data.
The host side (:mod:`steerlab.vllm.graph_rows`) writes a request's rows when it joins, frees them
when it leaves, and each step writes ``variant`` from numpy arrays of the step's tokens. New artifacts and
new specs only write into the tables, so nothing recompiles; capacities are set once, when the
worker attaches (environment variables below), and logged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn

from steerlab.core.hooks import output_hidden, replace_hidden
from steerlab.core.positions import PositionRule
from steerlab.core.site_ops import SiteOp
from steerlab.errors import SteerlabError

SITES = ("block", "mlp", "attn")
ARTIFACTS_ENV = "STEERLAB_VLLM_GRAPH_ARTIFACTS"  # D: artifacts whose directions the tables hold at once
PROJECTIONS_ENV = "STEERLAB_VLLM_GRAPH_PROJECTIONS"  # P: projections (ablate / clamp) per token and site
SEGMENTS_ENV = "STEERLAB_VLLM_GRAPH_SEGMENTS"  # S: position segments per request
SITES_ENV = "STEERLAB_VLLM_GRAPH_SITES"  # which sites get table ops (each costs graph size and a little time)


def _env_int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SteerlabError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SteerlabError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Capacity:
    """Sizes of the tables, fixed when the worker attaches."""

    artifacts: int = 32
    projections: int = 2
    segments: int = 4
    requests: int = 256  # vLLM's max_num_seqs: requests steered at once
    tokens: int = 8192  # vLLM's max_num_batched_tokens: tokens in one step
    sites: tuple[str, ...] = SITES

    @property
    def rows(self) -> int:
        return 1 + self.requests * self.segments

    @classmethod
    def from_env(cls, requests: int, tokens: int) -> Capacity:
        """Capacities from the environment. Defaults: the ``block`` site (the residual stream, what
        steering vectors and llama.cpp control vectors use; each extra site adds its ops to every
        layer of the graph), 32 artifacts, 1 projection per site and token, 4 segments."""
        raw = os.environ.get(SITES_ENV, "block")
        sites = tuple(x.strip() for x in raw.split(",") if x.strip())
        unknown = sorted(set(sites) - set(SITES))
        if unknown:
            raise SteerlabError(f"{SITES_ENV} takes sites among {', '.join(SITES)}, got {unknown}")
        return cls(artifacts=_env_int(ARTIFACTS_ENV, 32, 1), projections=_env_int(PROJECTIONS_ENV, 1, 0),
                   segments=_env_int(SEGMENTS_ENV, 4, 1), requests=requests, tokens=tokens, sites=sites)


GRAPH_LAYOUT = 1  # bump when the tables or the ops change shape or meaning


def graph_signature() -> dict[str, Any]:
    """What a compiled graph with steerlab's table ops depends on (for vLLM's compile-cache key)."""
    from steerlab._version import __version__

    cap = Capacity.from_env(requests=0, tokens=0)
    return {"layout": GRAPH_LAYOUT, "steerlab": __version__, "artifacts": cap.artifacts,
            "projections": cap.projections, "segments": cap.segments, "sites": list(cap.sites)}


def thresholds(rules: Sequence[PositionRule], prompt_len: int) -> list[int]:
    """The positions where a set of position rules changes what is active, sorted."""
    cuts = {prompt_len if r in ("prompt", "generated") else int(r) for r in rules if r != "all"}
    return sorted(cuts)


def rule_active(rule: PositionRule, pos: int, prompt_len: int) -> bool:
    """Whether ``rule`` steers the token at position ``pos`` (see
    :func:`steerlab.core.positions.position_mask`)."""
    if rule == "all":
        return pos >= 0
    if rule == "prompt":
        return 0 <= pos < prompt_len
    if rule == "generated":
        return pos >= prompt_len
    return pos >= int(rule)


def check_program(ops: Sequence[SiteOp], cap: Capacity) -> None:
    """Refuse (before it runs) a request the tables cannot hold: too many distinct position
    cuts, projections at one site, or artifacts."""
    missing = sorted({op.site for op in ops} - set(cap.sites))
    if missing:
        raise SteerlabError(f"site(s) {missing} are not steered inside this vLLM engine's graph (set {SITES_ENV} to "
                            f"include them; it has {', '.join(cap.sites) or 'none'})")
    ints = {op.positions for op in ops if op.positions not in ("all", "prompt", "generated")}
    cuts = len(ints) + any(op.positions in ("prompt", "generated") for op in ops)
    if cuts + 1 > cap.segments:
        raise SteerlabError(f"this steering splits positions at {cuts} points; the compiled vLLM tables hold "
                            f"{cap.segments - 1} (set {SEGMENTS_ENV} higher)")
    per_site: dict[tuple[str, int], int] = {}
    for op in ops:
        if op.kind == "project":
            key = (op.site, op.layer)
            per_site[key] = per_site.get(key, 0) + 1
    worst = max(per_site.values(), default=0)
    if worst > cap.projections:
        raise SteerlabError(f"this steering runs {worst} projections (ablate / clamp) at one site; the compiled vLLM "
                            f"tables hold {cap.projections} (set {PROJECTIONS_ENV} higher)")


class GraphTables(nn.Module):
    """The persistent buffers and the op every wrapped site runs (see the module docstring)."""

    variant: Tensor
    on: Tensor

    def __init__(self, num_layers: int, hidden: int, cap: Capacity, dtype: torch.dtype,
                 device: torch.device) -> None:
        super().__init__()
        self.cap, self.num_layers, self.hidden = cap, num_layers, hidden
        self.wrapped: set[tuple[str, int]] = set()  # (site, layer) whose module runs the table op
        self.fused = False  # set for compiled engines (see steer)
        L, D, P, V = num_layers, cap.artifacts, cap.projections, cap.rows  # noqa: N806

        def buf(name: str, shape: tuple[int, ...], kind: torch.dtype) -> None:
            self.register_buffer(name, torch.zeros(shape, dtype=kind, device=device), persistent=False)

        buf("variant", (cap.tokens,), torch.long)
        buf("on", (L, V), torch.bool)  # layer-major: a layer's rows are one contiguous table to gather from
        for site in SITES:
            buf(f"{site}_dirs", (L, D, hidden), dtype)
            buf(f"{site}_units", (L, D, hidden), dtype)
            buf(f"{site}_coef", (L, V, D), dtype)
            buf(f"{site}_pidx", (L, V, max(P, 1)), torch.long)
            buf(f"{site}_ps", (L, V, max(P, 1)), dtype)
            buf(f"{site}_pc", (L, V, max(P, 1)), dtype)

    def table(self, site: str, kind: str) -> Tensor:
        """A site's buffer: ``dirs``, ``units``, ``coef``, ``pidx``, ``ps`` or ``pc``."""
        return cast(Tensor, getattr(self, f"{site}_{kind}"))

    def steer(self, site: str, layer: int, hidden: Tensor) -> Tensor:
        """``hidden`` (T, H) — or (B, T, H), read as B·T tokens — with every token's row of ops
        applied (tokens ≤ capacity)."""
        h = hidden.reshape(-1, hidden.shape[-1])  # (T, H)
        v = self.variant[: h.shape[0]]  # (T,)
        coef = self.table(site, "coef")[layer][v]  # (T, D)
        dirs = self.table(site, "dirs")[layer]  # (D, H)
        if self.fused:  # compiled: gather, products and the sum over D become one kernel, no matmul call
            h = h + (coef.unsqueeze(-1) * dirs).sum(dim=1)  # (T, D, 1) * (D, H) -> (T, H)
        else:  # eager: a (T, D) @ (D, H) product (the line above would materialise (T, D, H))
            h = h + coef @ dirs
        units = self.table(site, "units")[layer]  # (D, H)
        pidx, ps, pc = (self.table(site, k)[layer][v] for k in ("pidx", "ps", "pc"))  # (T, P) each
        for j in range(self.cap.projections):
            u = units[pidx[:, j]]  # (T, H)
            dot = (h * u).sum(dim=-1, keepdim=True)  # (T, 1)
            h = h + ps[:, j:j + 1] * (pc[:, j:j + 1] - dot) * u
        return h.view(hidden.shape)

    def steer_block(self, layer: int, out: Any) -> Any:
        """A decoder layer's output: ``(hidden, residual)`` (their sum is the residual stream) or
        the stream itself."""
        if isinstance(out, Tensor):
            return self.steer("block", layer, out)
        if len(out) != 2 or out[1] is None or out[1].shape != out[0].shape:  # a (hidden, extras...) tuple
            return (self.steer("block", layer, out[0]), *out[1:])
        hidden, residual = out  # vLLM's pair: the residual stream is their sum
        on = self.on[layer][self.variant[: hidden.shape[0]]].unsqueeze(-1)  # (T, 1)
        steered = self.steer("block", layer, hidden + residual)
        return torch.where(on, steered, hidden), torch.where(on, torch.zeros_like(residual), residual)


def wrap_sites(tables: GraphTables, site_module: Any, num_layers: int) -> None:
    """Make every site module's forward (of the capacity's sites) end with its table op
    (``site_module(layer, site)`` returns the module). Idempotent per module."""
    for layer in range(num_layers):
        for site in tables.cap.sites:
            try:
                module = site_module(layer, site)
            except SteerlabError:  # a site this architecture lacks stays unwrapped (refused when asked)
                continue
            tables.wrapped.add((site, layer))
            if getattr(module, "_steerlab_graph", False):
                continue
            module.forward = _wrapped(tables, module.forward, site, layer)
            module._steerlab_graph = True


def _wrapped(tables: GraphTables, inner: Any, site: str, layer: int) -> Any:
    """``inner`` (a module's forward) followed by the site's table op."""
    if site == "block":
        def block(*args: Any, **kwargs: Any) -> Any:
            return tables.steer_block(layer, inner(*args, **kwargs))

        return block

    def sub(*args: Any, **kwargs: Any) -> Any:
        out = inner(*args, **kwargs)
        return replace_hidden(out, tables.steer(site, layer, output_hidden(out)))

    return sub
