"""The HTTP server on a tiny model, run for real (uvicorn on a free local port): OpenAI shapes and
the official client, per-request steering equal to the library's own generate, 32 concurrent
requests with 32 specs each equal to its solo run, streaming, limits and every bad input a 4xx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import steerlab
from steerlab.bench import per_row_vectors
from steerlab.core.steerer import Steer
from steerlab.server import ServerConfig, create_app
from steerlab.service.resolve import ArtifactStore
from tests.helpers import KEY, PAIRS, Live, build_tokenizer, hook_count, make_tiny, wait_until

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """A tiny llama with a chat template, three artifacts on disk, and a live server over them."""
    from steerlab.methods.lm_steer import train
    tok = build_tokenizer()
    tok.chat_template = CHATML
    lm = make_tiny("llama", tok)
    root = tmp_path_factory.mktemp("arts")
    vec = steerlab.extract(lm, PAIRS, layers=[1, 2, 3])
    vec.save(root / "vec")
    train(lm, PAIRS, rank=4, n_steps=2, batch_size=4, progress=False).save(root / "ls")
    from steerlab.methods.steerlm import train_sft
    from tests.helpers import EXAMPLES

    train_sft(lm, EXAMPLES, r=4, lora_alpha=8, n_steps=3, batch_size=2, max_length=120, lr=5e-2, chat=False,
              progress=False).save(root / "sl")
    randoms = per_row_vectors(lm, vec, 8)
    named = {"vec": root / "vec", "ls": root / "ls", "sl": root / "sl"}
    for i, st in enumerate(randoms):
        st.artifact.save(root / f"r{i}")
        named[f"r{i}"] = root / f"r{i}"
    store = ArtifactStore(named, allow_paths=False, shipped=False)
    config = ServerConfig(api_key=KEY, max_batch=8, max_tokens=32, max_prompt_tokens=90, max_body_bytes=20_000)
    live = Live(create_app(lm, config=config, store=store))
    try:
        yield {"lm": lm, "live": live, "root": root, "store": store, "randoms": randoms}
    finally:
        live.close()


def _complete(world: dict[str, Any], prompt: str, steering: Any = None, **kw: Any) -> httpx.Response:
    body = {"model": world["lm"].name, "prompt": prompt, "max_tokens": 6, "temperature": 0, **kw}
    if steering is not None:
        body["steering"] = steering
    return world["live"].http.post("/v1/completions", json=body)


def _steers(world: dict[str, Any], steering: list[dict[str, Any]]) -> tuple[Steer, ...]:
    return tuple(Steer(world["store"].get(s["artifact"]), s.get("strength", 1.0),
                       {k: v for k, v in s.items() if k not in ("artifact", "strength")}) for s in steering)


def _spec(i: int) -> dict[str, Any]:
    """32 different steering specs: random vectors at different layers/positions, LM-Steer values,
    compositions, SteerLM attributes, and unsteered."""
    kind = i % 5
    if kind == 4:
        return {"steering": [{"artifact": "sl", "strength": 1.0}],
                "attributes": {"humor": i % 5, "toxicity": (i // 5) % 5}}
    return {"steering": _vector_spec(i)}


def _vector_spec(i: int) -> list[dict[str, Any]] | None:
    kind = i % 4
    if kind == 0:
        return None
    if kind == 1:
        return [{"artifact": f"r{i % 8}", "strength": float(i % 5) + 1.0}]
    if kind == 2:
        return [{"artifact": "ls", "strength": float(i % 7) - 3.0}]
    return [{"artifact": "vec", "strength": 2.0, "layers": [1 + i % 3]}, {"artifact": "ls", "strength": 1.0}]


def test_completion_equals_generate_with_the_same_steering(world) -> None:
    lm = world["lm"]
    spec = [{"artifact": "vec", "strength": 4.0, "layers": [2]}, {"artifact": "ls", "strength": 2.0}]
    r = _complete(world, "The movie was", spec)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["object"] == "text_completion" and doc["choices"][0]["finish_reason"] in ("stop", "length")
    want = steerlab.generate(lm, ["The movie was"], _steers(world, spec), max_new_tokens=6, progress=False)[0]
    assert doc["choices"][0]["text"] == want
    assert doc["usage"]["completion_tokens"] >= 1 and doc["usage"]["prompt_tokens"] > 0
    sl = [{"artifact": "sl", "strength": 1.0}]
    r = _complete(world, "Tell me a joke", sl, attributes={"humor": 4})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] == steerlab.generate(lm, ["Tell me a joke"], _steers(world, sl),
                                                               attributes={"humor": 4}, max_new_tokens=6,
                                                               progress=False)[0]
    plain = _complete(world, "The movie was", None).json()["choices"][0]["text"]
    assert plain == steerlab.generate(lm, ["The movie was"], max_new_tokens=6, progress=False)[0]


def _wait_idle(engine: Any) -> None:
    wait_until(lambda: not (engine.stats.batch_rows or engine.stats.queued), 30, "the engine to go idle")


def test_32_concurrent_requests_with_32_specs_each_equal_their_solo_run(world) -> None:
    prompts = [f"{PAIRS[i % 4][i % 2][: 10 + i % 17]}" for i in range(32)]
    solo = []
    for i in range(32):
        r = _complete(world, prompts[i], **_spec(i), max_tokens=4 + i % 5)
        assert r.status_code == 200, r.text
        solo.append(r.json()["choices"][0]["text"])
    engine = world["live"].server.config.app.state.engine
    _wait_idle(engine)
    hooks = hook_count(world["lm"].model)
    with ThreadPoolExecutor(32) as pool:
        got = list(pool.map(lambda i: _complete(world, prompts[i], **_spec(i), max_tokens=4 + i % 5), range(32)))
    assert all(r.status_code == 200 for r in got), [r.text for r in got if r.status_code != 200]
    assert [r.json()["choices"][0]["text"] for r in got] == solo
    assert world["live"].server.config.app.state.engine.stats.max_batch_rows > 4  # they really shared batches
    _wait_idle(engine)
    assert hook_count(world["lm"].model) == hooks


def test_openai_client_completions_chat_and_streaming(world) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=world["live"].url + "/v1", api_key=KEY, max_retries=0)
    lm = world["lm"]
    steer = {"steering": [{"artifact": "vec", "strength": 3.0}]}
    c = client.completions.create(model=lm.name, prompt="The movie was", max_tokens=5, temperature=0,
                                  extra_body=steer)
    streamed = "".join(ch.choices[0].text for ch in client.completions.create(
        model=lm.name, prompt="The movie was", max_tokens=5, temperature=0, stream=True, extra_body=steer))
    assert streamed == c.choices[0].text
    msgs = [{"role": "user", "content": "Tell me about the movie"}]
    chat = client.chat.completions.create(model=lm.name, messages=msgs, max_tokens=5, temperature=0,
                                          extra_body=steer)
    assert chat.choices[0].message.role == "assistant"
    want = steerlab.generate(lm, ["Tell me about the movie"], _steers(world, steer["steering"]), chat=True,
                             max_new_tokens=5, progress=False)[0]
    assert chat.choices[0].message.content == want
    parts = list(client.chat.completions.create(model=lm.name, messages=msgs, max_tokens=5, temperature=0,
                                                stream=True, stream_options={"include_usage": True},
                                                extra_body=steer))
    assert "".join(p.choices[0].delta.content or "" for p in parts if p.choices) == want
    assert parts[-1].usage is not None and parts[-1].usage.completion_tokens >= 1
    assert [m.id for m in client.models.list().data] == [lm.name]
    n = client.completions.create(model=lm.name, prompt="The movie was", max_tokens=4, temperature=1.0, n=3,
                                  seed=5)
    assert len(n.choices) == 3 and [ch.index for ch in n.choices] == [0, 1, 2]


@pytest.mark.parametrize("body,status,match", [
    ({"prompt": "hi", "steering": [{"artifact": "nope"}]}, 400, "unknown artifact 'nope'"),
    ({"prompt": "hi", "steering": [{"artifact": "/etc"}]}, 400, "unknown artifact"),
    ({"prompt": "hi", "steering": [{"artifact": "vec", "strength": "big"}]}, 400, "strength"),
    ({"prompt": "hi", "steering": [{"artifact": "vec", "layer": [1]}]}, 400, "layers"),
    ({"prompt": "hi", "steering": [{"artifact": "vec", "layers": [99]}]}, 400, "layer 99"),
    ({"prompt": "hi", "steering": [{"artifact": "vec", "strength": 1e300}]}, 400, "strength"),
    ({"prompt": "hi", "attributes": {"humor": 3}}, 400, "attributes"),
    ({"prompt": "hi", "temperature": -1}, 400, "temperature"),
    ({"prompt": "hi", "max_tokens": 10_000}, 400, "max_tokens"),
    ({"prompt": "hi", "max_tokens": 0}, 400, "max_tokens"),
    ({"prompt": "hi", "n": 100}, 400, "n must be"),
    ({"prompt": "hi", "bogus": 1}, 400, "unknown field 'bogus'"),
    ({"prompt": 5}, 400, "prompt"),
    ({}, 400, "prompt"),
    ({"prompt": "hi", "logprobs": 2}, 400, "logprobs"),
    ({"prompt": "hi", "model": "gpt-4"}, 404, "does not exist"),
    ({"prompt": "word " * 200}, 400, "tokens"),
])
def test_bad_input_is_a_4xx_in_openai_shape(world, body, status, match) -> None:
    payload = {"model": world["lm"].name, **body}
    r = world["live"].http.post("/v1/completions", json=payload)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert match in err["message"] and err["type"]


def test_transport_errors_auth_and_limits(world) -> None:
    live = world["live"]
    r = live.http.post("/v1/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()
    r = live.http.post("/v1/completions", content=b"x" * 30_000, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    chunks = (b"x" * 1000 for _ in range(30))  # no Content-Length: counted as it arrives
    r = live.http.post("/v1/completions", content=chunks, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    r = httpx.post(live.url + "/v1/completions", json={"model": world["lm"].name, "prompt": "hi"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.get(live.url + "/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert httpx.get(live.url + "/metrics").status_code == 401  # traffic figures need the key
    r = live.http.get("/metrics")
    assert r.status_code == 200 and "steerlab_queue_depth" in r.text and "steerlab_request_seconds" in r.text
    r = live.http.post("/v1/chat/completions", json={"model": world["lm"].name, "messages": []})
    assert r.status_code == 400
    r = live.http.post("/v1/chat/completions", json={"model": world["lm"].name,
                                                      "messages": [{"role": "wizard", "content": "hi"}]})
    assert r.status_code == 400


def test_artifacts_listed_and_managed_by_admin_calls(world, tmp_path: Path) -> None:
    live = world["live"]
    names = [a["id"] for a in live.http.get("/v1/steering/artifacts").json()["data"]]
    assert {"vec", "ls"} <= set(names)
    doc = {a["id"]: a for a in live.http.get("/v1/steering/artifacts").json()["data"]}
    assert doc["vec"]["method"] == "vectors" and doc["vec"]["controls"]["strength"] is True
    r = live.http.post("/v1/steering/artifacts", json={"name": "vec2", "path": str(world["root"] / "vec")})
    assert r.status_code == 201, r.text
    assert _complete(world, "The movie was", [{"artifact": "vec2", "strength": 2.0}]).status_code == 200
    assert live.http.post("/v1/steering/artifacts", json={"name": "vec2", "path": str(world["root"] / "vec")}
                          ).status_code == 409
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "steer_config.json").write_text("{}")
    (bad / "payload.pkl").write_bytes(b"\x80")
    r = live.http.post("/v1/steering/artifacts", json={"name": "bad", "path": str(bad)})
    assert r.status_code == 400 and "only JSON and safetensors" in r.json()["error"]["message"]
    r = httpx.post(live.url + "/v1/steering/artifacts", json={"name": "x", "path": str(bad)})
    assert r.status_code == 401
    assert live.http.delete("/v1/steering/artifacts/vec2").status_code == 200
    assert live.http.delete("/v1/steering/artifacts/vec2").status_code == 404
    r = _complete(world, "The movie was", [{"artifact": "vec2"}])
    assert r.status_code == 400 and "unknown artifact" in r.json()["error"]["message"]


def test_explain_scores_the_tokens_an_lm_steer_explains(world) -> None:
    from steerlab.methods.lm_steer.interpret import evidence

    live = world["live"]
    r = live.http.post("/v1/steering/explain",
                       json={"steer": {"artifact": "ls", "strength": 4}, "text": "The movie was"})
    assert r.status_code == 200, r.text
    doc = r.json()
    ev = evidence(world["lm"], world["store"].get("ls"), "The movie was", value=4)
    assert doc["tokens"] == ev.tokens and doc["scores"] == pytest.approx(ev.scores, abs=1e-4)
    r = live.http.post("/v1/steering/explain", json={"steer": {"artifact": "vec"}, "text": "The movie was"})
    assert r.status_code == 400 and "does not explain" in r.json()["error"]["message"]
    assert live.http.get("/v1/steering/artifacts").json()["data"][0]["controls"]["explain"] in (True, False)


def test_default_steering_applies_unless_the_request_sets_its_own(world) -> None:
    from steerlab.server.config import parse_default_steer

    lm = world["lm"]
    config = ServerConfig(default_steering=parse_default_steer(['{"artifact": "vec", "strength": 5, "layers": [2]}']))
    live = Live(create_app(lm, config=config, store=world["store"]))
    try:
        body = {"model": lm.name, "prompt": "The movie was", "max_tokens": 6, "temperature": 0}
        default = live.http.post("/v1/completions", json=body).json()["choices"][0]["text"]
        off = live.http.post("/v1/completions", json={**body, "steering": None}).json()["choices"][0]["text"]
    finally:
        live.close()
    steered = steerlab.generate(lm, ["The movie was"], _steers(world, [{"artifact": "vec", "strength": 5,
                                                                        "layers": [2]}]),
                                max_new_tokens=6, progress=False)[0]
    assert default == steered
    assert off == steerlab.generate(lm, ["The movie was"], max_new_tokens=6, progress=False)[0]


def test_a_client_that_goes_away_cancels_its_rows(world) -> None:
    lm, engine = world["lm"], world["live"].server.config.app.state.engine
    slow = lm.model.register_forward_pre_hook(lambda *a: time.sleep(0.03))  # ~30 ms a step
    try:
        _wait_idle(engine)
        before, tokens = engine.stats.jobs_cancelled, engine.stats.tokens
        body = {"model": lm.name, "prompt": "The movie was", "max_tokens": 32, "temperature": 0, "stream": True,
                "stop": ["never appears in this text"]}
        with world["live"].http.stream("POST", "/v1/completions", json=body) as r:
            next(r.iter_lines())  # the first chunk, then hang up
        _wait_idle(engine)
        assert engine.stats.jobs_cancelled == before + 1
        assert engine.stats.tokens - tokens < 32
    finally:
        slow.remove()


def test_sse_stream_ends_with_done(world) -> None:
    body = {"model": world["lm"].name, "prompt": "The movie was", "max_tokens": 4, "temperature": 0,
            "stream": True}
    with world["live"].http.stream("POST", "/v1/completions", json=body) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    docs = [json.loads(line[6:]) for line in lines[:-1]]
    assert docs[-1]["choices"][0]["finish_reason"] in ("stop", "length")


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
def test_console_slider_changes_the_steered_pane_only(world) -> None:
    """Headless Chromium (Debian's, driven by Playwright) loads the console, waits for both panes,
    moves the 'vec' strength slider; the steered pane changes and the base pane does not."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "the browser test needs Debian's chromium (make browser)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()
            logs: list[str] = []
            page.on("console", lambda m: logs.append(m.text))
            page.on("pageerror", lambda e: logs.append(str(e)))
            page.add_init_script(f"localStorage.setItem('steerlab-key', '{KEY}')")
            page.goto(world["live"].url + "/")
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            try:
                page.wait_for_function("document.getElementById('base').dataset.done && "
                                       "document.getElementById('steered').dataset.done", timeout=30_000)
            except Exception:
                raise AssertionError(f"{logs} {page.inner_text('body')[:2000]}") from None
            base = page.inner_text("#base")
            before = page.inner_text("#steered")
            stamp = page.get_attribute("#steered", "data-done")
            assert base == before  # nothing is steered yet
            page.eval_on_selector("#strength-vec", "el => { el.value = el.max; "
                                                   "el.dispatchEvent(new Event('input', {bubbles: true})); }")
            page.wait_for_function(f"document.getElementById('steered').dataset.done !== '{stamp}'",
                                   timeout=30_000)
            after = page.inner_text("#steered")
            assert after != before and not page.get_attribute("#steered", "class")
            assert page.inner_text("#base") == base
            assert '"artifact": "vec"' in page.inner_text("#curl").replace('":"', '": "')
            stamp = page.get_attribute("#steered", "data-done")
            page.uncheck("#on-vec")  # LM-Steer alone now
            page.eval_on_selector("#strength-ls", "el => { el.value = 4; "
                                                  "el.dispatchEvent(new Event('input', {bubbles: true})); }")
            page.wait_for_function(f"document.getElementById('steered').dataset.done !== '{stamp}'",
                                   timeout=30_000)
            try:
                page.wait_for_selector("#explain span", timeout=30_000)  # LM-Steer highlights the steered text
            except Exception:
                raise AssertionError(f"{logs} explain: {page.inner_text('#explain')!r} "
                                     f"steered: {page.inner_text('#steered')!r}") from None
            assert page.inner_text("#base") == base
        finally:
            browser.close()


@pytest.mark.slow
def test_schema_fuzzing_finds_no_5xx(world) -> None:
    """Schemathesis generates requests from our OpenAPI schema; none may get a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(world["live"].url + "/openapi.json")
    failures: list[str] = []
    calls: dict[str, int] = {}
    for op in schema.get_all_operations():
        operation = op.ok()
        if operation.path.startswith("/v1/steering/artifacts") and operation.method.upper() != "GET":
            continue  # admin calls load files from the server's disk; covered above

        @settings(max_examples=25, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            r = case.call(base_url=world["live"].url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
            calls[case.path] = calls.get(case.path, 0) + 1
            if r.status_code >= 500:
                failures.append(f"{case.method} {case.path} {case.body!r} -> {r.status_code} {r.text[:200]}")

        check()
    assert not failures, failures[:5]
    assert calls.get("/v1/completions", 0) >= 20 and calls.get("/v1/chat/completions", 0) >= 20, calls


def test_a_full_queue_is_a_429_and_a_slow_request_a_408(world) -> None:
    lm = world["lm"]
    slow = lm.model.register_forward_pre_hook(lambda *a: time.sleep(0.03))  # ~30 ms a step
    live = Live(create_app(lm, config=ServerConfig(max_batch=1, max_queue=1, request_timeout=0.5),
                           store=world["store"]))
    try:
        body = {"model": lm.name, "prompt": "The movie was", "max_tokens": 30, "temperature": 0,
                "stop": ["never appears in this text"]}
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda _: live.http.post("/v1/completions", json=body), range(4)))
        codes = sorted(r.status_code for r in got)
        assert 429 in codes, codes
        full = next(r for r in got if r.status_code == 429)
        assert full.headers["retry-after"] == "1" and full.json()["error"]["type"] == "rate_limit_error"
        assert 408 in codes and all(c in (200, 408, 429) for c in codes), codes
    finally:
        live.close()
        slow.remove()
