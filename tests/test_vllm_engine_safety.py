"""The vLLM plugin on vLLM's own engine is never silently wrong and one request never takes the
engine down: tiny random checkpoints (Llama, StableLM, Cohere; safetensors with the packaged
tokenizer) in a temporary folder, vLLM's CPU build, float32, greedy, ``ignore_eos``.

Each defect here was first shown on the previous plugin (noted per test), then fixed at its cause.
Engines run in one process (``tests/vllm_safety_driver.py``), and once more in vLLM's default
process layout (the engine core in its own process).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

from tests.test_vllm import _run_driver, needs_vllm

PROMPT = "The movie was"
LONG = "The committee met on Tuesday to discuss the budget for next year. " * 6  # 80 tokens: 3 KV blocks of 32
ENGINE = {"enforce_eager": True, "max_model_len": 512, "kv_cache_memory_bytes": 1 << 28, "block_size": 32}
MANY = 40  # distinct artifacts in one call: more than the 32 the previous tables held


def _configs(vocab: int, bos: int, eos: int) -> dict[str, Any]:
    import transformers as tf

    common = dict(vocab_size=vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                  num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                  initializer_range=0.2, bos_token_id=bos, eos_token_id=eos)  # head_dim 64: vLLM's CPU attention
    return {"llama": tf.LlamaConfig(tie_word_embeddings=True, **common),
            "stablelm": tf.StableLmConfig(tie_word_embeddings=False, **common),
            "cohere": tf.CohereConfig(tie_word_embeddings=True, logit_scale=1.0, **common)}


def _steer(artifact: str, strength: float = 2.0, **options: Any) -> list[dict[str, Any]]:
    return [{"artifact": artifact, "strength": strength, **options}]


def _items(arch: str) -> list[list[Any]]:
    return [[PROMPT, None], [PROMPT, _steer(f"{arch}-vec", layers=[1])],
            [PROMPT, _steer(f"{arch}-vec", layers=[1, 2], positions="generated")]]


def _hf_texts(lm: Any, items: list[list[Any]], store: Any, max_tokens: int = 8) -> list[str]:
    import steerlab
    from steerlab.core.steerer import Steer

    out = []
    for prompt, spec in items:
        steers = tuple(Steer(store.get(s["artifact"]), s["strength"],
                             {k: v for k, v in s.items() if k not in ("artifact", "strength")}) for s in spec or [])
        out.append(steerlab.generate(lm, [prompt], steers or None, max_new_tokens=max_tokens, ignore_eos=True,
                                     progress=False)[0])
    return out


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Checkpoints, artifacts (one vector per model, :data:`MANY` more for Llama) and steerlab's own
    engine's texts for every case the engines run."""
    import transformers as tf

    import steerlab
    from steerlab.methods.vectors.vector import SteeringVector
    from steerlab.models.packaged import PACKAGED, converted_dir
    from steerlab.service.resolve import ArtifactStore

    work = tmp_path_factory.mktemp("vllm-safety")
    arts = work / "artifacts"
    tok = tf.AutoTokenizer.from_pretrained(converted_dir(PACKAGED["smollm2-135m"]))
    folders, refs = {}, {}
    for arch, config in _configs(len(tok), tok.bos_token_id, tok.eos_token_id).items():
        torch.manual_seed(0)
        folder = work / arch
        tf.AutoModelForCausalLM.from_config(config).save_pretrained(folder, safe_serialization=True)
        tok.save_pretrained(folder)
        folders[arch] = str(folder)
        lm = steerlab.load_model(str(folder))
        g = torch.Generator().manual_seed(1)
        SteeringVector({la: 3 * torch.randn(lm.hidden_size, generator=g) for la in (1, 2)},
                       model=lm.fingerprint).save(arts / f"{arch}-vec")
        if arch == "llama":
            for i in range(MANY):
                g = torch.Generator().manual_seed(100 + i)
                SteeringVector({1: 3 * torch.randn(lm.hidden_size, generator=g)},
                               model=lm.fingerprint).save(arts / f"many-{i:02d}")
        store = ArtifactStore({p.name: p for p in arts.iterdir()})
        refs[arch] = _hf_texts(lm, _items(arch), store)
        if arch == "llama":
            refs["many"] = _hf_texts(lm, _many()[:4], store)
            refs["long_ids"] = lm.tokenizer(LONG)["input_ids"]
            refs["mixed"] = _hf_texts(lm, MIXED, store)
    return {"work": work, "folders": folders, "refs": refs}


def _many() -> list[list[Any]]:
    return [[PROMPT, _steer(f"many-{i:02d}")] for i in range(MANY)]


MIXED = [[PROMPT, None], [PROMPT, _steer("llama-vec", layers=[1])],
         ["Today the weather", _steer("llama-vec", -2.0, layers=[1, 2], positions="generated")],
         ["Today the weather", _steer("many-03", 1.0, operator="ablate")]]
GOOD = [[PROMPT, None], ["Today the weather", _steer("llama-vec", -2.0, layers=[1])]]
GEN = _steer("llama-vec", layers=[1, 2], positions="generated")
OVER = [{"artifact": "llama-vec", "strength": 1.0, "layers": [1], "positions": k} for k in (2, 3, 4, 5)]


SPEC = {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3}
"""vLLM's CPU build runs ngram speculation: each step scores several draft tokens per request."""
_REPEATED = "The cat sat on the mat. The cat sat on the mat. The cat sat on the"  # n-grams to propose drafts from
REPEATS = [[_REPEATED, None], [_REPEATED, _steer("llama-vec", -2.0, layers=[1])]]


def _turn_two_engines(folder: str, arch: str, long_ids: list[int], first: int, *,
                      full: bool) -> list[dict[str, Any]]:
    """Engine 0 (prefix caching on) runs turn 2 of a chat steered on generated tokens (by ``arch``'s
    vector) and unsteered; engine 1 (caching off) replays both B prompts; ``first`` is engine 0's
    index in the job. ``full`` (Llama) adds request-id reuse, capacity and admission cases to engine 0."""
    gen = _steer(f"{arch}-vec", layers=[1, 2], positions="generated")
    runs: list[dict[str, Any]] = [{"kind": "turn2", "prompt": long_ids, "steering": gen, "max_tokens": 32},
                                  {"kind": "turn2", "prompt": long_ids, "steering": None, "max_tokens": 32}]
    if full:
        runs += [{"kind": "reuse", "prompt": PROMPT, "first": GEN, "second": GOOD[1][1], "steps": 3},
                 {"kind": "generate", "items": [[PROMPT, GOOD[1][1]]]},
                 {"kind": "generate", "items": GOOD + _many()},
                 {"kind": "admit", "items": [[p, s, None] for p, s in GOOD] + [[PROMPT, OVER, None]]},
                 {"kind": "generate", "items": GOOD},
                 {"kind": "env", "names": ["VLLM_USE_AOT_COMPILE"]}]
    replay = [{"kind": "replay", "engine": first, "run": r, "field": "b_prompt", "steering": s, "max_tokens": 32}
              for r, s in ((0, gen), (1, None))]
    return [{"model": folder, "kwargs": {**ENGINE, "enable_prefix_caching": True}, "runs": runs},
            {"model": folder, "kwargs": {**ENGINE, "enable_prefix_caching": False}, "runs": replay}]


@pytest.fixture(scope="module")
def one_process(tiny_world: dict[str, Any]) -> list[list[Any]]:
    """Every case in one process: StableLM and Cohere eager and compiled, then the Llama engines.
    ``VLLM_USE_AOT_COMPILE=1`` is exported, as a user might."""
    f = tiny_world["folders"]
    engines = [{"model": f[arch], "kwargs": {**ENGINE, "enforce_eager": eager}, "runs": [
        {"kind": "generate", "items": _items(arch)}]} for eager in (True, False) for arch in ("stablelm", "cohere")]
    engines += _turn_two_engines(f["llama"], "llama", tiny_world["refs"]["long_ids"], len(engines), full=True)
    engines[-1]["runs"].append({"kind": "generate", "items": REPEATS})  # the same rows without speculation
    engines.append({"model": f["llama"], "kwargs": {**ENGINE, "enforce_eager": True, "speculative_config": SPEC},
                    "runs": [{"kind": "admit", "items": [[p, s, None] for p, s in REPEATS] + [[PROMPT, GEN, None]]}]})
    return list(_run_driver("vllm_safety_driver.py", {"engines": engines}, tiny_world["work"],
                            env={"VLLM_USE_AOT_COMPILE": "1"})["engines"])


@pytest.fixture(scope="module")
def default_layout(tiny_world: dict[str, Any]) -> list[list[Any]]:
    """vLLM's default process layout (the engine core in its own process): StableLM's parity and
    the prefix-cache case across two turns, on StableLM (whose layers return the stream first)."""
    f = tiny_world["folders"]
    engines = [{"model": f["stablelm"], "kwargs": ENGINE, "runs": [{"kind": "generate", "items": _items("stablelm")}]}]
    engines += _turn_two_engines(f["stablelm"], "stablelm", tiny_world["refs"]["long_ids"], len(engines), full=False)
    return list(_run_driver("vllm_safety_driver.py", {"engines": engines}, tiny_world["work"],
                            env={"VLLM_ENABLE_V1_MULTIPROCESSING": "1"})["engines"])


@pytest.mark.slow
@needs_vllm
@pytest.mark.parametrize("engine,arch,mode", [(0, "stablelm", "eager"), (1, "cohere", "eager"),
                                              (2, "stablelm", "compiled"), (3, "cohere", "compiled")])
def test_block_steering_equals_steerlab_on_layers_that_return_the_stream(
        engine: int, arch: str, mode: str, one_process: list[list[Any]], tiny_world: dict[str, Any]) -> None:
    """StableLM and Cohere layers return (the stream, a stale residual). Before: unsteered equal,
    steered different (the stale residual was added in); now equal in both modes."""
    got = one_process[engine][0]["texts"]
    want = tiny_world["refs"][arch]
    assert got == want
    assert len(set(got)) == 3  # the steers change the text


@pytest.mark.slow
@needs_vllm
def test_turn_two_of_a_chat_never_reuses_kv_steered_as_generated(one_process: list[list[Any]]) -> None:
    """A steers its generated tokens; B = A's prompt + A's answer, same steer, where A's answer is
    prompt (unsteered). Before: B read A's cached, steered KV and differed from B on a fresh engine
    with prefix caching off; now equal. The unsteered control is equal either way."""
    cached, fresh = one_process[4], one_process[5]
    assert cached[0]["a"] != cached[1]["a"]  # the steer visibly changes A
    assert cached[0]["b"] == fresh[0]["ids"]
    assert cached[1]["b"] == fresh[1]["ids"]


@pytest.mark.slow
@needs_vllm
def test_a_resubmitted_request_id_takes_its_new_steering(one_process: list[list[Any]]) -> None:
    """add, step, abort, add again under the same id with another steer: equals a fresh run."""
    runs = one_process[4]
    assert runs[2]["ids"] == runs[3]["ids"][0]


@pytest.mark.slow
@needs_vllm
def test_more_distinct_artifacts_than_requests_run_in_one_call(one_process: list[list[Any]],
                                                              tiny_world: dict[str, Any]) -> None:
    """40 artifacts in one ``LLM.generate`` beside two good requests. Before (tables of 32 artifact
    slots): the call raised and the engine's next request never returned. Now each row holds its own
    vectors: everything runs, the steered rows equal steerlab's engine, the good rows their solo text."""
    runs = one_process[4]
    batch, good_after = runs[4], runs[6]
    assert "error" not in batch, batch
    assert batch["texts"][:2] == good_after["texts"]
    assert batch["texts"][2:6] == tiny_world["refs"]["many"]
    assert len(set(batch["texts"][2:])) > MANY // 2


@pytest.mark.slow
@needs_vllm
def test_a_request_past_the_tables_is_refused_alone_at_admission(one_process: list[list[Any]]) -> None:
    """Four position cuts (three fit): that request gets its own error when added; the good ones run
    and equal their solo texts; no step raises; the next unsteered request equals the first."""
    runs = one_process[4]
    admit, after = runs[5], runs[6]
    assert "step_error" not in admit
    good_a, good_b, bad = admit["items"]
    assert bad and "STEERLAB_VLLM_GRAPH_SEGMENTS" in bad["error"]
    assert [good_a["ids"], good_b["ids"]] == after["ids"]


@pytest.mark.slow
@needs_vllm
def test_speculative_decoding_steers_every_token_and_refuses_position_rules(one_process: list[list[Any]]) -> None:
    """With ngram speculation a step holds several tokens per request: steering with positions
    "all" gives the tokens the same engine gives without speculation; a "generated" rule (whose
    segment starts the drafts would shift) is refused at admission, alone."""
    admit = one_process[6][0]
    assert "step_error" not in admit
    plain, steered, refused = admit["items"]
    assert refused and "speculative decoding" in refused["error"]
    assert [plain["ids"], steered["ids"]] == one_process[5][-1]["ids"]  # the same rows, no speculation
    assert plain["ids"] != steered["ids"]  # the steer changed the text


@pytest.mark.slow
@needs_vllm
def test_aot_compile_is_forced_off(one_process: list[list[Any]]) -> None:
    """A restored AOT graph would read an earlier run's tables: the plugin turns it off."""
    assert one_process[4][7] == {"VLLM_USE_AOT_COMPILE": "0"}


@pytest.mark.slow
@needs_vllm
def test_default_process_layout_steers_and_keys_the_prefix_cache(default_layout: list[list[Any]],
                                                                 tiny_world: dict[str, Any]) -> None:
    assert default_layout[0][0]["texts"] == tiny_world["refs"]["stablelm"]
    cached, fresh = default_layout[1], default_layout[2]
    assert cached[0]["a"] != cached[1]["a"]
    assert cached[0]["b"] == fresh[0]["ids"] and cached[1]["b"] == fresh[1]["ids"]



@pytest.mark.slow
@needs_vllm
def test_every_vllm_internal_the_plugin_touches_is_where_it_expects() -> None:
    """One contract per module-level internal (steerlab.vllm.contracts), against the installed vLLM."""
    import subprocess

    from tests.test_vllm import VLLM_PY

    code = ("from steerlab.vllm.contracts import STATIC, check_static; check_static(); "
            "print(len(STATIC))")
    proc = subprocess.run([str(VLLM_PY), "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.strip().splitlines()[-1]) >= 5


@pytest.mark.slow
@needs_vllm
def test_tensor_parallel_two_equals_steerlab_engine(tiny_world: dict[str, Any]) -> None:
    """vLLM's CPU build at tensor_parallel_size=2 (two worker processes, each steering its own copy
    of the all-reduced stream): a mixed steered batch equals steerlab's own engine (and so TP=1)."""
    engines = [{"model": tiny_world["folders"]["llama"], "kwargs": {**ENGINE, "tensor_parallel_size": 2},
                "runs": [{"kind": "generate", "items": MIXED}]}]
    got = _run_driver("vllm_safety_driver.py", {"engines": engines}, tiny_world["work"],
                      env={"VLLM_ENABLE_V1_MULTIPROCESSING": "1", "VLLM_CPU_OMP_THREADS_BIND": "0|1"})
    texts = got["engines"][0][0]["texts"]
    assert texts == tiny_world["refs"]["mixed"]
    assert len(set(texts)) == len(texts)


@pytest.mark.slow
@needs_vllm
def test_a_pooling_model_runs_as_without_steerlab(tiny_world: dict[str, Any]) -> None:
    """A tiny BERT embedding model with the plugin installed: the same embeddings as with vLLM's
    plugins off (``VLLM_PLUGINS=none``); the plugin does not attach."""
    import transformers as tf

    folder = tiny_world["work"] / "bert"
    if not folder.exists():
        tok = tf.AutoTokenizer.from_pretrained(tiny_world["folders"]["llama"])
        config = tf.BertConfig(vocab_size=len(tok), hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=256, max_position_embeddings=512, pad_token_id=0)
        torch.manual_seed(0)
        tf.BertModel(config).save_pretrained(folder, safe_serialization=True)
        tok.save_pretrained(folder)
    job = {"engines": [{"model": str(folder), "kwargs": {"runner": "pooling", "enforce_eager": True,
                                                         "max_model_len": 256, "kv_cache_memory_bytes": 1 << 27},
                        "runs": [{"kind": "embed", "prompts": [PROMPT, "Today the weather"]}]}]}
    got = [_run_driver("vllm_safety_driver.py", job, tiny_world["work"], env=env)["engines"][0][0]["embeddings"]
           for env in ({}, {"VLLM_PLUGINS": "none"})]
    assert got[0] == got[1] and len(got[0][0]) == 128


@pytest.mark.slow
@needs_vllm
def test_prompt_logprobs_beside_an_lm_steer_steer_is_refused_at_admission() -> None:
    """vLLM's admission hook, as every frontend calls it: LM-Steer steers the sampled rows only, so
    prompt logprobs beside it are refused; beside a vector they are fine."""
    import subprocess

    from tests.test_vllm import VLLM_PY

    code = """
import transformers
from types import SimpleNamespace
from steerlab.models.packaged import PACKAGED, converted_dir
from steerlab.vllm.admission import SteeringAdmission
from steerlab.vllm.requests import SERVED, ServedModel
folder = converted_dir(PACKAGED["smollm2-135m"])
SERVED.append(ServedModel("smol", transformers.AutoConfig.from_pretrained(folder), str(folder)))
vec = SimpleNamespace(extra_args={"steering": [{"artifact": "sentiment-vec", "strength": 2, "layers": [9]}]},
                      prompt_logprobs=1)
SteeringAdmission.validate_params(vec)
head = SimpleNamespace(extra_args={"steering": [{"artifact": "lmsteer-sentiment", "strength": 2}]}, prompt_logprobs=1)
try:
    SteeringAdmission.validate_params(head)
    print("ADMITTED")
except ValueError as e:
    print("REFUSED", e)
"""
    proc = subprocess.run([str(VLLM_PY), "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "REFUSED steering: prompt_logprobs" in proc.stdout
