"""``steerlab serve --engine vllm``: steerlab's HTTP API and console over vLLM's engine.

:class:`VllmServingEngine` has the interface the server drives (:class:`~steerlab.generation.engine.Engine`'s
``start`` / ``stop`` / ``alive`` / ``submit`` / ``stats``), so the server does not know which
engine runs: a thread owns vLLM's engine, admits submitted jobs between steps, steps it, and
streams each request's new text to its :class:`~steerlab.generation.jobs.Stream`. A job's
steering is split as :class:`~steerlab.vllm.engine.VllmEngine` splits it (plugin hooks, vLLM
LoRA) and checked in the caller's thread, so a bad steer is the server's usual 400.
"""

from __future__ import annotations

import itertools
import queue
import time
from collections.abc import Callable
from typing import Any

from steerlab.core.apply import prepare
from steerlab.errors import SteerlabError
from steerlab.generation.jobs import EngineStats, EngineThread, Event, Job, QueueFull, Stream
from steerlab.vllm.engine import VllmEngine


class VllmServingEngine(EngineThread):
    """Continuous batching by vLLM behind steerlab's engine interface."""

    thread_name = "steerlab-vllm-engine"

    def __init__(self, engine: VllmEngine, *, max_queue: int = 256) -> None:
        super().__init__()
        self.engine = engine
        self.max_queue = max_queue
        self.stats = EngineStats()
        self._incoming: queue.Queue[tuple[str, Stream, dict[str, Any], Any, Any]] = queue.Queue()
        self._live: dict[str, Stream] = {}
        self._counts: dict[str, int] = {}  # request id -> tokens streamed so far
        self._ids = itertools.count()

    def submit(self, job: Job, on_event: Callable[[Event], None] | None = None) -> Stream:
        """Queue ``job``; steering that cannot run on vLLM or on this model is refused here."""
        from vllm.sampling_params import RequestOutputKind

        from steerlab.vllm.admission import SteeringAdmission

        if self._incoming.qsize() >= self.max_queue:
            raise QueueFull(f"the queue is full ({self.max_queue} waiting); retry later")
        if job.guidance != 1.0:
            raise SteerlabError("classifier-free guidance (guidance != 1) is not available on the vLLM engine")
        if job.soft_prompt is not None:
            raise SteerlabError("soft prompts (DGLM) are not available on the vLLM engine: vLLM 0.32 cannot combine "
                                "prompt embeddings with the LoRA they come with")
        hooked, lora = self.engine.split([prepare(None, st) for st in job.steering])  # parsed once
        params = self.engine.sampling_params(job.decoding, hooked)
        params.output_kind = RequestOutputKind.DELTA
        try:
            SteeringAdmission.validate_params(params)
        except ValueError as e:
            raise SteerlabError(str(e).removeprefix("steering: ")) from None
        ids = self.engine.tokenize(job.text, job.add_special_tokens)
        if not ids:
            raise SteerlabError("a prompt has no tokens: give some text to continue")
        stream = Stream(job, on_event)
        self._incoming.put((f"steerlab-{next(self._ids)}", stream, {"prompt_token_ids": ids}, params, lora))
        self.stats.queued = self._incoming.qsize()
        self._wake.set()
        return stream

    def _run(self) -> None:
        core = self.engine.llm.llm_engine
        while not self._stop.is_set():
            while not self._incoming.empty():
                rid, stream, prompt, params, lora = self._incoming.get()
                try:
                    core.add_request(rid, prompt, params, lora_request=lora)
                except Exception as e:  # noqa: BLE001 - the job fails alone
                    stream._emit(Event("error", error=SteerlabError(str(e))))
                    continue
                self._live[rid] = stream
                self._counts[rid] = 0
            self.stats.queued = self._incoming.qsize()
            gone = [rid for rid, s in self._live.items() if s.cancelled.is_set()]
            if gone:
                core.abort_request(gone)
                for rid in gone:
                    self._counts.pop(rid, None)
                    self._live.pop(rid)._emit(Event("done", finish_reason="cancelled"))
                    self.stats.jobs_cancelled += 1
            if not self._live:
                self._wake.wait(timeout=0.5)
                self._wake.clear()
                continue
            t0 = time.perf_counter()
            try:
                outputs = core.step()
            except Exception as e:  # noqa: BLE001 - fail the step's requests, keep serving
                failed = list(self._live)
                try:  # inside vLLM too, or the next step schedules them again and fails the same way
                    core.abort_request(failed)
                except Exception:  # noqa: BLE001 - already gone inside vLLM: nothing left to abort
                    pass
                for rid in failed:
                    self._live.pop(rid)._emit(Event("error", error=SteerlabError(f"the engine step failed: {e}")))
                    self._counts.pop(rid, None)
                self.stats.jobs_failed += len(failed)
                continue
            self.stats.steps += 1
            self.stats.step_seconds += time.perf_counter() - t0
            self.stats.batch_rows = len(self._live)
            self.stats.max_batch_rows = max(self.stats.max_batch_rows, len(self._live))
            for out in outputs:
                live = self._live.get(out.request_id)
                if live is None:
                    continue
                comp = out.outputs[0]
                if comp.token_ids:
                    self.stats.tokens += len(comp.token_ids)
                    self._counts[out.request_id] += len(comp.token_ids)
                    live._emit(Event("token", text=comp.text, ids=tuple(comp.token_ids)))
                if out.finished:
                    del self._live[out.request_id]
                    self.stats.jobs_done += 1
                    live._emit(Event("done", finish_reason=comp.finish_reason or "stop",
                                       prompt_tokens=len(out.prompt_token_ids or []),
                                       completion_tokens=self._counts.pop(out.request_id, 0)))
        for s in self._live.values():
            s._emit(Event("error", error=SteerlabError("the engine stopped")))
        self._live.clear()
        while not self._incoming.empty():
            self._incoming.get()[1]._emit(Event("error", error=SteerlabError("the engine stopped")))
