"""The worker side: steer each token of a vLLM step with its own request's steering.

:class:`SteeringWorkerExtension` is mixed into vLLM's worker class by the plugin. After the model
loads — before vLLM compiles it or captures CUDA graphs — steering attaches to the model runner:

- **In the graph** (:mod:`steerlab.vllm.tables`): every decoder site gets a table op, traced into
  vLLM's compiled forward. Methods that describe themselves as site ops
  (:meth:`~steerlab.core.steerer.Steerer.site_ops`: activation vectors, every site, operator and
  position rule) run there: a request's rows are written when it joins, and before each forward
  ``_model_forward`` writes each token's row from the runner's host arrays. The same path runs in
  eager mode, so both modes give the same results.
- **As hooks** (:mod:`steerlab.vllm.hookpath`): methods whose hooks act on the LM head alone
  (LM-Steer) run in ``compute_logits``, outside the compiled graph; in eager mode any other hook
  method runs the same way (in compiled mode it is refused at admission: its hooks would not run).

:class:`StepSteering` is the step driver between the two: it tells which requests joined, left or
were resubmitted, and writes each token's table row before vLLM's forward.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import Tensor

from steerlab.core.steerer import Prepared
from steerlab.models.loading import LoadedModel
from steerlab.vllm.capacity import Capacity
from steerlab.vllm.contracts import check_runner
from steerlab.vllm.conventions import model_convention
from steerlab.vllm.hookpath import HookPath
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
from steerlab.vllm.view import VllmView, loaded_view

log = logging.getLogger("steerlab.vllm")


class StepSteering:
    """The step driver of one model runner: before each forward, the batch's requests are joined
    (their site ops written to the tables, their hook steers handed to the :class:`HookPath`) or
    left, and each token's table row is written from the runner's host arrays."""

    def __init__(self, runner: Any, store: PluginStore) -> None:
        self.runner = runner
        self.store = store
        model = runner.model
        self._forward = runner._model_forward
        compute_logits = model.compute_logits
        self.view = VllmView(model, compute_logits)
        config = runner.vllm_config.model_config
        self.lm: LoadedModel = loaded_view(self.view, str(config.served_model_name or config.model), str(config.model))
        self.compiled = is_compiled(runner.vllm_config)
        dtype = next(self.view.parameters()).dtype
        cap = Capacity.from_env(requests=int(runner.max_num_reqs), tokens=int(runner.max_num_tokens))
        self.tables = SteeringTables(self.lm.num_layers, self.lm.hidden_size, cap, dtype, self.lm.device)
        wrap_sites(self.tables, self.lm.site_module, self.lm.num_layers, model_convention(type(model)))
        self.rows = RowPlanner(self.tables)
        self.hooks = HookPath(self.lm, self.view.lm_head, compute_logits, self.tables.conventions)
        self._steers: dict[str, list[Prepared]] = {}  # request id -> its hook steers (prepared once)
        self._states: dict[str, Any] = {}  # request id -> the runner's request state its steers came from
        runner._model_forward = self.forward
        model.compute_logits = self.hooks.logits

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

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """vLLM's ``_model_forward`` for this step's batch, steered."""
        batch = self.runner.input_batch
        ids = list(batch.req_ids[: batch.num_reqs])
        qsl = np.asarray(self.runner.query_start_loc.np[: len(ids) + 1], dtype=np.int64)  # (R+1,)
        positions: Tensor | None = kwargs.get("positions")  # (T,) absolute position of each token
        key = tuple(ids)
        # vLLM lets a client abort a request and submit a new one under the same id: the runner then
        # holds a new request state, and the old one's steering must not carry over
        reused = [r for r in ids if r in self._states and self.runner.requests.get(r) is not self._states[r]]
        if self.hooks.batch != key or reused:
            live = set(ids) - set(reused)
            for gone in [r for r in self._steers if r not in live]:
                self._states.pop(gone, None)
                del self._steers[gone]
                self.rows.leave(gone)
            steers = [self.steers_of(r) for r in ids]
            prompt_len = torch.tensor([self.runner.requests[r].num_prompt_tokens for r in ids], dtype=torch.long)
            self.hooks.replan(key, steers, prompt_len)  # (R,) prompt lengths
        computed = np.asarray(batch.num_computed_tokens_cpu[: len(ids)], dtype=np.int64)  # (R,)
        padded = int(positions.shape[0]) if positions is not None else None
        self.rows.fill(StepTokens.from_runner(ids, qsl, computed, padded))  # no device sync
        return self.hooks.forward(lambda: self._forward(*args, **kwargs), qsl, positions)


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
