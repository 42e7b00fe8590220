"""The vLLM plugin is never silently wrong and never in the way: the parts that need no vLLM.

Decoder-layer conventions (a StableLM-style layer returns the stream and a stale residual), the
prefix-cache key (artifact content, prompt length), the admission checks built from vLLM's config
(deployments the plugin cannot steer, speculative decoding, parallel blocks at tensor parallel).
The same defects on vLLM's own engine are in ``tests/test_vllm.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from steerlab.errors import SteerlabError
from steerlab.vllm.capacity import Capacity
from steerlab.vllm.conventions import FIRST_LAYERS, PAIR_LAYERS, layer_convention, model_convention
from steerlab.vllm.tables import SteeringTables, wrap_sites
from steerlab.vllm.view import VllmHookSet

H = 8


def _vllm_class(name: str, forward: Any, module: str = "vllm.model_executor.models.fake") -> type:
    """A layer class that looks like one of vLLM's (its name and module are what the table reads)."""
    def init(self: nn.Module) -> None:
        nn.Module.__init__(self)
        self.proj = nn.Linear(H, H)

    return type(name, (nn.Module,), {"__init__": init, "forward": forward, "__module__": module})


def _stablelm_forward(self: Any, positions: torch.Tensor, hidden_states: torch.Tensor) -> Any:
    residual = hidden_states + self.proj(hidden_states)  # the stale mid-layer residual
    return residual + torch.tanh(self.proj(residual)), residual  # (the stream, stale)


def _llama_forward(self: Any, positions: torch.Tensor, hidden_states: torch.Tensor,
                   residual: torch.Tensor | None) -> Any:
    stream = hidden_states if residual is None else hidden_states + residual
    return torch.tanh(self.proj(stream)), stream  # (delta, residual): their sum is the stream


def _run(layers: list[nn.Module], pair: bool, x: torch.Tensor) -> torch.Tensor:
    """vLLM's model loop: a pair model feeds the residual on and sums at the end; StableLM drops it."""
    h, r = x, None
    for layer in layers:
        if pair:
            h, r = layer(None, h, r)
        else:
            h, r = layer(None, h)
    return h + r if pair else h


@pytest.mark.parametrize("name,forward,pair", [("StablelmDecoderLayer", _stablelm_forward, False),
                                                ("LlamaDecoderLayer", _llama_forward, True)])
def test_block_steering_adds_to_the_stream_whatever_the_layer_returns(name: str, forward: Any, pair: bool) -> None:
    """The table op on every layer's block, with one add at layer 1: equals the loop run by hand
    with the vector added to the stream after layer 1 (a StableLM-style layer's stale residual is
    never added in)."""
    torch.manual_seed(0)
    cls = _vllm_class(name, forward)
    layers = [cls() for _ in range(3)]
    x = torch.randn(5, H)  # (T, H)
    v = torch.randn(H)
    with torch.no_grad():
        h, r = x, None  # by hand: steer the stream after layer 1
        for i, layer in enumerate(layers):
            h, r = layer(None, h, r) if pair else layer(None, h)
            if i == 1:
                h, r = ((h + r + v, torch.zeros_like(r)) if pair else (h + v, r))
        want = h + r if pair else h
        tables = SteeringTables(3, H, Capacity(requests=1, tokens=8, sites=("block",)), torch.float32,
                                torch.device("cpu"))
        wrap_sites(tables, lambda layer, site: layers[layer], 3)
        assert tables.conventions == dict.fromkeys(range(3), "pair" if pair else "first")
        tables.table("block", "add")[1, 1] = v
        tables.on[1, 1] = True
        tables.token_row[:5] = 1
        assert torch.allclose(_run(layers, pair, x), want, atol=1e-6)
        tables.token_row.zero_()  # unsteered: bit for bit
        plain = [cls() for _ in range(3)]
        for a, b in zip(plain, layers):
            a.load_state_dict(b.state_dict())
        assert torch.equal(_run(layers, pair, x), _run(plain, pair, x))


def test_hooks_see_the_stream_of_a_stablelm_style_layer() -> None:
    layer = _vllm_class("StablelmDecoderLayer", _stablelm_forward)()
    x = torch.randn(4, H)
    v = torch.randn(H)
    hooks = VllmHookSet(nn.ModuleList([layer]), {0: "first"})
    hooks.forward_hook(layer, lambda m, a, out: out + v)
    with torch.no_grad():
        stream, stale = layer(None, x)
        hooks.remove()
        plain_stream, plain_stale = layer(None, x)
    assert torch.allclose(stream, plain_stream + v) and torch.equal(stale, plain_stale)


def test_unknown_or_changed_layers_refuse_block_steering_by_name() -> None:
    unknown = _vllm_class("NewShinyDecoderLayer", _llama_forward)()
    with pytest.raises(ValueError, match="NewShinyDecoderLayer"):
        layer_convention(unknown)
    changed = _vllm_class("LlamaDecoderLayer", _stablelm_forward)()  # a pair layer that no longer takes residual
    with pytest.raises(ValueError, match="takes no residual"):
        layer_convention(changed)
    with pytest.raises(ValueError, match="listed as a 'pair' layer but its model as 'first'"):
        layer_convention(_vllm_class("LlamaDecoderLayer", _llama_forward)(), "first")
    tables = SteeringTables(1, H, Capacity(requests=1, tokens=4, sites=("block",)), torch.float32, torch.device("cpu"))
    wrap_sites(tables, lambda layer, site: unknown, 1)
    assert ("block", 0) not in tables.wrapped and "NewShinyDecoderLayer" in tables.refused[("block", 0)]
    assert not isinstance(unknown.forward, type(None)) and unknown.forward.__self__ is unknown  # left as it was
    assert not PAIR_LAYERS & FIRST_LAYERS


def test_model_classes_inherit_their_base_convention() -> None:
    base = type("LlamaForCausalLM", (), {})
    sub = type("Phi3ForCausalLM", (base,), {})
    assert model_convention(sub) == "pair"
    assert model_convention(type("StablelmForCausalLM", (), {})) == "first"
    assert model_convention(type("SomethingNewForCausalLM", (), {})) is None


# --- the prefix-cache key --------------------------------------------------------------------

def test_prefix_key_covers_artifact_content_and_prompt_length(tmp_path: Path) -> None:
    from steerlab.artifacts import shipped
    from steerlab.vllm.requests import PluginStore, steering_digest

    store = PluginStore(tmp_path)
    shutil.copytree(shipped()["sentiment-vec"].path, tmp_path / "mine")
    extra = {"steering": [{"artifact": "mine", "strength": 4, "layers": [9]}]}
    first = steering_digest(extra, 40, store)
    assert first == steering_digest(extra, 41, store)  # positions "all": the prompt length does not matter
    shutil.rmtree(tmp_path / "mine")
    shutil.copytree(shipped()["formality-vec"].path, tmp_path / "mine")  # replaced on disk, same name
    assert steering_digest(extra, 40, store) != first
    gen = {"steering": [{"artifact": "mine", "strength": 4, "layers": [9], "positions": "generated"}]}
    assert steering_digest(gen, 40, store) != steering_digest(gen, 41, store)  # turn 2's prompt holds turn 1's answer
    k = {"steering": [{"artifact": "mine", "strength": 4, "layers": [9], "positions": 3}]}
    assert steering_digest(k, 40, store) == steering_digest(k, 41, store)  # absolute: independent of the prompt
    bad = {"steering": [{"artifact": "no-such-thing"}]}
    assert steering_digest(bad, 40, store) != steering_digest(bad, 40, store)  # never shared


def test_two_vllm_engines_never_share_an_artifact_name() -> None:
    """Each engine names the artifacts it saves uniquely, so a second engine's folder (listed after
    the first in $STEERLAB_ARTIFACTS) is never shadowed by the first's."""
    import re

    source = Path(__file__).resolve().parents[1] / "src" / "steerlab" / "vllm" / "engine.py"
    assert re.search(r"uuid\.uuid4\(\)", source.read_text())


# --- admission from vLLM's config ------------------------------------------------------------

def _config(**over: Any) -> Any:
    model = SimpleNamespace(runner_type="generate", is_multimodal_model=False, architectures=["LlamaForCausalLM"],
                            registry=SimpleNamespace(resolve_model_cls=lambda archs, m: (
                                type(archs[0], (), {"compute_logits": lambda self, h: h}), archs[0])),
                            served_model_name="m", model="/m", hf_text_config=SimpleNamespace())
    parallel = SimpleNamespace(pipeline_parallel_size=1, enable_dbo=False, ubatch_size=0, tensor_parallel_size=1)
    cfg = SimpleNamespace(model_config=model, parallel_config=parallel,
                          cache_config=SimpleNamespace(kv_sharing_fast_prefill=False), speculative_config=None,
                          compilation_config=SimpleNamespace(mode=0, cudagraph_mode=SimpleNamespace(name="NONE")))
    for path, value in over.items():
        obj = cfg
        *parents, last = path.split("__")
        for p in parents:
            obj = getattr(obj, p)
        setattr(obj, last, value)
    return cfg


@pytest.mark.parametrize("setting,value,words", [
    ("model_config__runner_type", "pooling", "pooling model"),
    ("parallel_config__pipeline_parallel_size", 2, "pipeline parallel"),
    ("parallel_config__enable_dbo", True, "enable_dbo"),
    ("cache_config__kv_sharing_fast_prefill", True, "kv_sharing_fast_prefill"),
    ("model_config__is_multimodal_model", True, "multimodal"),
])
def test_deployments_that_cannot_steer_refuse_every_steered_request(setting: str, value: Any, words: str) -> None:
    from steerlab.service.spec import SteerSpec
    from steerlab.vllm.requests import PluginStore, request_steers, served_from_config, unsteerable_reason

    assert unsteerable_reason(_config()) is None
    served = served_from_config(_config(**{setting: value}))
    assert served.unsteerable and words in served.unsteerable
    with pytest.raises(SteerlabError, match=words):
        request_steers([SteerSpec("sentiment-vec", 2.0)], PluginStore(), served)
    assert request_steers([], PluginStore(), served) == []  # unsteered requests still run


def test_speculative_decoding_refuses_position_rules_and_head_steers() -> None:
    from steerlab.models.packaged import PACKAGED, converted_dir
    from steerlab.service.spec import SteerSpec
    from steerlab.vllm.requests import PluginStore, ServedModel

    folder = converted_dir(PACKAGED["smollm2-135m"])
    import transformers

    config = transformers.AutoConfig.from_pretrained(folder)
    served = ServedModel("smollm2-135m", config, str(folder), speculative=True)
    from steerlab.vllm.requests import request_steers

    store = PluginStore()
    assert request_steers([SteerSpec("sentiment-vec", 2.0, {"layers": [9]})], store, served)  # positions all: runs
    with pytest.raises(SteerlabError, match="speculative decoding"):
        request_steers([SteerSpec("sentiment-vec", 2.0, {"layers": [9], "positions": "generated"})], store, served)
    with pytest.raises(SteerlabError, match="speculative decoding"):
        request_steers([SteerSpec("lmsteer-sentiment", 2.0)], store, served)
    unknown = ServedModel("smollm2-135m", config, str(folder), site_refusals={"block": "no convention for X"})
    with pytest.raises(SteerlabError, match="no convention for X"):
        request_steers([SteerSpec("sentiment-vec", 2.0, {"layers": [9]})], store, unknown)


def test_parallel_blocks_refuse_mlp_and_attn_at_tensor_parallel() -> None:
    from steerlab.vllm.requests import site_refusals

    cohere = _config(model_config__architectures=["CohereForCausalLM"], parallel_config__tensor_parallel_size=2)
    refusals = site_refusals(cohere)
    assert set(refusals) == {"mlp", "attn"} and "tensor_parallel_size=2" in refusals["mlp"]
    assert site_refusals(_config(model_config__architectures=["CohereForCausalLM"])) == {}
    assert set(site_refusals(_config(model_config__architectures=["BrandNewForCausalLM"]))) == {"block"}
