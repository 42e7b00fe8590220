"""One request never harms the others, and nothing the server is sent makes it fail silently or
with a 500: seeds, stop strings, invalid text, headers, auth, limits, admin paths, shutdown and
start-up. Each class of fault has a test here, on a tiny model behind a live uvicorn server."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import steerlab
from steerlab.errors import SteerlabError
from steerlab.generation.decoding import Decoding
from steerlab.server import ServerConfig, create_app
from steerlab.service.resolve import ArtifactStore
from tests.helpers import KEY, PAIRS, Live, wait_until

SEED_MAX = 2**63 - 1


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: Any) -> Iterator[dict[str, Any]]:
    from tests.helpers import make_tiny

    lm = make_tiny("llama", tiny_tokenizer)
    root = tmp_path_factory.mktemp("arts")
    steerlab.extract(lm, PAIRS, layers=[1, 2]).save(root / "vec")
    store = ArtifactStore({"vec": root / "vec"}, allow_paths=False)  # with the shipped names, never loaded here
    config = ServerConfig(api_key=KEY, max_batch=8, max_queue=12, max_tokens=16, max_prompt_tokens=60,
                          max_prompts=4)
    app = create_app(lm, config=config, store=store)
    live = Live(app)
    try:
        yield {"lm": lm, "live": live, "app": app, "root": root, "store": store}
    finally:
        live.close()


def _post(srv: dict[str, Any], **body: Any) -> httpx.Response:
    doc = {"model": srv["lm"].name, "prompt": "The movie was", "max_tokens": 6, "temperature": 0, **body}
    return srv["live"].http.post("/v1/completions", json=doc)


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


# -- a bad request fails alone ------------------------------------------------------------------

@pytest.mark.parametrize("seed", [2**64, 10**30, -(2**63) - 1, 2**63])
def test_a_seed_out_of_range_is_a_400_naming_seed(srv, seed: int) -> None:
    err = _error(_post(srv, seed=seed, temperature=0.7), 400)
    assert err["param"] == "seed"


def test_the_largest_seed_with_several_choices_works(srv) -> None:
    r = _post(srv, seed=SEED_MAX, temperature=0.7, n=2)
    assert r.status_code == 200 and len(r.json()["choices"]) == 2


def test_bad_requests_mixed_into_good_ones_leave_the_good_ones_untouched(srv) -> None:
    """Good and bad requests sent together, many times over: every good one answers exactly what it
    answers alone, every bad one is a 4xx."""
    goods = [{"prompt": p, "steering": s, "temperature": t, "seed": 3}
             for p, s, t in [("The movie was", None, 0), ("hey send me", [{"artifact": "vec", "strength": 3}], 0),
                             ("I walked into", [{"artifact": "vec", "strength": -2, "layers": [1]}], 0.8),
                             ("A quick brown", None, 0.8)]]
    bads = [{"seed": 2**64, "temperature": 0.7}, {"seed": 10**30}, {"prompt": "abc \ud800"},
            {"stop": "x" * 5000}, {"stop": ["a", "b", "c", "d", "e"]}, {"n": 4, "prompt": ["a", "b", "c", "d"]},
            {"steering": [{"artifact": "vec", "layers": [99]}]}, {"max_tokens": 0},
            {"steering": [{"artifact": "vec", "strength": float("inf")}]}]
    solo = [_post(srv, **g).json()["choices"][0]["text"] for g in goods]
    for _ in range(3):
        mixed = [("good", i, g) for i, g in enumerate(goods)] + [("bad", i, b) for i, b in enumerate(bads)]
        with ThreadPoolExecutor(len(mixed)) as pool:
            got = list(pool.map(lambda item: (item, _raw_post(srv, item[2])), mixed))
        for (kind, i, _), r in got:
            if kind == "good":
                assert r.status_code == 200, r.text
                assert r.json()["choices"][0]["text"] == solo[i]
            else:
                assert 400 <= r.status_code < 500, (bads[i], r.status_code, r.text)


def _raw_post(srv: dict[str, Any], body: dict[str, Any]) -> httpx.Response:
    doc = {"model": srv["lm"].name, "prompt": "The movie was", "max_tokens": 6, "temperature": 0, **body}
    raw = json.dumps(doc, allow_nan=True).encode()  # lone surrogates and inf travel as JSON spells them
    return srv["live"].http.post("/v1/completions", content=raw, headers={"Content-Type": "application/json"})


def test_engine_fails_only_the_job_that_raised(srv) -> None:
    """Jobs admitted in one step: one whose text cannot be tokenised and one whose soft prompt
    breaks the batched prefill fail; the others equal their solo runs."""
    import torch

    from steerlab.generation.engine import Engine, Job

    lm = srv["lm"]
    prompts = ["The movie was", "hey send me the report", "I walked into the room", "Numbers like"]
    want = steerlab.generate(lm, prompts, max_new_tokens=5, progress=False)
    engine = Engine(lm, max_batch=8)
    good = [engine.submit(Job(p, decoding=Decoding(max_new_tokens=5))) for p in prompts[:2]]
    bad_text = engine.submit(Job("abc \ud800", decoding=Decoding(max_new_tokens=5)))
    bad_soft = engine.submit(Job("A quick", soft_prompt=torch.zeros(2, lm.hidden_size + 1),
                                 decoding=Decoding(max_new_tokens=5)))
    good += [engine.submit(Job(p, decoding=Decoding(max_new_tokens=5))) for p in prompts[2:]]
    engine.start()  # all six are waiting: one admission step takes them together
    try:
        assert [s.result(timeout=60)[0] for s in good] == want
        with pytest.raises(TypeError):  # the tokenizer's own error, for this job alone
            bad_text.result(timeout=60)
        with pytest.raises(SteerlabError, match="soft prompt"):
            bad_soft.result(timeout=60)
        assert engine.stats.prefills >= 2  # the batched prefill failed, the jobs were retried alone
    finally:
        engine.stop()


def test_job_refuses_a_seed_torch_cannot_take() -> None:
    from steerlab.generation.jobs import Job

    with pytest.raises(SteerlabError, match="seed"):
        Job("hi", decoding=Decoding(seed=2**64))
    Job("hi", decoding=Decoding(seed=2**64 - 1))
    Job("hi", decoding=Decoding(seed=-(2**63)))


# -- stop strings -------------------------------------------------------------------------------

def test_stop_sequences_are_capped_in_count_and_length(srv) -> None:
    assert _error(_post(srv, stop=["a", "b", "c", "d", "e"]), 400)["param"] == "stop"
    assert _error(_post(srv, stop="x" * 900_000), 400)["param"] == "stop"
    assert _error(_post(srv, stop="x" * 257), 400)["param"] == "stop"
    assert _post(srv, stop=["x" * 256, "a", "b", "c"]).status_code == 200


def test_stop_scanner_agrees_with_a_plain_search() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from steerlab.generation.stops import StopScanner

    alphabet = st.text(alphabet="abc", max_size=12)

    @settings(max_examples=300, deadline=None, database=None, derandomize=True)
    @given(text=st.text(alphabet="abc", max_size=40), stops=st.lists(alphabet.filter(bool), min_size=1, max_size=4),
           cuts=st.lists(st.integers(0, 40), max_size=6))
    def check(text: str, stops: list[str], cuts: list[int]) -> None:
        scanner = StopScanner(stops)
        found = -1
        for end in sorted({*(min(c, len(text)) for c in cuts), len(text)}):  # the text grows in pieces
            found = scanner.feed(text[:end])
            if found >= 0:
                break
        ends = [(text.find(s) + len(s), text.find(s)) for s in stops if s in text]
        want = min(ends, key=lambda e: (e[0], e[1]))[1] if ends else -1
        assert found == want
        if found < 0:  # held: the longest end of the text that starts a stop string
            held = max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
            assert scanner.held == held

    check()


# -- text and headers ---------------------------------------------------------------------------

@pytest.mark.parametrize("path,body,param", [
    ("/v1/completions", {"prompt": "abc \ud800"}, "prompt"),
    ("/v1/completions", {"prompt": ["ok", "abc \udfff"]}, "prompt"),
    ("/v1/completions", {"prompt": "ok", "stop": "\ud800"}, "stop"),
    ("/v1/completions", {"prompt": "ok", "steering": [{"artifact": "vec", "\ud800": 1}]}, "steering"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi \ud800"}]}, "messages"),
])
def test_invalid_unicode_is_a_400_in_openai_shape(srv, path: str, body: dict[str, Any], param: str) -> None:
    raw = json.dumps({"model": srv["lm"].name, **body}).encode()
    r = srv["live"].http.post(path, content=raw, headers={"Content-Type": "application/json"})
    err = _error(r, 400)
    assert err["param"] == param and "Unicode" in err["message"]


def test_a_non_ascii_authorization_header_is_a_401(srv) -> None:
    for token in ("Bearer clé".encode(), b"Bearer \xff\xfe", "Bearer 鍵".encode()):
        r = httpx.post(srv["live"].url + "/v1/completions", headers={"Authorization": token},
                       json={"model": srv["lm"].name, "prompt": "hi"})
        assert _error(r, 401)["code"] == "invalid_api_key"


# -- auth and limits ----------------------------------------------------------------------------

def test_an_empty_api_key_is_refused_at_start() -> None:
    for key in ("", "  "):
        with pytest.raises(SteerlabError, match="empty"):
            ServerConfig(api_key=key)


def test_metrics_need_the_key_unless_public(srv, tiny_llama: Any) -> None:
    live = srv["live"]
    assert _error(httpx.get(live.url + "/metrics"), 401)["code"] == "invalid_api_key"
    assert live.http.get("/metrics").status_code == 200
    public = Live(create_app(tiny_llama, config=ServerConfig(api_key=KEY, public_metrics=True),
                             store=ArtifactStore(shipped=False)))
    try:
        assert httpx.get(public.url + "/metrics").status_code == 200
    finally:
        public.close()


def test_unknown_paths_share_one_metrics_series(srv) -> None:
    live = srv["live"]
    series = live.http.get("/metrics").text.count("steerlab_requests_total{")
    for i in range(60):
        live.http.get(f"/v1/made-up-{i}")
        live.http.post(f"/v1/other/{i}", json={})
    text = live.http.get("/metrics").text
    assert "made-up" not in text and 'path="unmatched"' in text
    assert text.count("steerlab_requests_total{") <= series + 3  # 404 and 405 under one label, + /metrics


def test_zero_completion_tokens_prompt_and_choice_caps_are_400s(srv) -> None:
    lm = srv["lm"]
    r = srv["live"].http.post("/v1/chat/completions", json={"model": lm.name, "max_completion_tokens": 0,
                                                            "messages": [{"role": "user", "content": "hi"}]})
    assert _error(r, 400)["param"] == "max_tokens"
    assert _error(_post(srv, prompt=["a"] * 5), 400)["param"] == "prompt"  # max_prompts 4
    assert _error(_post(srv, prompt=["a", "b", "c", "d"], n=4), 400)["param"] == "n"  # 16 > max_queue 12
    assert _post(srv, prompt=["a", "b", "c"], n=4).status_code == 200  # 12 fit


# -- admin and lifecycle ------------------------------------------------------------------------

def test_admin_paths_are_checked_without_revealing_the_disk(srv, tmp_path: Path) -> None:
    live = srv["live"]
    for path in ("a" * 300, "/" + "b" * 300 + "/c", "x" * 5000):
        r = live.http.post("/v1/steering/artifacts", json={"name": "long", "path": path})
        assert 400 <= r.status_code < 500 and r.status_code != 404, r.text
    link = tmp_path / "etc"
    link.symlink_to("/etc")
    r = live.http.post("/v1/steering/artifacts", json={"name": "etc", "path": str(link)})
    err = _error(r, 400)
    assert "passwd" not in r.text and "hosts" not in r.text and err["param"] == "path"
    r = live.http.post("/v1/steering/artifacts", json={"name": "etc", "path": "/etc"})
    assert _error(r, 400) and "passwd" not in r.text and "hosts" not in r.text


def test_shipped_artifacts_cannot_be_deleted(srv) -> None:
    r = srv["live"].http.delete("/v1/steering/artifacts/sentiment-vec")
    assert _error(r, 409)["code"] == "conflict"
    assert "sentiment-vec" in [a["id"] for a in srv["live"].http.get("/v1/steering/artifacts").json()["data"]]


def test_stream_errors_carry_the_full_shape_and_shutdown_ends_requests(tiny_llama: Any) -> None:
    """On shutdown, requests still running after the grace period end: a stream with an error
    event in OpenAI's full shape, a plain request with a 503."""
    lm = tiny_llama
    slow = lm.model.register_forward_pre_hook(lambda *a: time.sleep(0.05))
    app = create_app(lm, config=ServerConfig(max_tokens=400, max_prompt_tokens=60), store=ArtifactStore(shipped=False))
    live = Live(app)
    try:
        body = {"model": lm.name, "prompt": "The movie was", "max_tokens": 100, "temperature": 0,
                "stop": ["never appears in this text"]}
        with ThreadPoolExecutor(2) as pool:
            plain = pool.submit(live.http.post, "/v1/completions", json=body)

            def stream() -> list[dict[str, Any]]:
                with live.http.stream("POST", "/v1/completions", json={**body, "stream": True}) as r:
                    return [json.loads(x[6:]) for x in r.iter_lines() if x.startswith("data: {")]

            events = pool.submit(stream)
            wait_until(lambda: app.state.engine.stats.batch_rows >= 2, 30, "both requests to decode")
            app.state.drain.begin(0.3)  # what SIGTERM does (see the next test)
            err = _error(plain.result(timeout=30), 503)
            assert err["code"] == "shutting_down"
            last = events.result(timeout=30)[-1]
            assert set(last["error"]) == {"message", "type", "param", "code"}
            assert last["error"]["code"] == "shutting_down"
    finally:
        live.close()
        slow.remove()


def test_sigterm_starts_the_grace_period() -> None:
    import uvicorn

    from steerlab.server.lifecycle import Drain, graceful_server

    drain = Drain()
    server = graceful_server(uvicorn.Config(lambda *a: None), drain, 12.0)
    assert not drain.started
    server.handle_exit(signal.SIGTERM, None)
    assert drain.started and server.should_exit and not drain.expired
    assert server.config.timeout_graceful_shutdown > 12.0


def test_a_port_in_use_is_reported_before_the_model_loads(monkeypatch, capsys) -> None:
    from steerlab.cli import serve
    from tests.helpers import run

    loaded: list[str] = []
    monkeypatch.setattr(serve, "load", lambda name, *a, **k: loaded.append(name))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run(["serve", "--port", str(port)], capsys)
    assert code != 0 and "in use" in err.lower() and not loaded
    code, _, err = run(["serve", "--api-key", ""], capsys)
    assert code != 0 and "empty" in err and not loaded
