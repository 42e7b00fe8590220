"""Every vLLM internal the plugin touches, checked by name, so a vLLM upgrade that moves one is
refused when the plugin loads or attaches — naming what moved — instead of steering wrongly.

The tested range is pinned in ``pyproject.toml`` (``vllm>=0.32,<0.33``); ``docs/vllm-internals.md``
has the same table. :func:`check_static` runs in every vLLM process as the plugin registers (module-level
classes and signatures); :func:`check_runner` when the worker attaches (the model runner's arrays).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from steerlab.errors import SteerlabError


@dataclass(frozen=True)
class Contract:
    """One internal: ``module`` and dotted ``attr`` must exist; a callable must take ``params``."""

    module: str
    attr: str
    params: tuple[str, ...] = ()
    why: str = ""

    @property
    def name(self) -> str:
        return f"{self.module}.{self.attr}"

    def broken(self) -> str | None:
        """What moved (None: the contract holds)."""
        try:
            obj: Any = importlib.import_module(self.module)
        except ImportError as e:
            return f"{self.module} cannot be imported ({e})"
        for part in self.attr.split("."):
            if not hasattr(obj, part):
                return f"{self.name} is gone"
            obj = getattr(obj, part)
        if self.params:
            try:
                have = set(inspect.signature(obj).parameters)
            except (TypeError, ValueError):
                return f"{self.name} has no readable signature"
            missing = [p for p in self.params if p not in have]
            if missing:
                return f"{self.name} no longer takes {', '.join(missing)}"
        return None


STATIC: tuple[Contract, ...] = (
    Contract("vllm.v1.worker.gpu_worker", "Worker.load_model", why="steering attaches after the model loads"),
    Contract("vllm.v1.core.kv_cache_utils", "generate_block_hash_extra_keys",
             ("request", "start_token_idx", "end_token_idx", "start_mm_idx"),
             "a request's steering joins its first KV block's hash"),
    Contract("vllm.engine.arg_utils", "EngineArgs.create_engine_config", why="the worker extension and compile key"),
    Contract("vllm.v1.engine.input_processor", "InputProcessor.__init__", ("vllm_config",),
             "every frontend records the served model for admission"),
    Contract("vllm.v1.sample.logits_processor", "LogitsProcessor.validate_params", ("sampling_params",),
             "admission checks each request's steering"),
)
"""Module-level internals, checked as the plugin registers."""

RUNNER: tuple[str, ...] = (
    "input_batch.req_ids", "input_batch.num_reqs", "input_batch.num_computed_tokens_cpu", "query_start_loc.np",
    "requests", "max_num_reqs", "max_num_tokens", "vllm_config", "model.compute_logits", "model.model",
)
"""Model-runner attributes read per step (``_model_forward`` is checked with the V1 runner)."""


def check_static(contracts: Sequence[Contract] = STATIC) -> None:
    """Raise naming every module-level internal that moved."""
    moved = [b for c in contracts if (b := c.broken()) is not None]
    if moved:
        raise SteerlabError("steerlab's vLLM plugin does not fit this vLLM release (tested: 0.32): " + "; ".join(moved))


def check_runner(runner: Any) -> None:
    """Raise naming every model-runner attribute that moved."""
    moved = []
    for path in RUNNER:
        obj = runner
        for part in path.split("."):
            if not hasattr(obj, part):
                moved.append(f"model runner .{path}")
                break
            obj = getattr(obj, part)
    if moved:
        raise SteerlabError("steerlab's vLLM plugin does not fit this vLLM release (tested: 0.32): "
                            + ", ".join(moved) + " not found")
