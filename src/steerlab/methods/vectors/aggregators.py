"""Turn recorded positive / negative activations into one direction per layer.

Each aggregator is a typed callable ``(pos (N, H), neg (M, H), paired) -> (H,)``. Directions from
PCA and probes are unit vectors by nature; we rescale them to the mean difference's component along
them, so that strength 1 means "move by the average positive-negative gap" whichever aggregator
made the vector (strengths are then comparable across aggregators).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from steerlab.core.registry import Registry
from steerlab.errors import DataError

Aggregator = Callable[[Tensor, Tensor, bool], Tensor]

AGGREGATORS: Registry[Aggregator] = Registry("aggregator")


def _scaled(unit: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
    """``unit`` oriented towards the positive set and scaled by the mean gap along it."""
    gap = pos.mean(0) - neg.mean(0)  # (H,)
    along = torch.dot(gap, unit)
    if along < 0:
        unit, along = -unit, -along
    return unit * along


@AGGREGATORS.decorator("mean_diff")
def mean_diff(pos: Tensor, neg: Tensor, paired: bool) -> Tensor:
    """Difference of class means (CAA / ActAdd)."""
    return pos.mean(0) - neg.mean(0)


@AGGREGATORS.decorator("pca_diff")
def pca_diff(pos: Tensor, neg: Tensor, paired: bool) -> Tensor:
    """First principal component of centred paired differences (repeng's ``pca_diff``)."""
    if not paired or pos.shape != neg.shape:
        raise DataError("pca_diff needs paired data (one negative per positive)")
    diffs = pos - neg  # (N, H)
    diffs = diffs - diffs.mean(0, keepdim=True)
    return _scaled(_first_pc(diffs), pos, neg)


@AGGREGATORS.decorator("pca_center")
def pca_center(pos: Tensor, neg: Tensor, paired: bool) -> Tensor:
    """First principal component of all points, each pair centred on its midpoint (repeng)."""
    if not paired or pos.shape != neg.shape:
        raise DataError("pca_center needs paired data (one negative per positive)")
    mid = (pos + neg) / 2
    points = torch.cat([pos - mid, neg - mid])  # (2N, H)
    return _scaled(_first_pc(points), pos, neg)


@AGGREGATORS.decorator("probe")
def probe(pos: Tensor, neg: Tensor, paired: bool) -> Tensor:
    """Weight vector of an L2 logistic-regression probe separating the classes."""
    from sklearn.linear_model import LogisticRegression

    x = torch.cat([pos, neg]).double().numpy()
    y = [1] * len(pos) + [0] * len(neg)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=1.0, max_iter=2000).fit((x - mu) / sd, y)
    w = torch.tensor(clf.coef_[0] / sd, dtype=torch.float32)  # back to raw activation units
    return _scaled(w / w.norm(), pos, neg)


def _first_pc(x: Tensor) -> Tensor:
    """Unit first right-singular vector of (N, H) data (deterministic sign fixed later)."""
    _, _, vh = torch.linalg.svd(x.double(), full_matrices=False)
    return vh[0].float()
