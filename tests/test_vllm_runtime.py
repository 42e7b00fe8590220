"""The vLLM plugin's runtime safety without vLLM: a failing step in ``steerlab serve --engine vllm``,
a worker that cannot steer (attaching is best-effort), the named contracts with vLLM's internals,
a spec prepared once per process, and the GPU op benchmark's CPU mode."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from steerlab.errors import SteerlabError
from steerlab.vllm.capacity import Capacity
from steerlab.vllm.tables import SteeringTables
from tests.test_vllm_safety import H, _config

# --- a failing step ---------------------------------------------------------------------------

class _FakeCore:
    """vLLM's engine as VllmServingEngine drives it: the first step raises; requests still inside
    it then would fail every later step, as the real engine would schedule them again."""

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.aborted: list[str] = []
        self.steps = 0

    def add_request(self, rid: str, prompt: Any, params: Any, lora_request: Any = None) -> None:
        self.requests[rid] = 0

    def abort_request(self, ids: list[str]) -> None:
        self.aborted += ids
        for rid in ids:
            self.requests.pop(rid, None)

    def step(self) -> list[Any]:
        self.steps += 1
        if self.steps == 1 or "r0" in self.requests:  # r0 left inside vLLM would fail every step
            raise RuntimeError("boom inside the step")
        out = []
        for rid in list(self.requests):
            done = SimpleNamespace(text="x", token_ids=[1], finish_reason="length")
            out.append(SimpleNamespace(request_id=rid, outputs=[done], finished=True, prompt_token_ids=[1, 2]))
            del self.requests[rid]
        return out


def test_a_failing_step_fails_its_requests_inside_vllm_and_the_next_step_runs() -> None:
    from steerlab.generation.jobs import Job, Stream
    from steerlab.vllm.serving import VllmServingEngine

    core = _FakeCore()
    engine = VllmServingEngine(SimpleNamespace(llm=SimpleNamespace(llm_engine=core)))  # type: ignore[arg-type]
    engine.start()
    try:
        first = [Stream(Job("a")), Stream(Job("b"))]
        for i, s in enumerate(first):
            engine._incoming.put((f"r{i}", s, {}, None, None))
        engine._wake.set()
        for s in first:
            with pytest.raises(SteerlabError, match="the engine step failed: boom"):
                s.result(timeout=10)
        assert sorted(core.aborted) == ["r0", "r1"]  # gone from vLLM too, not rescheduled
        later = Stream(Job("c"))
        engine._incoming.put(("r2", later, {}, None, None))
        engine._wake.set()
        text, done = later.result(timeout=10)
        assert text == "x" and done.finish_reason == "length"
    finally:
        engine.stop()


# --- the vLLM internals the plugin touches ----------------------------------------------------

def test_a_moved_internal_is_named() -> None:
    from steerlab.vllm.contracts import Contract, check_runner, check_static

    assert Contract("json", "dumps", ("obj",)).broken() is None
    assert "json.nope is gone" in (Contract("json", "nope").broken() or "")
    assert "no longer takes zzz" in (Contract("json", "dumps", ("obj", "zzz")).broken() or "")
    with pytest.raises(SteerlabError, match="no_such_module cannot be imported"):
        check_static([Contract("no_such_module", "x")])
    runner = SimpleNamespace(input_batch=SimpleNamespace(req_ids=[], num_reqs=0))
    with pytest.raises(SteerlabError, match="input_batch.num_computed_tokens_cpu"):
        check_runner(runner)


# --- the GPU op benchmark's CPU mode ----------------------------------------------------------

def _gpu_bench() -> Any:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_graph_op.py"
    spec = importlib.util.spec_from_file_location("gpu_graph_op", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_op_benchmark_measures_the_plugins_own_op() -> None:
    """benchmarks/gpu_graph_op.py's ``lean`` op is the plugin's (SteeringTables.steer, bit for bit on
    the same tables), its ``factored`` op (the earlier form) computes the same steering, and its tiny
    CPU mode runs end to end."""
    bench = _gpu_bench()
    L, V, T = 3, 9, 16  # noqa: N806
    ops = bench.Ops(L, H, V, T, artifacts=5, projections=1, dtype=torch.float32, device=torch.device("cpu"))
    tables = SteeringTables(L, H, Capacity(requests=2, segments=4, tokens=T, sites=("block",)), torch.float32,
                            torch.device("cpu"))
    for kind, value in ops.lean_t.items():
        tables.table("block", kind).copy_(value)
    tables.token_row.copy_(ops.token_row)
    h = torch.randn(T, H)
    for layer in range(L):
        assert torch.equal(ops.lean(layer, h), tables.steer("block", layer, h))
        assert torch.allclose(ops.factored(layer, h), ops.lean(layer, h), atol=1e-4)
    result = bench.measure("tiny", [1, 4], 1, torch.device("cpu"), torch.float32, requests=2)
    assert set(result["ratio_to_none"]["4"]) == {"none", "factored", "lean"}


def test_a_spec_is_parsed_and_validated_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Admission, the worker and every later request with the same steering share one preparation;
    another strength or an artifact replaced on disk is prepared anew."""
    import transformers

    from steerlab.core.steerer import get_steerer
    from steerlab.models.packaged import PACKAGED, converted_dir
    from steerlab.service.spec import SteerSpec
    from steerlab.vllm.requests import PluginStore, ServedModel, request_steers

    folder = converted_dir(PACKAGED["smollm2-135m"])
    served = ServedModel("smollm2-135m", transformers.AutoConfig.from_pretrained(folder), str(folder))
    steerer = type(get_steerer("vectors"))
    calls = {"parse": 0}
    original = steerer.parse_options

    def counting(self: Any, options: Any) -> Any:
        calls["parse"] += 1
        return original(self, options)

    monkeypatch.setattr(steerer, "parse_options", counting)
    store = PluginStore()
    for _ in range(10):  # ten requests, each with its own freshly parsed spec objects
        request_steers([SteerSpec("sentiment-vec", 3.0, {"layers": [9], "positions": "generated"})], store, served)
    assert calls["parse"] == 1
    request_steers([SteerSpec("sentiment-vec", 4.0, {"layers": [9], "positions": "generated"})], store, served)
    assert calls["parse"] == 2


# --- attaching is best-effort -----------------------------------------------------------------

class _PPMissingLayer(nn.Module):
    """What vLLM puts where a pipeline-parallel rank holds no module."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return args[0] if args else next(iter(kwargs.values()))


@pytest.mark.parametrize("setting,value,words", [
    ("parallel_config__pipeline_parallel_size", 2, "pipeline parallel"),
    ("model_config__runner_type", "pooling", "pooling model"),
])
def test_a_worker_that_cannot_steer_runs_unsteered_and_untouched(setting: str, value: Any, words: str) -> None:
    """A later pipeline-parallel rank (its embedding a PPMissingLayer) or a pooling model: the plugin
    does not attach, leaves the runner's forward and the model as they were, and says why."""
    from steerlab.vllm.worker import attach

    model = nn.Module()
    model.model = nn.Module()
    model.model.embed_tokens = _PPMissingLayer()
    model.model.layers = nn.ModuleList([nn.Linear(H, H)])
    model.compute_logits = lambda h: h

    def forward(*args: Any, **kwargs: Any) -> str:
        return "vllm's own"

    runner = SimpleNamespace(model=model, vllm_config=_config(**{setting: value}), input_batch=SimpleNamespace(),
                             _model_forward=forward)
    assert attach(SimpleNamespace(model_runner=runner)) is None
    assert words in runner._steerlab_refused
    assert runner._model_forward is forward and not hasattr(runner, "_steerlab")
    assert attach(SimpleNamespace(model_runner=runner)) is None  # once: not tried again


def test_an_attach_that_fails_leaves_the_engine_serving() -> None:
    """A runner without the arrays steering reads (a vLLM release that moved them): refused with
    what moved, the forward untouched."""
    from steerlab.vllm.worker import attach

    def forward(*args: Any, **kwargs: Any) -> str:
        return "vllm's own"

    runner = SimpleNamespace(model=nn.Linear(2, 2), vllm_config=_config(), input_batch=SimpleNamespace(),
                             _model_forward=forward)
    assert attach(SimpleNamespace(model_runner=runner)) is None
    assert "input_batch.req_ids" in runner._steerlab_refused and runner._model_forward is forward
