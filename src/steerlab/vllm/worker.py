"""The worker side: steer each token of a vLLM step with its own request's steering.

:class:`SteeringWorkerExtension` is mixed into vLLM's worker class by the plugin. After the model
loads — before vLLM compiles it or captures CUDA graphs — steering attaches to the model runner:

- **In the graph** (:mod:`steerlab.vllm.tables`): every decoder site gets a table op, traced into
  vLLM's compiled forward. Methods that describe themselves as site ops
  (:meth:`~steerlab.core.steerer.Steerer.site_ops`: activation vectors, every site, operator and
  position rule) run there: a request's rows are written when it joins, and before each forward
  ``_model_forward`` writes each token's row from the runner's host arrays. The same path runs in
  eager mode, so both modes give the same results.
- **At the head**: methods whose hooks act on the LM head alone (LM-Steer) keep hooks on
  ``compute_logits``, which vLLM runs outside the compiled graph; their strengths are spread per
  request (``query_start_loc`` gives each one's tokens) and the hooks are kept across the decode
  steps of an unchanged batch. In eager mode any other hook method runs the same way; in compiled
  mode it is refused at admission (its hooks would not run).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
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
from steerlab.vllm.capacity import Capacity
from steerlab.vllm.contracts import check_runner
from steerlab.vllm.conventions import model_convention
from steerlab.vllm.requests import (
    PluginStore,
    is_compiled,
    parse_steering,
    request_steers,
    shared_store,
    unsteerable_reason,
)
from steerlab.vllm.rows import RowPlanner, StepTokens
from steerlab.vllm.tables import SteeringTables, wrap_sites
from steerlab.vllm.view import VllmHookSet, VllmView, loaded_view

log = logging.getLogger("steerlab.vllm")


class StepSteering:
    """Per-step steering for one model runner (see the module docstring)."""

    def __init__(self, runner: Any, store: PluginStore) -> None:
        self.runner = runner
        self.store = store
        model = runner.model
        self._forward = runner._model_forward
        self._compute_logits = model.compute_logits
        self.view = VllmView(model, self._compute_logits)
        config = runner.vllm_config.model_config
        self.lm: LoadedModel = loaded_view(self.view, str(config.served_model_name or config.model), str(config.model))
        self.compiled = is_compiled(runner.vllm_config)
        dtype = next(self.view.parameters()).dtype
        cap = Capacity.from_env(requests=int(runner.max_num_reqs), tokens=int(runner.max_num_tokens))
        self.tables = SteeringTables(self.lm.num_layers, self.lm.hidden_size, cap, dtype, self.lm.device)
        wrap_sites(self.tables, self.lm.site_module, self.lm.num_layers, model_convention(type(model)))
        self.rows = RowPlanner(self.tables)
        self._steers: dict[str, list[Prepared]] = {}  # request id -> its hook steers (prepared once)
        self._states: dict[str, Any] = {}  # request id -> the runner's request state its steers came from
        self._last: tuple[list[tuple[Steerer, Application]], Tensor, Tensor] | None = None
        self._plan: tuple[tuple[str, ...], list[tuple[Steerer, Application]], Tensor] | None = None
        # (request ids, their plan, prompt lengths): decode steps repeat the same batch, so the
        # grouping and option parsing are reused until a request joins or leaves
        self._kept: tuple[tuple[str, ...], VllmHookSet, PositionTracker] | None = None
        # hooks planned per request, kept across decode steps of the same batch
        runner._model_forward = self.forward
        model.compute_logits = self.logits

    def steers_of(self, req_id: str) -> list[Prepared]:
        """The request's hook steers; its site-op steers are written into the graph tables here,
        once, when it is first seen."""
        hit = self._steers.get(req_id)
        if hit is None:
            state = self.runner.requests[req_id]
            extra = getattr(state.sampling_params, "extra_args", None) if state.sampling_params else None
            hit, ops = [], []
            # parsed once and validated here; hook steers kept, site ops written to the tables
            for rs in request_steers(parse_steering(extra), self.store, self.lm, compiled=self.compiled):
                p = rs.prepared
                if rs.site_ops is None:
                    hit.append(p)
                else:
                    ops += [(op, float(p.strength)) for op in rs.site_ops]
            self.rows.join(req_id, ops, int(state.num_prompt_tokens))
            self._steers[req_id] = hit
            self._states[req_id] = state  # held, so identity tells a resubmitted id apart
        return hit

    def _batch(self) -> tuple[list[str], np.ndarray]:
        batch = self.runner.input_batch
        n = batch.num_reqs
        ids = list(batch.req_ids[:n])
        qsl = np.asarray(self.runner.query_start_loc.np[: n + 1], dtype=np.int64)
        return ids, qsl

    def _fill_rows(self, ids: list[str], qsl: np.ndarray, positions: Tensor | None) -> None:
        """Each token's table row for this step, from the runner's host arrays (no device sync)."""
        computed = self.runner.input_batch.num_computed_tokens_cpu[: len(ids)]  # (R,)
        padded = int(positions.shape[0]) if positions is not None else None
        self.rows.fill(StepTokens.from_runner(ids, qsl, np.asarray(computed, dtype=np.int64), padded))

    def _drop_kept(self) -> None:
        if self._kept is not None:
            self._kept[1].remove()
            self._kept = None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self._last = None
        ids, qsl = self._batch()
        if not ids:
            self._drop_kept()
            self.rows.fill(StepTokens((), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0))
            return self._forward(*args, **kwargs)
        key = tuple(ids)
        # vLLM lets a client abort a request and submit a new one under the same id: the runner then
        # holds a new request state, and the old one's steering must not carry over
        reused = [r for r in ids if r in self._states and self.runner.requests.get(r) is not self._states[r]]
        if self._plan is None or self._plan[0] != key or reused:
            self._drop_kept()
            live = set(ids) - set(reused)
            for gone in [r for r in self._steers if r not in live]:
                self._states.pop(gone, None)
                del self._steers[gone]
                self.rows.leave(gone)
            rows = [self.steers_of(r) for r in ids]
            prompt_lens = torch.tensor([self.runner.requests[r].num_prompt_tokens for r in ids])  # (R,)
            self._plan = (key, plan(rows) if any(rows) else [], prompt_lens)  # strengths per request (R,)
        _, planned, prompt_len = self._plan
        self._fill_rows(ids, qsl, kwargs.get("positions"))
        if not planned:
            return self._forward(*args, **kwargs)
        positions: Tensor = kwargs["positions"]  # (T,) absolute position of each token (T may be padded)
        if positions.shape[0] == len(ids) and int(qsl[-1]) == len(ids):  # a decode step: token i = request i
            if self._kept is not None and self._kept[1].owner != threading.get_ident():
                self._drop_kept()  # hooks act only in the thread that installed them
            if self._kept is None:
                tracker = PositionTracker()
                tracker.prompt_len = prompt_len
                tracker.index = positions[:, None]
                hooks = self._install(planned, tracker)
                self._kept = (key, hooks, tracker)
            _, hooks, tracker = self._kept
            tracker.index = positions[:, None].to(self.lm.device)  # (R, 1)
            hooks.active = True
            try:
                return self._forward(*args, **kwargs)
            finally:
                hooks.active = False
        self._drop_kept()
        counts = torch.from_numpy(np.diff(qsl))  # (R,) tokens of each request this step
        token_req = torch.repeat_interleave(torch.arange(len(ids)), counts)  # (T_real,)
        last = torch.from_numpy(qsl[1:] - 1)  # (R,) each request's last token this step
        self._last = (planned, positions[last].cpu(), prompt_len)
        pad = positions.shape[0] - token_req.shape[0]
        token_planned = [(s, Application(a.artifact, a.options, _pad(a.strengths[token_req], pad)))
                         for s, a in planned]
        tracker = PositionTracker()
        tracker.index = _pad(positions[: token_req.shape[0]].cpu(), pad, -1)[:, None]  # (T, 1)
        tracker.prompt_len = _pad(prompt_len[token_req], pad)  # (T,)
        hooks = self._install(token_planned, tracker)
        try:
            return self._forward(*args, **kwargs)
        finally:
            hooks.remove()

    def logits(self, hidden: Tensor) -> Any:
        """``compute_logits`` with each sampled row steered by its request (see the docstring)."""
        if self._kept is not None and self._plan is not None and self._kept[0] == self._plan[0]:
            kept = self._kept[1]  # the decode step's own hooks: its rows are the requests
            if hidden.shape[0] != len(self._kept[0]):
                raise SteerlabError("steering inside vLLM samples one row per request; speculative decoding "
                                    f"({hidden.shape[0]} rows for {len(self._kept[0])} requests) is not supported")
            kept.active = True
            try:
                return self.view.lm_head(hidden)
            finally:
                kept.active = False
        if self._last is None:
            return self._compute_logits(hidden)
        planned, positions, prompt_len = self._last
        if hidden.shape[0] != positions.shape[0]:
            raise SteerlabError("steering inside vLLM samples one row per request; speculative decoding "
                                f"({hidden.shape[0]} rows for {positions.shape[0]} requests) is not supported")
        tracker = PositionTracker()
        tracker.index = positions[:, None]  # (R, 1)
        tracker.prompt_len = prompt_len
        hooks = self._install(planned, tracker)
        try:
            return self.view.lm_head(hidden)
        finally:
            hooks.remove()

    def _install(self, planned: Sequence[tuple[Steerer, Application]], tracker: PositionTracker) -> VllmHookSet:
        device = self.lm.device
        if tracker.index is not None:
            tracker.index = tracker.index.to(device)
        if tracker.prompt_len is not None:
            tracker.prompt_len = tracker.prompt_len.to(device)
        hooks = VllmHookSet(self.lm.layers, self.tables.conventions)
        try:
            install_planned(self.lm, planned, hooks, tracker)
        except BaseException:
            hooks.remove()
            raise
        return hooks


def _pad(x: Tensor, n: int, value: float = 0) -> Tensor:
    return torch.cat([x, x.new_full((n,), value)]) if n > 0 else x


def attach(worker: Any) -> StepSteering | None:
    """Steer ``worker``'s model runner (once; the plugin calls this after the model loads).
    Best-effort: where steering cannot attach (a pooling model, pipeline parallelism, micro-batching,
    a model without ``compute_logits`` or decoder layers steerlab can find) the engine runs
    unsteered, the reason is logged, and admission refuses steered requests with it."""
    runner = worker.model_runner
    steering: StepSteering | None = getattr(runner, "_steerlab", None)
    if steering is not None or getattr(runner, "_steerlab_refused", None):
        return steering
    reason = unsteerable_reason(runner.vllm_config) if hasattr(runner, "vllm_config") else None
    if reason is None and (not hasattr(runner, "input_batch") or not hasattr(runner, "_model_forward")):
        reason = (f"steerlab steers vLLM's V1 model runner; this worker runs {type(runner).__name__} "
                  "(set VLLM_USE_V2_MODEL_RUNNER=0)")
    if reason is None:
        try:
            check_runner(runner)
            steering = StepSteering(runner, shared_store())
        except Exception as e:  # noqa: BLE001 - an engine that cannot steer still serves
            reason = f"steerlab could not attach to {type(getattr(runner, 'model', None)).__name__}: {e}"
    if steering is None:
        runner._steerlab_refused = reason
        log.warning("steerlab: this engine runs unsteered: %s", reason)
        return None
    runner._steerlab = steering
    log.info("steerlab steering attached to %s (%d layers)", type(runner.model).__name__, steering.lm.num_layers)
    return steering


class SteeringWorkerExtension:
    """Mixed into vLLM's worker (``worker_extension_cls``): steerlab calls through
    ``collective_rpc``."""

    def steerlab_attach(self) -> bool:
        """Attach steering now (the plugin does it after the model loads); True once attached."""
        return attach(self) is not None

    def steerlab_artifacts(self) -> list[str]:
        """Names the worker's store knows (after a re-scan of ``$STEERLAB_ARTIFACTS``)."""
        steering: StepSteering | None = getattr(self.model_runner, "_steerlab", None)  # type: ignore[attr-defined]
        store = steering.store if steering is not None else shared_store()
        return store.names()
