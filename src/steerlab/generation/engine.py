"""Continuous batching with per-row steering: one thread owns the model, requests join and leave.

The :class:`Engine` is what a server puts behind many concurrent requests. Its thread repeats:

1. **admit** waiting jobs (up to ``max_batch`` model rows): prefill them together as their own
   batch, each row under its own steering, sample each job's first token, and merge their KV cache
   into the running batch (the shorter side is left-padded, so every row keeps its own positions);
2. **decode** one token for every running row, the steering re-installed for the batch's current
   rows whenever membership changed (hooks of one :func:`~steerlab.core.apply.patch`, per-row
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

import dataclasses
import itertools
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from transformers.generation import LogitsProcessorList

from steerlab.core.apply import SteeringHandle, patch, prepare
from steerlab.core.model import LoadedModel
from steerlab.core.steerer import Prepared
from steerlab.core.validate import positive_int
from steerlab.errors import SteerlabError
from steerlab.generation.decode import eos_ids, prefill_kwargs, with_soft_prompts
from steerlab.generation.guidance import guided_log_probs
from steerlab.generation.jobs import EngineStats, EngineThread, Event, Job, QueueFull, Stream
from steerlab.generation.kv import Batch, mergeable
from steerlab.generation.sampling import choose, warpers
from steerlab.generation.stops import TextStream

__all__ = ["Engine", "Event", "EngineStats", "Job", "QueueFull", "Stream"]


@dataclass
class _Seq:
    """A job in the running batch: its model rows, tokens and text so far."""

    stream: Stream
    gen: torch.Generator
    prompt_tokens: int
    tokens: list[int] = field(default_factory=list)
    done: str | None = None  # finish reason once finished
    warpers: LogitsProcessorList | None = None  # sampling warpers, built on the first sampled token
    text: TextStream = field(default_factory=lambda: TextStream(()))  # what was sent; the stop strings


@dataclass
class _Admitted:
    """A job taken from the queue, ready to prefill: its rows' token ids, steering and soft
    prompts (one per branch: the conditioned row, then the guidance reference), and its state."""

    stream: Stream
    seq: _Seq
    ids: list[list[int]]
    steering: list[tuple[Prepared, ...]]
    soft: list[Tensor | None]


class Engine(EngineThread):
    """Continuous batching over ``lm`` (see the module docs). ``max_batch``: model rows decoded
    together; ``max_queue``: jobs waiting beyond that before :meth:`submit` raises :class:`QueueFull`.
    """

    def __init__(self, lm: LoadedModel, *, max_batch: int = 32, max_queue: int = 256,
                 allow_mismatch: bool = False) -> None:
        super().__init__()
        lm.require_weights("steerlab's own engine")
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
        job = dataclasses.replace(job, steering=self._prepared(job.steering),
                                  reference_steering=self._prepared(job.reference_steering) if rows == 2 else ())
        if rows > self.max_batch:
            raise SteerlabError(f"a guidance job needs 2 batch rows; this engine decodes {self.max_batch}")
        stream = Stream(job, on_event)
        self._waiting.put(stream)
        self.stats.queued = self._waiting.qsize()
        self._wake.set()
        return stream

    def _prepared(self, steering: Any) -> tuple[Prepared, ...]:
        """The job's steers prepared for this model: already prepared ones (built by
        :func:`~steerlab.generation.rows.build_rows`) are kept, plain ones are prepared now —
        once for the job's whole life (prefill and every re-install)."""
        return tuple(prepare(self.lm, st, allow_mismatch=self.allow_mismatch) for st in steering)

    # ------------------------------------------------------------ the thread
    def _reset(self) -> None:
        """An empty running batch (after start, or after a failed step)."""
        self._seqs: list[_Seq] = []  # jobs in the batch, in row order
        self._rows: list[tuple[_Seq, int]] = []  # model row -> (job, branch 0 cond / 1 reference)
        self._batch: Batch | None = None  # the rows' cache, masks, positions and next tokens
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

    def _fail_new(self, item: _Admitted, exc: Exception) -> None:
        if not item.stream.finished.is_set():
            self.stats.jobs_failed += 1
            item.stream._emit(Event("error", error=exc))

    def _prepare(self, stream: Stream) -> _Admitted | None:
        """One job's model rows (token ids, steering, soft prompt per branch) and its generator;
        None (the job has failed alone) if any of it cannot be built."""
        job, tok = stream.job, self.lm.tokenizer
        try:
            texts = [job.text] + ([job.reference_text if job.reference_text is not None else job.text]
                                  if job.guidance != 1.0 else [])
            ids = [list(tok(t, add_special_tokens=job.add_special_tokens)["input_ids"]) for t in texts]
            if not all(ids):
                raise SteerlabError("a prompt has no tokens: give some text to continue")
            seed = job.decoding.seed if job.decoding.seed is not None else next(self._seeds)
            gen = torch.Generator(device=self.lm.device).manual_seed(int(seed))
        except Exception as exc:  # noqa: BLE001 - the job fails alone
            self.stats.jobs_failed += 1
            stream._emit(Event("error", error=exc))
            return None
        steering = [self._prepared(job.steering), self._prepared(job.reference_steering)][:len(ids)]
        soft = [job.soft_prompt, job.reference_soft_prompt][:len(ids)]
        seq = _Seq(stream, gen, prompt_tokens=len(ids[0]), text=TextStream(job.decoding.stop))
        return _Admitted(stream, seq, ids, steering, soft)

    def _prefill(self, items: list[_Admitted]) -> None:
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
        handle = patch(self.lm, list(steering), batch_size=n, allow_mismatch=self.allow_mismatch)
        try:
            keep = prefill_kwargs(self.lm)  # only the last position's logits are read
            if embeds is None:
                out = self.lm.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **keep)
            else:
                out = self.lm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=True, **keep)
        finally:
            handle.remove()
        self.stats.prefills += 1
        logits = out.logits[:, -1, :]  # (N, V)
        first = self._choose(logits, new_rows)  # (N,)
        plen = mask.sum(dim=1)  # (N,)
        self._merge(Batch(out.past_key_values, mask, t - plen, plen, plen.clone(), first), new_rows)
        self._seqs += [it.seq for it in items]
        self._dirty = True

    def _merge(self, new: Batch, rows: list[tuple[_Seq, int]]) -> None:
        """Append prefilled rows to the running batch."""
        if self._mergeable is None:
            self._mergeable = mergeable(new.cache)
        if self._batch is None:
            self._batch = new
        else:
            self._batch.append(new)
        self._rows += rows

    # --------------------------------------------------------------- decode
    def _decode_step(self) -> None:
        b = self._batch
        assert b is not None
        if self._dirty:
            if self._handle is not None:
                self._handle.remove()
            steering = [tuple(s.stream.job.steering if b == 0 else s.stream.job.reference_steering)
                        for s, b in self._rows]
            self._handle = patch(self.lm, steering, batch_size=len(steering), allow_mismatch=self.allow_mismatch)
            self._dirty = False
        assert self._handle is not None and self._handle.tracker is not None
        self._handle.tracker.resume(b.pad, b.plen)
        feed = b.feed[:, None]  # (R, 1)
        b.mask = torch.cat([b.mask, torch.ones_like(feed)], dim=1)  # (R, T + 1)
        out = self.lm.model(input_ids=feed, attention_mask=b.mask, position_ids=b.next_pos[:, None],
                            past_key_values=b.cache, use_cache=True)
        b.cache = out.past_key_values
        b.next_pos = b.next_pos + 1
        b.feed = self._choose(out.logits[:, -1, :], self._rows)

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
        decoding = seq.stream.job.decoding
        if seq.warpers is None:
            seq.warpers = warpers(decoding.temperature, decoding.top_p, decoding.top_k)
        return int(choose(scores, decoding.temperature, seq.warpers, generator=seq.gen)[0])

    def _accept(self, seq: _Seq, token: int) -> None:
        decoding = seq.stream.job.decoding
        seq.tokens.append(token)
        self.stats.tokens += 1
        is_eos = token in self._eos and not decoding.ignore_eos
        text = self.lm.tokenizer.decode(seq.tokens if not is_eos else seq.tokens[:-1], skip_special_tokens=True)
        reason = "stop" if is_eos else "length" if len(seq.tokens) >= decoding.max_new_tokens else None
        delta, stopped = seq.text.feed(text, final=reason is not None)
        if delta:
            seq.stream._emit(Event("token", text=delta, ids=(token,)))
        if stopped:
            reason = "stop"
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
        assert self._batch is not None
        self._rows = [self._rows[r] for r in keep]
        self._batch.keep(keep)
