"""The hook path: steering that is not a table op, run as per-request hooks around vLLM's forward.

Methods whose hooks act on the LM head alone (LM-Steer) run in ``compute_logits``, which vLLM
calls outside the compiled graph; in eager mode any other hook method runs the same way on the
decoder layers (in compiled mode such a request is refused at admission: its hooks would not
run). Each request's strength is spread over its own rows, and position rules read the absolute
position of every token, as steerlab's own engine does.

Two shapes of step:

- a **decode step** (one token per request): the hooks are planned once for the batch and kept
  across its steps while no request joins or leaves; only the positions tensor is updated;
- any other step (prefill, chunked prefill, mixed): strengths are spread per token from
  ``query_start_loc``, the hooks are installed for that forward and removed after, and the LM
  head is then steered at each request's last token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from steerlab.core.apply import install_planned
from steerlab.core.plan import plan
from steerlab.core.positions import PositionTracker
from steerlab.core.steerer import Application, Prepared, Steerer
from steerlab.errors import SteerlabError
from steerlab.models.loading import LoadedModel
from steerlab.vllm.conventions import Convention
from steerlab.vllm.view import VllmHookSet

Planned = list[tuple[Steerer[Any, Any], Application]]
"""One application per distinct (artifact, options) with a strength per request (R,)."""


class HookPath:
    """The hooks of one model runner's batch (see the module docstring)."""

    def __init__(self, lm: LoadedModel, lm_head: Callable[[Tensor], Any], compute_logits: Callable[[Tensor], Any],
                 conventions: Mapping[int, Convention]) -> None:
        self.lm = lm
        self._device = lm.device  # read once: each decode step moves its positions here
        self._head = lm_head  # the head with hooks honoured (hooks on the view's head module)
        self._compute_logits = compute_logits  # vLLM's own, untouched
        self._conventions = conventions  # layer -> what its decoder layer returns
        self.batch: tuple[str, ...] | None = None  # the request ids the plan is for
        self._planned: Planned = []
        self._prompt_len = torch.zeros(0, dtype=torch.long)  # (R,)
        self._kept: VllmHookSet | None = None  # a decode step's hooks, kept across the batch's steps
        self._kept_tracker = PositionTracker()
        self._last: tuple[Planned, Tensor] | None = None  # a non-decode step: (plan, positions (R,)) for the head

    def replan(self, batch: tuple[str, ...], steers: Sequence[Sequence[Prepared]], prompt_len: Tensor) -> None:
        """The batch changed (a request joined, left or was resubmitted): group its hook steers."""
        self.drop()
        self.batch = batch
        self._planned = plan(steers) if any(steers) else []
        self._prompt_len = prompt_len  # (R,)

    def drop(self) -> None:
        """Remove the kept hooks (the next decode step installs them again)."""
        if self._kept is not None:
            self._kept.remove()
            self._kept = None

    def forward(self, run: Callable[[], Any], qsl: np.ndarray, positions: Tensor | None) -> Any:
        """``run()`` (vLLM's model forward) with this batch's hooks in place.

        qsl: (R+1,) each request's first token in the step; positions: (T,) each token's absolute
        position (T ≥ the step's real tokens where vLLM pads)."""
        self._last = None
        if not self._planned:
            return run()
        assert positions is not None, "vLLM's model forward takes positions"
        count = len(qsl) - 1
        if positions.shape[0] == count and int(qsl[-1]) == count:  # a decode step: token i = request i
            return self._decode(run, positions)
        self.drop()
        counts = torch.from_numpy(np.diff(qsl))  # (R,) tokens of each request this step
        token_req = torch.repeat_interleave(torch.arange(count), counts)  # (T_real,)
        last = torch.from_numpy(qsl[1:] - 1)  # (R,) each request's last token this step
        self._last = (self._planned, positions[last].cpu())
        pad = positions.shape[0] - token_req.shape[0]
        per_token = [(s, Application(a.artifact, a.options, _pad(a.strengths[token_req], pad)))
                     for s, a in self._planned]
        tracker = PositionTracker()
        tracker.index = _pad(positions[: token_req.shape[0]].cpu(), pad, -1)[:, None]  # (T, 1)
        tracker.prompt_len = _pad(self._prompt_len[token_req], pad)  # (T,)
        hooks = self._install(per_token, tracker)
        try:
            return run()
        finally:
            hooks.remove()

    def _decode(self, run: Callable[[], Any], positions: Tensor) -> Any:
        if self._kept is not None and self._kept.owner != threading.get_ident():
            self.drop()  # hooks act only in the thread that installed them
        if self._kept is None:
            self._kept_tracker = PositionTracker()
            self._kept_tracker.prompt_len = self._prompt_len
            self._kept_tracker.index = positions[:, None]
            self._kept = self._install(self._planned, self._kept_tracker)
        self._kept_tracker.index = positions[:, None].to(self._device)  # (R, 1)
        self._kept.active = True
        try:
            return run()
        finally:
            self._kept.active = False

    def logits(self, hidden: Tensor) -> Any:
        """``compute_logits`` with each sampled row (one per request) steered by its request.

        hidden: (R, H) the last hidden state of each request's sampled token."""
        if self._kept is not None:  # the decode step's own hooks: its rows are the requests
            self._one_row_each(hidden, len(self.batch or ()))
            self._kept.active = True
            try:
                return self._head(hidden)
            finally:
                self._kept.active = False
        if self._last is None:
            return self._compute_logits(hidden)
        planned, positions = self._last
        self._one_row_each(hidden, positions.shape[0])
        tracker = PositionTracker()
        tracker.index = positions[:, None]  # (R, 1)
        tracker.prompt_len = self._prompt_len
        hooks = self._install(planned, tracker)
        try:
            return self._head(hidden)
        finally:
            hooks.remove()

    @staticmethod
    def _one_row_each(hidden: Tensor, requests: int) -> None:
        if hidden.shape[0] != requests:
            raise SteerlabError("steering inside vLLM samples one row per request; speculative decoding "
                                f"({hidden.shape[0]} rows for {requests} requests) is not supported")

    def _install(self, planned: Planned, tracker: PositionTracker) -> VllmHookSet:
        device = self._device
        if tracker.index is not None:
            tracker.index = tracker.index.to(device)
        if tracker.prompt_len is not None:
            tracker.prompt_len = tracker.prompt_len.to(device)
        hooks = VllmHookSet(self.lm.layers, self._conventions)
        try:
            install_planned(self.lm, planned, hooks, tracker)
        except BaseException:
            hooks.remove()
            raise
        return hooks


def _pad(x: Tensor, n: int, value: float = 0) -> Tensor:
    """``x`` (T,) followed by ``n`` entries of ``value`` (vLLM's padded tokens steer nothing)."""
    return torch.cat([x, x.new_full((n,), value)]) if n > 0 else x
