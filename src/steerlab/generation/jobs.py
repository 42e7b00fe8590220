"""The serving contract: what a server submits (:class:`Job`), what it gets back (a
:class:`Stream` of :class:`Event` s) and what it drives (:class:`ServingEngine`: steerlab's
continuous-batching :class:`~steerlab.generation.engine.Engine`, or vLLM's engine behind the same
calls), with the thread they run on and the counters they export."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor

from steerlab.core.plan import RowEntry
from steerlab.core.validate import finite
from steerlab.errors import SteerlabError
from steerlab.generation.decoding import Decoding


@dataclass
class Job:
    """One completion: the exact text the model continues and how to decode it (one checked
    :class:`~steerlab.generation.decoding.Decoding`).

    ``text`` is already conditioned (chat template, prompt-steering rewrites:
    :func:`~steerlab.generation.rows.build_rows`); ``steering`` is the row's steering, best
    prepared for the engine's model (the engine prepares plain steers once, at submit). With
    ``guidance != 1``, ``reference_text`` / ``reference_steering`` form the reference row
    (default: the same text unsteered).
    """

    text: str
    steering: tuple[RowEntry, ...] = ()
    decoding: Decoding = Decoding()
    add_special_tokens: bool = True
    guidance: float = 1.0
    reference_text: str | None = None
    reference_steering: tuple[RowEntry, ...] = ()
    soft_prompt: Tensor | None = None  # (k, hidden) before the prompt's tokens (DGLM)
    reference_soft_prompt: Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.decoding, Decoding):
            raise SteerlabError(f"a job's decoding must be a Decoding, got {type(self.decoding).__name__}")
        finite("guidance", self.guidance, max_abs=1e3)


@dataclass
class Event:
    """What a stream receives: ``token`` (new text and ids), then one ``done`` or ``error``."""

    kind: str  # "token" | "done" | "error"
    text: str = ""
    ids: tuple[int, ...] = ()
    finish_reason: str | None = None  # "stop" | "length" | "cancelled" on done
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: Exception | None = None


class Stream:
    """The handle :meth:`Engine.submit` returns. Events go to ``on_event`` if given (called on the
    engine thread: keep it quick and thread-safe), else to a queue read by :meth:`events`."""

    def __init__(self, job: Job, on_event: Callable[[Event], None] | None = None) -> None:
        self.job = job
        self._queue: queue.Queue[Event] = queue.Queue()
        self._on_event = on_event
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self.submitted = time.perf_counter()
        self.first_token_at: float | None = None

    def cancel(self) -> None:
        """Stop generating for this job at the next step boundary (a client went away)."""
        self.cancelled.set()

    def _emit(self, ev: Event) -> None:
        if ev.kind == "token" and self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if ev.kind in ("done", "error"):
            self.finished.set()
        if self._on_event is not None:
            self._on_event(ev)
        else:
            self._queue.put(ev)

    def events(self, timeout: float | None = None) -> Any:
        """Yield events until ``done`` or ``error`` (blocking)."""
        while True:
            ev = self._queue.get(timeout=timeout)
            yield ev
            if ev.kind in ("done", "error"):
                return

    def result(self, timeout: float | None = None) -> tuple[str, Event]:
        """The whole completion and its final event; raises the job's error."""
        text = []
        for ev in self.events(timeout):
            if ev.kind == "token":
                text.append(ev.text)
            elif ev.kind == "error":
                assert ev.error is not None
                raise ev.error
            else:
                return "".join(text), ev
        raise SteerlabError("stream ended without a result")  # pragma: no cover


class QueueFull(SteerlabError):
    """The engine's waiting queue is full; retry later."""


@dataclass
class EngineStats:
    """Counters the server exports as metrics."""

    steps: int = 0
    tokens: int = 0
    prefills: int = 0
    jobs_done: int = 0
    jobs_failed: int = 0
    jobs_cancelled: int = 0
    batch_rows: int = 0
    max_batch_rows: int = 0
    queued: int = 0
    step_seconds: float = 0.0


class ServingEngine(Protocol):
    """What the HTTP server drives: :class:`Engine` here, or vLLM's engine behind the same calls
    (:class:`steerlab.vllm.serving.VllmServingEngine`)."""

    stats: EngineStats

    def start(self) -> Any: ...

    def stop(self) -> None: ...

    @property
    def alive(self) -> bool: ...

    def submit(self, job: Job, on_event: Callable[[Event], None] | None = None) -> Stream: ...


class EngineThread:
    """The thread an engine runs on: :meth:`start` it, :meth:`stop` it (the loop in :meth:`_run`
    watches ``_stop``; ``_wake`` cuts an idle wait short), ask whether it is :attr:`alive`."""

    thread_name = "steerlab-engine"

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> Any:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Finish the step in progress, fail what is left, and end the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
