"""vLLM's ``vllm.general_plugins`` entry point. vLLM calls :func:`register` in every process it
starts (frontend, engine core, workers), possibly more than once; each step here is idempotent.

1. The worker: steering attaches to the model runner as soon as a worker has loaded its model
   (every worker, whatever its extension class); the engine config names
   :class:`~steerlab.vllm.worker.SteeringWorkerExtension` as the worker extension when the user has
   not chosen one, for steerlab's ``collective_rpc`` calls (``steerlab_artifacts``).
2. The prefix cache: a request's steering joins the key of its first KV block (as vLLM's own
   ``cache_salt`` does) — its spec, its artifacts' content and, where a position rule depends on
   it, its prompt length — so blocks computed under one steering are reused only by requests
   whose KV would be the same, never by unsteered ones.
3. The served model: every frontend's ``InputProcessor`` records the model it admits requests for
   (its transformers config, folder and vLLM settings), so admission checks artifacts against it
   (fingerprint, layers) and refuses what the worker could not run (``served_from_config``).
4. The model runner: steering hooks the V1 runner; ``VLLM_USE_V2_MODEL_RUNNER`` defaults to 0
   where the user has not chosen.
5. The compile cache: the steering tables' layout and capacities join vLLM's ``additional_config``,
   which vLLM hashes into the key of its compiled-graph cache, so a graph compiled without
   steerlab's ops (or with other capacities) is never reused by an engine that steers; and
   ``VLLM_USE_AOT_COMPILE`` is forced to 0 (with a warning where the user set it), so the forward
   is traced against the live tables at each start (compiled kernels still come from the cache).
6. The execution mode: nothing is forced. In vLLM's default compiled mode (torch.compile, CUDA
   graphs on a GPU) activation steering runs inside the graph (:mod:`steerlab.vllm.tables`),
   LM-Steer at ``compute_logits``; ``enforce_eager=True`` gives the same results.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from steerlab.vllm.requests import SERVED, UNFIT, served_from_config, shared_store, steering_digest

log = logging.getLogger("steerlab.vllm")
EXTENSION = "steerlab.vllm.worker.SteeringWorkerExtension"
_MARK = "_steerlab_patched"


def register() -> None:
    os.environ.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")
    # vLLM's AOT compile cache restores a compiled forward without tracing it again, bound to the
    # tensors it was traced with; the steering tables are new each start, so a restored forward
    # would read an earlier run's tables and steer nothing, silently. The forward is traced
    # against the live tables (Dynamo) while compiled kernels still come from the inductor cache
    # (a restart here: 47 s instead of 242 s). A user's VLLM_USE_AOT_COMPILE=1 is overridden, loudly.
    if os.environ.get("VLLM_USE_AOT_COMPILE", "0").strip().lower() not in ("0", "false", ""):
        log.warning("steerlab: VLLM_USE_AOT_COMPILE=%s is turned off: a restored graph would be bound to an earlier "
                    "run's steering tables and steer nothing", os.environ["VLLM_USE_AOT_COMPILE"])
    os.environ["VLLM_USE_AOT_COMPILE"] = "0"
    from steerlab.errors import SteerlabError
    from steerlab.vllm.contracts import check_static

    try:
        check_static()
    except SteerlabError as e:  # vLLM runs as if steerlab were not installed; steered requests are refused
        log.error("steerlab: %s; this engine runs unsteered", e)
        UNFIT.append(str(e))
        try:
            _patch_input_processor()
        except Exception:  # noqa: BLE001 - not even admission fits: vLLM runs as it is
            pass
        return
    _patch_load_model()
    _patch_block_hash()
    _patch_engine_config()
    _patch_input_processor()


def _patch_engine_config() -> None:
    from vllm.engine.arg_utils import EngineArgs

    original = EngineArgs.create_engine_config
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def create_engine_config(self: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self.additional_config, dict):  # vLLM hashes it into its compile cache's key
            from steerlab.vllm.capacity import graph_signature

            self.additional_config = {**self.additional_config, "steerlab_graph": graph_signature()}
        config = original(self, *args, **kwargs)
        if not config.parallel_config.worker_extension_cls:  # travels with the config to every worker
            config.parallel_config.worker_extension_cls = EXTENSION
        return config

    setattr(create_engine_config, _MARK, True)
    EngineArgs.create_engine_config = create_engine_config


def _patch_input_processor() -> None:
    """Record the served model where every frontend admits requests: vLLM's ``InputProcessor`` is
    built from the engine's ``VllmConfig`` by ``LLM``, ``AsyncLLM``, each API server process of
    ``vllm serve`` and an engine built from a config directly, so admission always checks against
    the model (and the settings) the request will run on."""
    from vllm.v1.engine.input_processor import InputProcessor

    original = InputProcessor.__init__
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def init(self: Any, vllm_config: Any, *args: Any, **kwargs: Any) -> None:
        original(self, vllm_config, *args, **kwargs)
        SERVED.append(served_from_config(vllm_config))

    setattr(init, _MARK, True)
    InputProcessor.__init__ = init


def _patch_load_model() -> None:
    """Attach steering right after a worker loads its model. vLLM calls :func:`register` in a new
    worker process before it builds the worker, so the class is patched in time there too."""
    from vllm.v1.worker.gpu_worker import Worker  # the CPU, XPU and other workers inherit load_model

    original = Worker.load_model
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def load_model(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = original(self, *args, **kwargs)
        from steerlab.vllm.worker import attach

        attach(self)
        return out

    setattr(load_model, _MARK, True)
    Worker.load_model = load_model


def _patch_block_hash() -> None:
    import importlib

    from vllm.v1.core import kv_cache_utils

    original = kv_cache_utils.generate_block_hash_extra_keys
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def extra_keys(request: Any, start_token_idx: int, end_token_idx: int, start_mm_idx: int) -> Any:
        keys, next_mm = original(request, start_token_idx, end_token_idx, start_mm_idx)
        if start_token_idx != 0:
            return keys, next_mm
        params = getattr(request, "sampling_params", None)
        digest = steering_digest(getattr(params, "extra_args", None), getattr(request, "num_prompt_tokens", None),
                                 shared_store())
        if digest is None:
            return keys, next_mm
        return (*(keys or ()), ("steerlab", digest)), next_mm

    setattr(extra_keys, _MARK, True)
    # modules that imported the function by name hold their own reference
    for name in ("vllm.v1.core.kv_cache_utils", "vllm.v1.core.block_pool", "vllm.v1.simple_kv_offload.manager"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "generate_block_hash_extra_keys", None) is original:
            setattr(module, "generate_block_hash_extra_keys", extra_keys)  # noqa: B010 - a plain module
