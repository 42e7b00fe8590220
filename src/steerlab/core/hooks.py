"""Hook bookkeeping: install-all-or-nothing and exact, idempotent removal.

A :class:`HookSet` collects every change a steerer makes (forward hooks, pre-hooks, or arbitrary
undo callbacks such as re-attaching an adapter). If installation fails half-way the caller removes
what was installed so far, and removal always runs in reverse order, so nested and composed
steering restores the model exactly.

Hooks belong to the thread that installed them: a forward pass run by another thread passes
through them untouched. So a model shared between threads never mixes their steering — one
thread's ``apply`` block steers that thread's calls only — and ``generate`` additionally holds the
model's lock, so concurrent calls run one after another, each exactly as it would alone.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from torch import nn
from torch.utils.hooks import RemovableHandle


class HookSet:
    """A stack of undo actions for one patch."""

    def __init__(self, owner: int | None = None) -> None:
        self._undo: list[Callable[[], None]] = []
        self.removed = False
        self.owner = threading.get_ident() if owner is None else owner
        """The thread whose forward passes these hooks act on."""

    def _owned(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` as a hook that only acts in the owner thread (elsewhere: returns None = no change)."""
        owner = self.owner

        @functools.wraps(fn)
        def hook(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != owner:
                return None
            return fn(*args, **kwargs)

        return hook

    def add_handle(self, handle: RemovableHandle) -> None:
        """Record a torch hook handle so that :meth:`remove` detaches it."""
        self._undo.append(handle.remove)

    def forward_hook(self, module: nn.Module, fn: Callable[..., Any]) -> None:
        """Register ``fn(module, args, output) -> output`` on ``module``."""
        self.add_handle(module.register_forward_hook(self._owned(fn)))

    def forward_pre_hook(self, module: nn.Module, fn: Callable[..., Any]) -> None:
        """Register ``fn(module, args, kwargs) -> None | (args, kwargs)`` with kwargs."""
        self.add_handle(module.register_forward_pre_hook(self._owned(fn), with_kwargs=True))

    def remove(self) -> None:
        """Undo everything, newest first. Safe to call twice."""
        if self.removed:
            return
        errors: list[BaseException] = []
        while self._undo:
            fn = self._undo.pop()
            try:
                fn()
            except BaseException as e:  # keep undoing the rest, then re-raise the first
                errors.append(e)
        self.removed = True
        if errors:
            raise errors[0]


def output_hidden(output: Any) -> Any:
    """The hidden-state tensor of a module output (a tensor, or the first item of a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def replace_hidden(output: Any, hidden: Any) -> Any:
    """Return ``output`` with its hidden-state tensor replaced (tuples are rebuilt, not mutated)."""
    if isinstance(output, tuple):
        return (hidden, *output[1:])
    return hidden
