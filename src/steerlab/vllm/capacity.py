"""How much steering the in-graph tables hold, fixed when a worker attaches, and the admission
check that a request fits them.

The tables (:mod:`steerlab.vllm.tables`) have one *row* per (request, position segment): a request
takes ``segments`` rows when it joins and gives them back when it leaves, and vLLM never runs more
than ``max_num_seqs`` requests at once, so a request that passed :func:`check_program` at admission
always finds its rows. Nothing else is counted: a row holds its own summed add vector and its own
projection directions, so any number of distinct artifacts may be in flight together.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from steerlab.core.site_ops import SiteOp
from steerlab.errors import SteerlabError

SITES = ("block", "mlp", "attn")
PROJECTIONS_ENV = "STEERLAB_VLLM_GRAPH_PROJECTIONS"  # P: projections (ablate / clamp) per token and site
SEGMENTS_ENV = "STEERLAB_VLLM_GRAPH_SEGMENTS"  # S: position segments per request
SITES_ENV = "STEERLAB_VLLM_GRAPH_SITES"  # which sites get table ops (each costs graph size, memory and a little time)
GRAPH_LAYOUT = 2  # bump when the tables or the ops change shape or meaning (joins vLLM's compile-cache key)


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

    projections: int = 1
    segments: int = 4
    requests: int = 256  # vLLM's max_num_seqs: requests in one step
    tokens: int = 8192  # vLLM's max_num_batched_tokens: tokens in one step
    sites: tuple[str, ...] = SITES

    @property
    def rows(self) -> int:
        """Row 0 (unsteered: all zeros) and ``segments`` rows per request."""
        return 1 + self.requests * self.segments

    def table_bytes(self, num_layers: int, hidden: int, element: int) -> int:
        """Device memory of the tables for a model of ``num_layers`` x ``hidden`` in ``element``-byte floats."""
        per_site = num_layers * self.rows * (hidden * (1 + self.projections) + 2 * self.projections) * element
        return len(self.sites) * per_site + num_layers * self.rows + 8 * self.tokens

    @classmethod
    def from_env(cls, requests: int, tokens: int) -> Capacity:
        """Capacities from the environment. Defaults: the ``block`` site (the residual stream, what
        steering vectors and llama.cpp control vectors use), 1 projection per site and token, 4
        segments per request."""
        raw = os.environ.get(SITES_ENV, "block")
        sites = tuple(x.strip() for x in raw.split(",") if x.strip())
        unknown = sorted(set(sites) - set(SITES))
        if unknown:
            raise SteerlabError(f"{SITES_ENV} takes sites among {', '.join(SITES)}, got {unknown}")
        return cls(projections=_env_int(PROJECTIONS_ENV, 1, 0), segments=_env_int(SEGMENTS_ENV, 4, 1),
                   requests=requests, tokens=tokens, sites=sites)


def graph_signature() -> dict[str, Any]:
    """What a compiled graph with steerlab's table ops depends on (for vLLM's compile-cache key)."""
    from steerlab._version import __version__

    cap = Capacity.from_env(requests=0, tokens=0)
    return {"layout": GRAPH_LAYOUT, "steerlab": __version__, "projections": cap.projections,
            "segments": cap.segments, "sites": list(cap.sites)}


def check_program(ops: Sequence[SiteOp], cap: Capacity) -> None:
    """Refuse (at admission, before it runs) a request the tables cannot hold: a site without
    table ops, too many distinct position cuts, or too many projections at one site."""
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
