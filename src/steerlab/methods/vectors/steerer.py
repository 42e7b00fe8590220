"""Activation steering (ActAdd / CAA): contrastive directions added to hidden states.

``fit`` records activations of positive and negative texts at every requested layer in one pass
and aggregates them per layer; ``install`` adds ``strength · direction`` at the chosen layers and
token positions. Rows of a batch may carry different vectors and strengths: all ``add``
applications at one (layer, positions) are fused into a single (B, H) delta, so a batch with 32
different vectors costs one addition per layer, like a batch with one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from steerlab.core.hooks import HookSet, output_hidden, replace_hidden
from steerlab.core.model import LoadedModel
from steerlab.core.positions import PositionRule, PositionTracker, position_mask, validate_positions
from steerlab.core.site_ops import SiteOp
from steerlab.core.steerer import Application, Steerer
from steerlab.core.validate import finite
from steerlab.data.pairs import ContrastSet, as_contrast, text_hashes
from steerlab.errors import LayerError, SteerlabError
from steerlab.methods.vectors.aggregators import AGGREGATORS
from steerlab.methods.vectors.operators import OPERATORS, project
from steerlab.methods.vectors.vector import SteeringVector
from steerlab.models.layout import SITES
from steerlab.models.loading import as_loaded
from steerlab.models.recording import record


@dataclass
class VectorOptions:
    """Per-application knobs of a steering vector."""

    layers: list[int] | None = None  # subset of the vector's layers to steer; None = all of them
    positions: PositionRule = "all"  # "all" | "prompt" | "generated" | k (every index >= k)
    operator: str = "add"  # "add" | "ablate" | "clamp"
    clamp_value: float | None = None  # clamp target for h·v̂; None = the positive-set mean

    def __post_init__(self) -> None:
        validate_positions(self.positions)
        if not isinstance(self.operator, str):
            raise SteerlabError(f"operator must be a name (add, ablate, clamp), got {self.operator!r}")
        OPERATORS.get(self.operator)
        if self.layers is not None:
            layers = [self.layers] if isinstance(self.layers, int) else self.layers
            if (not isinstance(layers, (list, tuple, range))
                    or not all(isinstance(x, int) and not isinstance(x, bool) for x in layers)):
                raise LayerError(f"layers must be a layer index or a list of them, e.g. [8, 9], got {self.layers!r}")
            self.layers = [int(x) for x in layers]
        if self.clamp_value is not None:
            self.clamp_value = finite("clamp_value", self.clamp_value)


class VectorSteerer(Steerer[SteeringVector, VectorOptions]):
    """Extract and apply :class:`SteeringVector` s."""

    name = "vectors"
    options_cls = VectorOptions
    suggested_strengths = (2.0, 4.0, 6.0, 8.0)  # in mean pos-neg gaps; see aggregators.py

    def fit(self, lm: LoadedModel, data: Any, **config: Any) -> SteeringVector:
        """See :func:`extract`."""
        return extract(lm, data, **config)

    def validate(self, lm: LoadedModel, app: Application, *, allow_mismatch: bool = False) -> None:
        super().validate(lm, app, allow_mismatch=allow_mismatch)
        vec: SteeringVector = app.artifact  # type: ignore[assignment]
        opts: VectorOptions = app.options
        if vec.hidden_size != lm.hidden_size:
            from steerlab.errors import ModelMismatchError

            raise ModelMismatchError(f"vector {vec.name!r} has size {vec.hidden_size}, model "
                                     f"{lm.name!r} has hidden size {lm.hidden_size}")
        lm.check_layers(vec.layers)
        if opts.layers is not None:
            missing = sorted(set(lm.check_layers(opts.layers)) - set(vec.layers))
            if missing:
                raise LayerError(f"vector {vec.name!r} has no layer(s) {missing}; it has {vec.layers}")
        steered = lm.check_layers(opts.layers) if opts.layers is not None else vec.layers
        if opts.operator == "clamp" and opts.clamp_value is None:
            stats = vec.meta.get("stats") or {}
            for layer in steered:
                entry = stats.get(str(layer)) if isinstance(stats, dict) else None
                if not isinstance(entry, dict):
                    raise SteerlabError(f"clamp needs clamp_value: vector {vec.name!r} has no recorded projection "
                                        f"for layer {layer}")
                finite(f"stats[{layer}].pos_proj of {vec.name!r}", entry.get("pos_proj"))
        if opts.operator in ("ablate", "clamp"):
            zero = [la for la in steered if float(vec.directions[la].norm()) == 0.0]
            if zero:
                raise SteerlabError(f"{opts.operator} needs a direction; vector {vec.name!r} is zero at "
                                    f"layer(s) {zero}")

    def site_ops(self, lm: LoadedModel, artifact: SteeringVector, options: VectorOptions) -> list[SiteOp]:
        """The application as table-driven ops (see :mod:`steerlab.core.site_ops`): ``add`` adds
        the direction, ``ablate`` projects it out (target 0), ``clamp`` projects to the target."""
        ops = []
        for layer in lm.check_layers(options.layers) if options.layers is not None else artifact.layers:
            v = artifact.directions[layer]
            if options.operator == "add":
                ops.append(SiteOp(artifact.site, layer, "add", v, options.positions))
                continue
            c = 0.0 if options.operator == "ablate" else options.clamp_value
            if c is None:
                c = float(artifact.meta["stats"][str(layer)]["pos_proj"])
            ops.append(SiteOp(artifact.site, layer, "project", v, options.positions, float(c)))
        return ops

    def install(self, lm: LoadedModel, apps: Sequence[Application], hooks: HookSet,
                tracker: PositionTracker) -> None:
        dtype, device = next(lm.model.parameters()).dtype, lm.device
        Site = tuple[str, int]  # (site name, layer)
        adds: dict[Site, dict[PositionRule, Tensor]] = defaultdict(dict)  # fused (B, H) delta per site and rule
        projections: dict[Site, list[tuple[Tensor, Tensor, PositionRule, float]]] = defaultdict(list)
        for app in apps:
            s = app.strengths.to(device=device, dtype=dtype)  # (B,)
            for op in self.site_ops(lm, app.artifact, app.options):  # type: ignore[arg-type]
                site = (op.site, op.layer)
                v = op.direction.to(device=device, dtype=dtype)  # (H,)
                if op.kind == "add":
                    delta = s.unsqueeze(1) * v  # (B, H)
                    rules = adds[site]
                    rules[op.positions] = rules[op.positions] + delta if op.positions in rules else delta
                else:
                    projections[site].append((v, s, op.positions, op.target))
        modules = {site: lm.site_module(site[1], site[0]) for site in {*adds, *projections}}
        for site, module in modules.items():
            hooks.forward_hook(module, _make_hook(tracker, list(adds.get(site, {}).items()),
                                                  projections.get(site, [])))


def _make_hook(tracker: PositionTracker, adds: list[tuple[PositionRule, Tensor]],
               projections: list[tuple[Tensor, Tensor, PositionRule, float]]) -> Any:
    def hook(module: Any, args: Any, output: Any) -> Any:
        h = output_hidden(output)  # (B, T, H)
        total: Tensor | None = None  # every add at this site, summed, then added once
        for rule, delta in adds:  # delta (B|1, H)
            _check_rows(delta.shape[0], h.shape[0])
            mask = position_mask(tracker, rule)  # (B, T) or None
            d = delta.unsqueeze(1) if mask is None else delta.unsqueeze(1) * mask.unsqueeze(-1).to(h.dtype)
            total = d if total is None else total + d
        if total is not None:
            h = h + total
        for v, s, rule, c in projections:
            _check_rows(s.shape[0], h.shape[0])
            mask = position_mask(tracker, rule)
            scale = s.view(-1, 1, 1)  # (B|1, 1, 1)
            if mask is not None:
                scale = scale * mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
            h = project(h, v, scale, c)
        return replace_hidden(output, h)

    return hook


def _check_rows(planned: int, actual: int) -> None:
    if planned not in (1, actual):
        raise SteerlabError(f"steering was planned for {planned} rows but the model got a batch of {actual}")


def extract(
    lm: LoadedModel,
    data: Any,
    *,
    layers: Sequence[int] | None = None,
    site: str = "block",
    read: str = "last",
    aggregator: str = "mean_diff",
    batch_size: int = 16,
    max_length: int = 256,
    name: str | None = None,
) -> SteeringVector:
    """Extract a steering vector from contrastive data.

    Args:
        lm: the model.
        data: a :class:`ContrastSet`, a jsonl path, a built-in set name (``"sentiment"``), or a
            list of ``(positive, negative)`` pairs.
        layers: decoder layers to record (default: all).
        site: ``"block"`` (residual stream after the layer), ``"mlp"`` or ``"attn"``.
        read: token positions read from each text: ``"last"``, ``"mean"`` or ``"all"``.
        aggregator: ``"mean_diff"``, ``"pca_diff"``, ``"pca_center"`` or ``"probe"``.
    """
    contrast: ContrastSet = as_contrast(data)
    if site not in SITES:
        raise LayerError(f"unknown site {site!r}; known sites: {', '.join(SITES)}")
    agg = AGGREGATORS.get(aggregator)
    layer_list = lm.check_layers(list(layers) if layers is not None else range(lm.num_layers))
    texts = contrast.positive + contrast.negative
    acts = record(as_loaded(lm), texts, layer_list, site=site, positions=read, batch_size=batch_size,
                  max_length=max_length, desc=f"extracting {name or contrast.name}")
    n_pos = len(contrast.positive)
    paired = contrast.paired and read != "all"
    directions: dict[int, Tensor] = {}
    stats: dict[str, dict[str, float]] = {}
    for layer in layer_list:
        h = acts[layer]
        if read == "all":
            n_pos = _token_count(lm, contrast.positive, max_length)
        pos, neg = h[:n_pos], h[n_pos:]  # (N, H), (M, H)
        d = agg(pos, neg, paired)
        directions[layer] = d
        stats[str(layer)] = _separation(pos, neg, d)
    meta = {
        "name": name or f"{contrast.name}-{aggregator}",
        "stats": stats,
        "provenance": {
            "data": contrast.source, "n_positive": len(contrast.positive),
            "n_negative": len(contrast.negative), "paired": contrast.paired, "site": site,
            "read": read, "aggregator": aggregator, "max_length": max_length,
            "text_hashes": text_hashes(texts),
        },
    }
    return SteeringVector(directions, site=site, model=lm.fingerprint, meta=meta)


def _separation(pos: Tensor, neg: Tensor, d: Tensor) -> dict[str, float]:
    """Mean projections on d̂ and how well the midpoint threshold separates the classes."""
    u = d / d.norm().clamp(min=1e-12)
    pp, nn_ = pos @ u, neg @ u  # (N,), (M,)
    mid = (pp.mean() + nn_.mean()) / 2
    acc = (float((pp > mid).sum()) + float((nn_ <= mid).sum())) / (len(pp) + len(nn_))
    return {"pos_proj": float(pp.mean()), "neg_proj": float(nn_.mean()), "accuracy": acc,
            "norm": float(d.norm())}


def _token_count(lm: LoadedModel, texts: list[str], max_length: int) -> int:
    enc = lm.tokenizer(texts, truncation=True, max_length=max_length)
    return sum(len(ids) for ids in enc["input_ids"])
