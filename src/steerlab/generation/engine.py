"""Continuous batching with per-row steering: one thread owns the model, requests join and leave.

The :class:`Engine` is what a server puts behind many concurrent requests. Its thread repeats:

1. **admit** waiting jobs (up to ``max_batch`` model rows): prefill them together as their own
   batch, each row under its own steering, sample each job's first token, and merge their KV cache
   into the running batch (the shorter side is left-padded, so every row keeps its own positions);
2. **decode** one token for every running row, the steering re-installed for the batch's current
   rows whenever membership changed (hooks of one :func:`~steerlab.core.steerer.patch`, per-row
   strengths, the position tracker resumed with each row's padding and prompt length);
3. **retire** rows that finished (EOS, ``max_new_tokens``, a stop string, cancelled by the client
   or failed) and trim padding no row needs.

A short request that arrives while long ones decode gets its first token after its own prefill,
at the next step boundary. Each job samples from its own ``torch.Generator`` (seeded by the job's
seed), so neither greedy nor seeded sampling depends on what else is in the batch: a job's output
equals the same job run alone. Guidance jobs (``guidance != 1``) occupy two model rows (the
conditioned row and its reference, fed the same token) merged by
:func:`~steerlab.generation.guidance.guided_log_probs`.

A failure is contained: a job whose logits turn non-finite fails alone; an exception in a step
fails the jobs of that step and the engine carries on with an empty batch. The model is only ever
touched from the engine thread.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor
from transformers.generation import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from steerlab.core.steerer import Steer, SteeringHandle, check, patch
from steerlab.core.validate import finite, positive_int, seed_value
from steerlab.errors import SteerlabError
from steerlab.generation.decode import eos_ids, with_soft_prompts
from steerlab.generation.guidance import guided_log_probs
from steerlab.generation.stops import StopScanner
from steerlab.models.loading import LoadedModel


@dataclass
class Job:
    """One completion: the exact text the model continues and how to decode it.

    ``text`` is already conditioned (chat template, prompt-steering rewrites); ``steering`` is the
    row's steering. With ``guidance != 1``, ``reference_text`` / ``reference_steering`` form the
    reference row (default: the same text unsteered).
    """

    text: str
    steering: tuple[Steer, ...] = ()
    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: Sequence[str] = ()
    add_special_tokens: bool = True
    ignore_eos: bool = False
    guidance: float = 1.0
    reference_text: str | None = None
    reference_steering: tuple[Steer, ...] = ()
    soft_prompt: Tensor | None = None  # (k, hidden) before the prompt's tokens (DGLM)
    reference_soft_prompt: Tensor | None = None

    def __post_init__(self) -> None:
        positive_int("max_new_tokens", self.max_new_tokens)
        finite("temperature", self.temperature, low=0.0, max_abs=1e4)
        if not 0 < finite("top_p", self.top_p) <= 1:
            raise SteerlabError(f"top_p must be in (0, 1], got {self.top_p!r}")
        positive_int("top_k", self.top_k, minimum=0)
        finite("guidance", self.guidance, max_abs=1e3)
        seed_value("seed", self.seed)
        self.stop = tuple(s for s in self.stop if s)


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
class _Seq:
    """A job in the running batch: its model rows, tokens and text so far."""

    stream: Stream
    gen: torch.Generator
    prompt_tokens: int
    tokens: list[int] = field(default_factory=list)
    sent: str = ""  # text emitted so far
    done: str | None = None  # finish reason once finished
    warpers: LogitsProcessorList | None = None  # sampling warpers, built on the first sampled token
    stops: StopScanner = field(default_factory=lambda: StopScanner(()))  # the job's stop strings, scanned


@dataclass
class _Prepared:
    """A job taken from the queue, ready to prefill: its rows' token ids, steering and soft
    prompts (one per branch: the conditioned row, then the guidance reference), and its state."""

    stream: Stream
    seq: _Seq
    ids: list[list[int]]
    steering: list[tuple[Steer, ...]]
    soft: list[Tensor | None]


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


class Engine(EngineThread):
    """Continuous batching over ``lm`` (see the module docs). ``max_batch``: model rows decoded
    together; ``max_queue``: jobs waiting beyond that before :meth:`submit` raises :class:`QueueFull`.
    """

    def __init__(self, lm: LoadedModel, *, max_batch: int = 32, max_queue: int = 256,
                 allow_mismatch: bool = False) -> None:
        super().__init__()
        self.lm = lm
        self.max_batch = positive_int("max_batch", max_batch)
        self.max_queue = positive_int("max_queue", max_queue)
        self.allow_mismatch = allow_mismatch
        self.stats = EngineStats()
        self._waiting: queue.Queue[Stream] = queue.Queue()
        self._eos = eos_ids(lm)
        self._pad_id = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
        self._seeds = itertools.count(int(time.time() * 1000) % (2**31))
        self._mergeable: bool | None = None  # can rows join a running batch (full-attention cache)?
        self._reset()

    # ----------------------------------------------------------------- public
    def submit(self, job: Job, on_event: Callable[[Event], None] | None = None) -> Stream:
        """Queue ``job``; its events arrive on the returned :class:`Stream`. Steering that cannot
        apply to this model (layers, options, fingerprint) is refused here, in the caller's thread."""
        if self._waiting.qsize() >= self.max_queue:
            raise QueueFull(f"the queue is full ({self.max_queue} waiting); retry later")
        rows = 2 if job.guidance != 1.0 else 1
        check(self.lm, tuple(job.steering), allow_mismatch=self.allow_mismatch, prompts_rewritten=True)
        if rows == 2:
            check(self.lm, tuple(job.reference_steering), allow_mismatch=self.allow_mismatch, prompts_rewritten=True)
        if rows > self.max_batch:
            raise SteerlabError(f"a guidance job needs 2 batch rows; this engine decodes {self.max_batch}")
        stream = Stream(job, on_event)
        self._waiting.put(stream)
        self.stats.queued = self._waiting.qsize()
        self._wake.set()
        return stream

    # ------------------------------------------------------------ the thread
    def _reset(self) -> None:
        """An empty running batch (after start, or after a failed step)."""
        self._seqs: list[_Seq] = []  # jobs in the batch, in row order
        self._rows: list[tuple[_Seq, int]] = []  # model row -> (job, branch 0 cond / 1 reference)
        self._cache: Any = None
        self._mask: Tensor | None = None  # (R, T) 1 on real tokens
        self._pad: Tensor | None = None  # (R,) left padding in the cache
        self._plen: Tensor | None = None  # (R,) prompt tokens
        self._next_pos: Tensor | None = None  # (R,) position id of the next fed token
        self._feed: Tensor | None = None  # (R,) the token each row feeds next
        self._handle: SteeringHandle | None = None
        self._dirty = True  # membership changed since the steering was installed

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._seqs and self._waiting.empty():
                self._wake.wait(timeout=0.5)
                self._wake.clear()
                continue
            t0 = time.perf_counter()
            try:
                with torch.no_grad(), self.lm.lock:
                    self._admit()
                    self._retire()
                    if self._seqs:
                        self._decode_step()
                        self._retire()
            except Exception as exc:  # contain it: fail this batch's jobs, keep serving
                self._fail_all(exc)
            self.stats.steps += 1
            self.stats.step_seconds += time.perf_counter() - t0
            self.stats.batch_rows = len(self._rows)
            self.stats.max_batch_rows = max(self.stats.max_batch_rows, len(self._rows))
            self.stats.queued = self._waiting.qsize()
        self._fail_all(SteerlabError("the engine stopped"))
        while not self._waiting.empty():
            self._waiting.get()._emit(Event("error", error=SteerlabError("the engine stopped")))

    def _fail_all(self, exc: Exception) -> None:
        for seq in self._seqs:
            if seq.done is None:
                self.stats.jobs_failed += 1
                seq.stream._emit(Event("error", error=exc))
        if self._handle is not None:
            self._handle.remove()
        self._reset()

    # ---------------------------------------------------------------- admit
    def _take(self) -> list[Stream]:
        free = self.max_batch - len(self._rows)
        if self._rows and self._mergeable is False:
            return []  # sliding-window caches: a new batch starts when this one is done
        taken: list[Stream] = []
        while free > 0 and not self._waiting.empty():
            stream = self._waiting.queue[0]  # peek: a guidance job waits until 2 rows are free
            need = 2 if stream.job.guidance != 1.0 else 1
            if need > free:
                break
            self._waiting.get()
            if stream.cancelled.is_set():
                stream._emit(Event("done", finish_reason="cancelled"))
                continue
            taken.append(stream)
            free -= need
        return taken

    def _admit(self) -> None:
        """Prefill the jobs taken from the queue. A job whose own preparation fails (its text, its
        seed) fails alone; if the batched prefill fails, each job is prefilled alone so that only
        the one that raised fails and the others go on."""
        ready = [p for p in map(self._prepare, self._take()) if p is not None]
        if not ready:
            return
        try:
            self._prefill(ready)
        except Exception as exc:  # the new jobs' prefill failed; the running batch is untouched
            if len(ready) == 1:
                self._fail_new(ready[0], exc)
                return
            for item in ready:
                if item.stream.first_token_at is not None or item.seq.done is not None:
                    self._fail_new(item, exc)  # it already streamed: a retry would send its first token twice
                    continue
                try:
                    self._prefill([item])
                except Exception as solo:  # noqa: BLE001 - this job alone
                    self._fail_new(item, solo)

    def _fail_new(self, item: _Prepared, exc: Exception) -> None:
        if not item.stream.finished.is_set():
            self.stats.jobs_failed += 1
            item.stream._emit(Event("error", error=exc))

    def _prepare(self, stream: Stream) -> _Prepared | None:
        """One job's model rows (token ids, steering, soft prompt per branch) and its generator;
        None (the job has failed alone) if any of it cannot be built."""
        job, tok = stream.job, self.lm.tokenizer
        try:
            texts = [job.text] + ([job.reference_text if job.reference_text is not None else job.text]
                                  if job.guidance != 1.0 else [])
            ids = [list(tok(t, add_special_tokens=job.add_special_tokens)["input_ids"]) for t in texts]
            if not all(ids):
                raise SteerlabError("a prompt has no tokens: give some text to continue")
            seed = job.seed if job.seed is not None else next(self._seeds)
            gen = torch.Generator(device=self.lm.device).manual_seed(int(seed))
        except Exception as exc:  # noqa: BLE001 - the job fails alone
            self.stats.jobs_failed += 1
            stream._emit(Event("error", error=exc))
            return None
        steering = [tuple(job.steering), tuple(job.reference_steering)][:len(ids)]
        soft = [job.soft_prompt, job.reference_soft_prompt][:len(ids)]
        seq = _Seq(stream, gen, prompt_tokens=len(ids[0]), stops=StopScanner(job.stop))
        return _Prepared(stream, seq, ids, steering, soft)

    def _prefill(self, items: list[_Prepared]) -> None:
        """Prefill ``items`` as one batch under their own steering, sample each one's first
        token, and merge their rows into the running batch."""
        texts = [ids for it in items for ids in it.ids]
        steering = [st for it in items for st in it.steering]
        soft = [sp for it in items for sp in it.soft]
        new_rows = [(it.seq, branch) for it in items for branch in range(len(it.ids))]
        t = max(len(x) for x in texts)
        n = len(texts)
        ids = torch.full((n, t), self._pad_id, dtype=torch.long)
        mask = torch.zeros((n, t), dtype=torch.long)
        for r, x in enumerate(texts):
            ids[r, t - len(x):] = torch.tensor(x)
            mask[r, t - len(x):] = 1
        dev = self.lm.device
        ids, mask = ids.to(dev), mask.to(dev)
        embeds = None
        if any(sp is not None for sp in soft):  # soft prompts: the prefill runs on input embeddings
            embeds, mask = with_soft_prompts(self.lm, ids, mask, soft)  # (N, T', H), (N, T')
            t = mask.shape[1]
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (N, T)
        if self._handle is not None:  # the running rows' steering must not see the new rows' prefill
            self._handle.remove()
            self._handle, self._dirty = None, True
        handle = patch(self.lm, list(steering), batch_size=n, allow_mismatch=self.allow_mismatch,
                       prompts_rewritten=True)
        try:
            if embeds is None:
                out = self.lm.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
            else:
                out = self.lm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=True)
        finally:
            handle.remove()
        self.stats.prefills += 1
        logits = out.logits[:, -1, :]  # (N, V)
        first = self._choose(logits, new_rows)  # (N,)
        plen = mask.sum(dim=1)  # (N,)
        self._merge(out.past_key_values, mask, t - plen, plen, plen.clone(), first, new_rows)
        self._seqs += [it.seq for it in items]
        self._dirty = True

    def _merge(self, cache: Any, mask: Tensor, pad: Tensor, plen: Tensor, next_pos: Tensor, feed: Tensor,
               rows: list[tuple[_Seq, int]]) -> None:
        """Append prefilled rows (their cache, mask (N, T'), pad, prompt lengths) to the batch."""
        if self._mergeable is None:
            self._mergeable = _mergeable(cache)
        if self._cache is None:
            self._cache, self._mask, self._pad, self._plen = cache, mask, pad, plen
            self._next_pos, self._feed, self._rows = next_pos, feed, list(rows)
            return
        assert self._mask is not None and self._pad is not None and self._plen is not None
        assert self._next_pos is not None and self._feed is not None
        t_run, t_new = self._mask.shape[1], mask.shape[1]
        t = max(t_run, t_new)
        for run_layer, new_layer in zip(_layers(self._cache), _layers(cache)):
            run_layer.keys = torch.cat([_left_pad(run_layer.keys, t), _left_pad(new_layer.keys, t)], dim=0)
            run_layer.values = torch.cat([_left_pad(run_layer.values, t), _left_pad(new_layer.values, t)], dim=0)
        self._mask = torch.cat([_left_pad_2d(self._mask, t), _left_pad_2d(mask, t)], dim=0)
        self._pad = torch.cat([self._pad + (t - t_run), pad + (t - t_new)])
        self._plen = torch.cat([self._plen, plen])
        self._next_pos = torch.cat([self._next_pos, next_pos])
        self._feed = torch.cat([self._feed, feed])
        self._rows += rows

    # --------------------------------------------------------------- decode
    def _decode_step(self) -> None:
        assert self._mask is not None and self._feed is not None and self._next_pos is not None
        if self._dirty:
            if self._handle is not None:
                self._handle.remove()
            steering = [tuple(s.stream.job.steering if b == 0 else s.stream.job.reference_steering)
                        for s, b in self._rows]
            self._handle = patch(self.lm, steering, batch_size=len(steering), allow_mismatch=self.allow_mismatch,
                                 prompts_rewritten=True)
            self._dirty = False
        assert self._handle is not None and self._handle.tracker is not None
        assert self._pad is not None and self._plen is not None
        self._handle.tracker.resume(self._pad, self._plen)
        feed = self._feed[:, None]  # (R, 1)
        self._mask = torch.cat([self._mask, torch.ones_like(feed)], dim=1)  # (R, T + 1)
        out = self.lm.model(input_ids=feed, attention_mask=self._mask, position_ids=self._next_pos[:, None],
                            past_key_values=self._cache, use_cache=True)
        self._cache = out.past_key_values
        self._next_pos = self._next_pos + 1
        self._feed = self._choose(out.logits[:, -1, :], self._rows)

    def _choose(self, logits: Tensor, rows: list[tuple[_Seq, int]]) -> Tensor:
        """Sample every job's next token from its rows' logits (R, V); emit it; returns (R,) the
        token each row feeds next (a finished job's rows feed padding until they leave)."""
        feed = torch.full((len(rows),), self._pad_id, dtype=torch.long, device=logits.device)
        where: dict[int, list[int]] = {}
        for r, (seq, branch) in enumerate(rows):
            where.setdefault(id(seq), [0, 0])[branch] = r
        seen: set[int] = set()
        for seq, _ in rows:
            if id(seq) in seen or seq.done is not None:
                continue
            seen.add(id(seq))
            cond, ref = where[id(seq)]
            job = seq.stream.job
            if seq.stream.cancelled.is_set():
                self._finish(seq, "cancelled")
                continue
            if job.guidance != 1.0:
                scores = guided_log_probs(logits[cond:cond + 1], logits[ref:ref + 1], job.guidance)  # (1, V)
            else:
                scores = logits[cond:cond + 1].float()  # (1, V)
            if not bool(torch.isfinite(scores).any()) or bool(torch.isnan(scores).any()):
                self._fail(seq, SteerlabError("steering produced non-finite logits for this request; "
                                              "lower the strength"))
                continue
            try:
                token = self._sample(scores, seq)
                feed[cond] = token
                if job.guidance != 1.0:
                    feed[ref] = token
                self._accept(seq, token)
            except Exception as exc:  # noqa: BLE001 - sampling or decoding this job failed: it alone
                if seq.done is None:
                    self._fail(seq, exc)
        return feed

    def _sample(self, scores: Tensor, seq: _Seq) -> int:
        job = seq.stream.job
        if job.temperature == 0:
            return int(scores.argmax(dim=-1))
        if seq.warpers is None:
            seq.warpers = LogitsProcessorList([TemperatureLogitsWarper(job.temperature)])
            if job.top_k > 0:
                seq.warpers.append(TopKLogitsWarper(job.top_k))
            if job.top_p < 1.0:
                seq.warpers.append(TopPLogitsWarper(job.top_p))
        scores = seq.warpers(None, scores)  # type: ignore[arg-type]
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, 1, generator=seq.gen))

    def _accept(self, seq: _Seq, token: int) -> None:
        job = seq.stream.job
        seq.tokens.append(token)
        self.stats.tokens += 1
        is_eos = token in self._eos and not job.ignore_eos
        text = self.lm.tokenizer.decode(seq.tokens if not is_eos else seq.tokens[:-1], skip_special_tokens=True)
        settled = text.rstrip("\ufffd")  # a partial character waits for its next token
        reason = None
        cut = seq.stops.feed(settled) if job.stop else -1
        if cut >= 0:
            text, reason = settled[:cut], "stop"
        if reason is None and is_eos:
            reason = "stop"
        if reason is None and len(seq.tokens) >= job.max_new_tokens:
            reason = "length"
        safe = text
        if reason is None:  # hold back a partial character and a possible start of a stop string
            safe = settled[:len(settled) - seq.stops.held]
        if len(safe) > len(seq.sent) and safe.startswith(seq.sent):
            seq.stream._emit(Event("token", text=safe[len(seq.sent):], ids=(token,)))
            seq.sent = safe
        elif not safe.startswith(seq.sent):  # a decode that rewrote earlier text: resend nothing twice
            seq.sent = safe
        if reason is not None:
            self._finish(seq, reason)

    def _finish(self, seq: _Seq, reason: str) -> None:
        seq.done = reason
        self.stats.jobs_done += 1
        self.stats.jobs_cancelled += reason == "cancelled"
        seq.stream._emit(Event("done", finish_reason=reason, prompt_tokens=seq.prompt_tokens,
                               completion_tokens=len(seq.tokens)))

    def _fail(self, seq: _Seq, exc: Exception) -> None:
        seq.done = "error"
        self.stats.jobs_failed += 1
        seq.stream._emit(Event("error", error=exc))

    # --------------------------------------------------------------- retire
    def _retire(self) -> None:
        for seq in self._seqs:
            if seq.done is None and seq.stream.cancelled.is_set():
                self._finish(seq, "cancelled")
        if all(s.done is None for s in self._seqs):
            return
        keep = [r for r, (s, _) in enumerate(self._rows) if s.done is None]
        self._seqs = [s for s in self._seqs if s.done is None]
        if keep and not self._mergeable:
            return  # finished rows stay (feeding padding, ignored) until the batch ends
        self._dirty = True
        if not keep:
            if self._handle is not None:
                self._handle.remove()
            self._reset()
            return
        assert self._mask is not None and self._pad is not None and self._plen is not None
        assert self._next_pos is not None and self._feed is not None
        idx = torch.tensor(keep, device=self._mask.device)
        self._rows = [self._rows[r] for r in keep]
        self._mask, self._pad, self._plen = self._mask[idx], self._pad[idx], self._plen[idx]
        self._next_pos, self._feed = self._next_pos[idx], self._feed[idx]
        lead = int(self._pad.min())  # columns that are padding in every remaining row
        for layer in _layers(self._cache):
            layer.keys = layer.keys[idx, :, lead:]
            layer.values = layer.values[idx, :, lead:]
        self._mask = self._mask[:, lead:]
        self._pad = self._pad - lead


def _mergeable(cache: Any) -> bool:
    layers = getattr(cache, "layers", None)
    return layers is not None and all(not getattr(layer, "is_sliding", False) and hasattr(layer, "keys")
                                      and type(layer).__name__ == "DynamicLayer" for layer in layers)


def _layers(cache: Any) -> list[Any]:
    """The cache's per-layer key/value holders; continuous batching needs full-attention layers."""
    layers = getattr(cache, "layers", None)
    if layers is None or any(getattr(layer, "is_sliding", False) or not hasattr(layer, "keys") for layer in layers):
        raise SteerlabError("continuous batching needs a full-attention KV cache (this model's cache has "
                            "sliding-window or other layers)")
    return list(layers)


def _left_pad(x: Tensor, t: int) -> Tensor:
    """(B, H, T', D) -> (B, H, t, D), zeros on the left."""
    extra = t - x.shape[2]
    if extra == 0:
        return x
    return torch.cat([x.new_zeros(x.shape[0], x.shape[1], extra, x.shape[3]), x], dim=2)


def _left_pad_2d(x: Tensor, t: int) -> Tensor:
    """(B, T') -> (B, t), zeros on the left."""
    extra = t - x.shape[1]
    if extra == 0:
        return x
    return torch.cat([x.new_zeros(x.shape[0], extra), x], dim=1)
