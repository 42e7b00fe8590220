"""The continuous-batching engine on tiny models: every job equals its solo run whatever joins or
leaves the batch around it, the steering never leaks between rows, failures stay with their job."""

from __future__ import annotations

import threading

import pytest
import torch

import steerlab
from steerlab.bench import per_row_vectors
from steerlab.core.steerer import Steer
from steerlab.errors import SteerlabError
from steerlab.generation.decoding import Decoding
from steerlab.generation.engine import Engine, Job, QueueFull
from tests.helpers import PAIRS, hook_count, wait_until

PROMPTS = ["The movie was", "hey send me the report asap and also the other thing", "A quick brown fox",
           "I walked into the room and sat down. Then", "Numbers like", "The weather this morning was cold"]




def _jobs(lm, n: int) -> list[Job]:
    """``n`` jobs with different prompts, lengths and steering (vectors at different layers, position
    rules and strengths, LM-Steer, both composed, unsteered)."""
    from steerlab.methods.lm_steer import train

    vec = steerlab.extract(lm, PAIRS, layers=[1, 2, 3])
    ls = train(lm, PAIRS, rank=4, n_steps=2, batch_size=4, progress=False)
    rows = per_row_vectors(lm, vec, n)
    jobs = []
    for i in range(n):
        kind = i % 4
        steering: tuple[Steer, ...] = ()
        if kind == 1:
            steering = (rows[i],)
        elif kind == 2:
            steering = (Steer(ls, float(i % 5) - 2.0),)
        elif kind == 3:
            steering = (rows[i], Steer(ls, 1.5))
        jobs.append(Job(PROMPTS[i % len(PROMPTS)], steering, decoding=Decoding(max_new_tokens=4 + (i * 3) % 9)))
    return jobs


def _solo(lm, job: Job) -> str:
    engine = Engine(lm, max_batch=2).start()
    try:
        return engine.submit(job).result(timeout=60)[0]
    finally:
        engine.stop()


def test_solo_job_equals_generate(tiny_llama) -> None:
    for job in _jobs(tiny_llama, 8):
        want = steerlab.generate(tiny_llama, [job.text], job.steering or None, decoding=job.decoding,
                                 progress=False)[0]
        assert _solo(tiny_llama, job) == want


def test_jobs_joining_and_leaving_equal_their_solo_runs(tiny_llama) -> None:
    jobs = _jobs(tiny_llama, 16)
    solo = [_solo(tiny_llama, j) for j in jobs]
    hooks = hook_count(tiny_llama.model)
    engine = Engine(tiny_llama, max_batch=6).start()  # fewer rows than jobs: they queue, join, leave
    try:
        streams = []
        for i, job in enumerate(jobs):
            streams.append(engine.submit(job))
            if i % 5 == 4:  # later jobs join a batch already decoding
                wait_until(lambda: engine.stats.batch_rows > 0, 60, "a batch to decode")
        got = [s.result(timeout=120)[0] for s in streams]
    finally:
        engine.stop()
    assert got == solo
    assert hook_count(tiny_llama.model) == hooks
    assert engine.stats.prefills > 1  # rows really joined a running batch


def test_guidance_and_seeded_sampling_do_not_depend_on_the_batch(tiny_llama) -> None:
    vec = steerlab.extract(tiny_llama, PAIRS, layers=[2])
    steer = (Steer(vec, 3.0),)
    guided = Job("The movie was", steer, guidance=2.0, decoding=Decoding(max_new_tokens=6))
    sampled = Job("A quick brown fox", steer, decoding=Decoding(max_new_tokens=6, temperature=0.9, top_p=0.9, seed=7))
    want = [_solo(tiny_llama, guided), _solo(tiny_llama, sampled)]
    assert want[0] == steerlab.generate(tiny_llama, ["The movie was"], steer, max_new_tokens=6, guidance=2.0,
                                        progress=False)[0]
    engine = Engine(tiny_llama, max_batch=8).start()
    try:
        noise = [engine.submit(j) for j in _jobs(tiny_llama, 5)]
        got = [engine.submit(guided), engine.submit(sampled)]
        texts = [s.result(timeout=60)[0] for s in got]
        for s in noise:
            s.result(timeout=60)
    finally:
        engine.stop()
    assert texts == want


def test_stop_strings_cut_and_finish_reasons(tiny_llama) -> None:
    job = Job("The movie was", decoding=Decoding(max_new_tokens=12))
    full = _solo(tiny_llama, job)
    assert len(full) > 3
    stop = full[2:4]
    engine = Engine(tiny_llama).start()
    try:
        stopping = Job("The movie was", decoding=Decoding(max_new_tokens=12, stop=[stop]))
        text, done = engine.submit(stopping).result(timeout=60)
        assert done.finish_reason == "stop" and text == full[: full.find(stop)]
        text, done = engine.submit(Job("The movie was", decoding=Decoding(max_new_tokens=3))).result(timeout=60)
        assert done.finish_reason == "length" and done.completion_tokens == 3 and done.prompt_tokens > 0
    finally:
        engine.stop()


def test_a_bad_job_fails_alone_and_the_engine_keeps_serving(tiny_llama) -> None:
    vec = steerlab.extract(tiny_llama, PAIRS, layers=[2])
    engine = Engine(tiny_llama, max_batch=4).start()
    try:
        good = engine.submit(Job("The movie was", decoding=Decoding(max_new_tokens=8)))
        with pytest.raises(SteerlabError, match="layer 9"):  # refused at once, before it queues
            engine.submit(Job("The movie was", (Steer(vec, 1.0, {"layers": [9]}),),
                              decoding=Decoding(max_new_tokens=4)))
        empty = engine.submit(Job("", add_special_tokens=False, decoding=Decoding(max_new_tokens=4)))
        with pytest.raises(SteerlabError, match="no tokens"):
            empty.result(timeout=60)
        assert good.result(timeout=60)[1].finish_reason in ("stop", "length")
        again = engine.submit(Job("again", decoding=Decoding(max_new_tokens=2)))
        assert again.result(timeout=60)[1].completion_tokens >= 1
        assert engine.alive
    finally:
        engine.stop()


def test_cancel_and_a_full_queue(tiny_llama) -> None:
    engine = Engine(tiny_llama, max_batch=1, max_queue=2)
    a = engine.submit(Job("The movie was", decoding=Decoding(max_new_tokens=50, ignore_eos=True)))
    b = engine.submit(Job("The movie was", decoding=Decoding(max_new_tokens=2)))
    with pytest.raises(QueueFull):
        engine.submit(Job("x", decoding=Decoding(max_new_tokens=2)))
    b.cancel()
    engine.start()
    try:
        first = next(a.events(timeout=60))
        assert first.kind == "token"
        a.cancel()
        assert a.result(timeout=60)[1].finish_reason == "cancelled"
        assert b.result(timeout=60)[1].finish_reason == "cancelled"
    finally:
        engine.stop()


def test_the_engine_owns_the_model_only_from_its_thread(tiny_llama) -> None:
    """A caller's own generate on the shared model, while the engine holds hooks, is unsteered."""
    vec = steerlab.extract(tiny_llama, PAIRS, layers=[2])
    plain = steerlab.generate(tiny_llama, ["The movie was"], max_new_tokens=8, progress=False)
    engine = Engine(tiny_llama).start()
    try:
        stream = engine.submit(Job("The movie was", (Steer(vec, 8.0),),
                                   decoding=Decoding(max_new_tokens=40, ignore_eos=True)))
        outs: list[str] = []
        t = threading.Thread(target=lambda: outs.extend(
            steerlab.generate(tiny_llama, ["The movie was"], max_new_tokens=8, progress=False)))
        t.start()
        t.join(60)
        stream.result(timeout=60)
    finally:
        engine.stop()
    assert outs == plain
    assert torch.is_grad_enabled()


def test_a_short_job_gets_its_first_token_within_two_steps_of_arriving(tiny_llama) -> None:
    engine = Engine(tiny_llama, max_batch=8).start()
    try:
        long = [engine.submit(Job(p, decoding=Decoding(max_new_tokens=100, ignore_eos=True))) for p in PROMPTS]
        for s in long:
            next(s.events(timeout=60))  # every long job is decoding
        seen: list[tuple[int, bool]] = []
        start = engine.stats.steps
        short = engine.submit(Job("A quick brown fox", decoding=Decoding(max_new_tokens=3)),
                              on_event=lambda ev: seen.append((engine.stats.steps, any(
                                  s.finished.is_set() for s in long))))
        wait_until(short.finished.is_set, 60, "the short job")
        first_step, long_done = seen[0]
        assert first_step - start <= 2 and not long_done, (start, seen)
        for s in long:
            s.cancel()
    finally:
        engine.stop()


def test_a_failing_prefill_fails_its_jobs_and_spares_the_running_batch(tiny_llama) -> None:
    engine = Engine(tiny_llama, max_batch=4).start()
    armed = {"on": False}

    def boom(module, args, kwargs):  # fails prefills (several tokens) once armed
        ids = kwargs.get("input_ids")
        if armed["on"] and ids is not None and ids.shape[1] > 1:
            raise RuntimeError("boom")

    hook = tiny_llama.model.register_forward_pre_hook(boom, with_kwargs=True)
    try:
        running = engine.submit(Job("The movie was", decoding=Decoding(max_new_tokens=40, ignore_eos=True)))
        next(running.events(timeout=60))
        armed["on"] = True
        failing = engine.submit(Job("A quick brown fox", decoding=Decoding(max_new_tokens=3)))
        with pytest.raises(RuntimeError, match="boom"):
            failing.result(timeout=60)
        armed["on"] = False
        assert running.result(timeout=60)[1].completion_tokens == 40  # the running row carried on
        again = engine.submit(Job("again", decoding=Decoding(max_new_tokens=2)))
        assert again.result(timeout=60)[1].completion_tokens >= 1
    finally:
        hook.remove()
        engine.stop()
