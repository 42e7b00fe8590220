"""Installing steering on a model, all or nothing, and restoring it exactly.

:func:`check` does everything that can fail before a hook exists (options, layers, the model's
fingerprint); :func:`patch` then asks each method to install its hooks into one
:class:`~steerlab.core.hooks.HookSet`; if anything raises, everything installed so far is removed
before the error propagates. :func:`apply` is the ``with`` form.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from steerlab.core.hooks import HookSet
from steerlab.core.model import LoadedModel
from steerlab.core.plan import as_steer, per_row, plan
from steerlab.core.positions import PositionTracker
from steerlab.core.steerer import Application, Prepared, Steerer, get_steerer
from steerlab.errors import SteerlabError

__all__ = ["SteeringHandle", "apply", "check", "patch", "prepare"]


class SteeringHandle:
    """What :func:`patch` returns: call :meth:`remove` (idempotent) to restore the model."""

    def __init__(self, hooks: HookSet, tracker: PositionTracker | None = None) -> None:
        self._hooks = hooks
        self.tracker = tracker  # the positions every hook of this patch reads

    @property
    def active(self) -> bool:
        return not self._hooks.removed

    def remove(self) -> None:
        self._hooks.remove()

    def __enter__(self) -> SteeringHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def check(lm: LoadedModel, steering: Any, *, batch_size: int = 1,
          allow_mismatch: bool = False) -> list[tuple[Steerer[Any, Any], Application]]:
    """Everything :func:`patch` checks before it installs anything, without touching the model;
    returns the plan. Steers prepared for ``lm`` (:meth:`Steerer.prepare`) were validated then
    and are not validated again.

    A plain steer of a method that also steers through the prompt (``Steerer.steers_prompt``:
    SteerLM's attribute string, DGLM's soft prompts) is refused: hooks alone would silently drop
    half the method. Pass it to :func:`steerlab.generate`, or prepare it and apply its prompt
    stages yourself (:class:`~steerlab.core.steerer.Prepared`)."""
    planned = plan(per_row(steering, batch_size))
    for steerer, app in planned:
        if app.prepared is not None and app.prepared.checked_for(lm, allow_mismatch):
            continue
        if app.prepared is None and steerer.steers_prompt and bool(app.strengths.any()):
            raise SteerlabError(
                f"{steerer.name} steers through the prompt as well as hooks, which apply()/patch() cannot "
                "rewrite: pass the steer to steerlab.generate(..., steering=...) instead, or prepare it "
                "(steerlab.prepare(lm, steer)), build the prompt with its rewrite_prompt/rewrite_formatted/"
                "soft_prompt, and patch with the prepared steer")
        steerer.validate(lm, app, allow_mismatch=allow_mismatch)
    return planned


def patch(lm: LoadedModel, steering: Any, *, batch_size: int = 1, allow_mismatch: bool = False) -> SteeringHandle:
    """Install steering on ``lm`` and return a handle; all or nothing.

    ``steering`` is as for :func:`~steerlab.core.plan.per_row`. With ``batch_size=1`` and shared
    steering, strengths broadcast over any batch size. See :func:`check` for what is refused.
    """
    planned = check(lm, steering, batch_size=batch_size, allow_mismatch=allow_mismatch)
    hooks = HookSet()
    try:
        tracker = PositionTracker()
        tracker.install(lm.base, hooks)
        install_planned(lm, planned, hooks, tracker)
    except BaseException:
        hooks.remove()
        raise
    return SteeringHandle(hooks, tracker)


def install_planned(lm: LoadedModel, planned: Sequence[tuple[Steerer[Any, Any], Application]], hooks: HookSet,
                    tracker: PositionTracker) -> None:
    """Install a checked plan into ``hooks``: each method once, with all its applications (the
    caller removes ``hooks`` if this raises)."""
    by_method: dict[str, tuple[Steerer[Any, Any], list[Application]]] = {}
    for steerer, app in planned:
        by_method.setdefault(steerer.name, (steerer, []))[1].append(app)
    for steerer, apps in by_method.values():
        steerer.install(lm, apps, hooks, tracker)


@contextmanager
def apply(lm: LoadedModel, *steering: Any, allow_mismatch: bool = False) -> Iterator[SteeringHandle]:
    """Steer ``lm`` inside a ``with`` block; the model is restored exactly on exit, even on error.

    Several steers compose; contexts nest. Example::

        with steerlab.apply(lm, Steer(vec, 4.0, {"layers": [12]})):
            print(steerlab.generate(lm, ["The weather today"]))
    """
    handle = patch(lm, tuple(steering), allow_mismatch=allow_mismatch)
    try:
        yield handle
    finally:
        handle.remove()


def prepare(lm: LoadedModel | None, steer: Any, *, allow_mismatch: bool = False) -> Prepared:
    """Prepare one steer (or bare artifact) for ``lm``: see :meth:`Steerer.prepare`. A steer
    prepared without a model (parsed only) is validated for ``lm`` without parsing again."""
    entry = as_steer(steer)
    if isinstance(entry, Prepared):
        return entry if lm is None else entry.for_model(lm, allow_mismatch=allow_mismatch)
    return get_steerer(entry.artifact.method).prepare(lm, entry, allow_mismatch=allow_mismatch)
