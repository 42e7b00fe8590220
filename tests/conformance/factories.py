"""How to build a small working Steer of each registered method on a tiny model.

Every method registered in ``steerlab.METHODS`` must have an entry here; the conformance suite
fails for a method without one, so new methods cannot skip it.
"""

from __future__ import annotations

from collections.abc import Callable

import steerlab
from steerlab.models.loading import LoadedModel
from tests.conftest import PAIRS


def _vectors(lm: LoadedModel) -> steerlab.Steer:
    vec = steerlab.extract(lm, PAIRS, layers=[1, 2], read="mean")
    return steerlab.Steer(vec, 8.0)


FACTORIES: dict[str, Callable[[LoadedModel], steerlab.Steer]] = {
    "vectors": _vectors,
}
