"""The host side of in-graph steering (:mod:`steerlab.vllm.graph`): which table rows a request
holds, which slot holds an artifact's directions, and each step's token-to-row map.

A request's rows are written once, when it joins (one row per position segment); an artifact's
directions are written into a slot as requests first use each (site, layer) and stay while any
request uses them (then the slot may be reused, least recently released first). Each step only
computes every token's row from numpy arrays and copies one int64 vector to the device.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from steerlab.core.site_ops import SiteOp
from steerlab.errors import SteerlabError
from steerlab.vllm.graph import ARTIFACTS_ENV, SITES, GraphTables, check_program, rule_active, thresholds

log = logging.getLogger("steerlab.vllm")


@dataclass
class _Joined:
    """A request's place in the tables."""

    block: int  # first row (0: unsteered, no rows)
    cuts: np.ndarray  # (S - 1,) positions where its segment changes, padded with a huge number
    slots: list[int] = field(default_factory=list)  # direction slots it holds


class GraphPlanner:
    """The host side: direction slots per artifact, rows per request, ``variant`` per step."""

    BIG = np.iinfo(np.int64).max // 2

    def __init__(self, tables: GraphTables) -> None:
        self.tables = tables
        cap = tables.cap
        self.cap = cap
        self._slot_of: dict[int, int] = {}  # id(artifact) -> slot
        self._slot_refs = [0] * cap.artifacts
        self._slot_owner: list[Any] = [None] * cap.artifacts  # keeps the artifact (so its id stays unique)
        self._lru: list[int] = []  # free-able slots, least recently released first
        self._written: dict[int, dict[tuple[str, int], Tensor]] = {}  # slot -> (site, layer) directions it holds
        self._free_blocks = list(range(cap.requests - 1, -1, -1))
        self._joined: dict[str, _Joined] = {}
        self._host = torch.zeros(cap.tokens, dtype=torch.long)  # pageable on purpose: a copy from it is done
        # before copy_ returns, so the next step may rewrite it even while vLLM schedules ahead
        self._dirty = 0  # tokens of ``variant`` that may be non-zero
        log.info("steerlab: steering runs inside vLLM's graph: %d layers x %s; tables for %d artifacts, %d "
                 "projections per site, %d segments per request, %d requests, %d tokens per step",
                 tables.num_layers, "/".join(SITES), cap.artifacts, cap.projections, cap.segments, cap.requests,
                 cap.tokens)

    # ------------------------------------------------------------------ rows
    def join(self, req_id: str, ops: Sequence[tuple[Any, SiteOp, float]], prompt_len: int) -> None:
        """Write the rows of a request whose steering is ``ops`` — (artifact, op, strength) in
        application order."""
        if req_id in self._joined:
            return
        if not ops:
            self._joined[req_id] = _Joined(0, np.full(self.cap.segments - 1, self.BIG, dtype=np.int64))
            return
        check_program([op for _, op, _ in ops], self.cap)
        unwrapped = sorted({(op.site, op.layer) for _, op, _ in ops} - self.tables.wrapped)
        if unwrapped:
            raise SteerlabError(f"this model has no module for site {unwrapped[0][0]!r} at layer {unwrapped[0][1]}")
        if not self._free_blocks:
            raise SteerlabError(f"more than {self.cap.requests} steered requests at once")
        slots: dict[int, int] = {}
        try:
            for art, _, _ in ops:
                if id(art) not in slots:
                    slots[id(art)] = self._acquire(art, [op for a, op, _ in ops if a is art])
        except BaseException:
            for slot in slots.values():
                self._release(slot)
            raise
        cuts = thresholds([op.positions for _, op, _ in ops], prompt_len)
        block = 1 + self._free_blocks.pop() * self.cap.segments
        self._write_rows(block, ops, slots, cuts, prompt_len)
        padded = np.full(self.cap.segments - 1, self.BIG, dtype=np.int64)
        padded[:len(cuts)] = cuts
        self._joined[req_id] = _Joined(block, padded, list(slots.values()))

    def leave(self, req_id: str) -> None:
        joined = self._joined.pop(req_id, None)
        if joined is None or joined.block == 0:
            return
        for slot in joined.slots:
            self._release(slot)
        self._free_blocks.append((joined.block - 1) // self.cap.segments)

    def live(self) -> set[str]:
        return set(self._joined)

    def _write_rows(self, block: int, ops: Sequence[tuple[Any, SiteOp, float]], slots: dict[int, int],
                    cuts: list[int], prompt_len: int) -> None:
        t, S, L, D, P = self.tables, self.cap.segments, self.tables.num_layers, self.cap.artifacts, self.cap.projections  # noqa: N806
        dtype = t.table("block", "coef").dtype
        coef = {s: torch.zeros(S, L, D) for s in SITES}  # float32 on the host, cast once
        pidx = {s: torch.zeros(S, L, max(P, 1), dtype=torch.long) for s in SITES}
        ps = {s: torch.zeros(S, L, max(P, 1)) for s in SITES}
        pc = {s: torch.zeros(S, L, max(P, 1)) for s in SITES}
        on = torch.zeros(S, L, dtype=torch.bool)
        reps = [cuts[0] - 1 if cuts else 0] + cuts  # a position inside each segment
        for seg, pos in enumerate(reps[:S]):
            used: dict[tuple[str, int], int] = {}
            for art, op, strength in ops:
                if not rule_active(op.positions, pos, prompt_len) or strength == 0:
                    continue
                slot = slots[id(art)]
                if op.site == "block":
                    on[seg, op.layer] = True
                if op.kind == "add":
                    coef[op.site][seg, op.layer, slot] += strength
                else:
                    j = used.get((op.site, op.layer), 0)
                    used[(op.site, op.layer)] = j + 1
                    pidx[op.site][seg, op.layer, j], ps[op.site][seg, op.layer, j] = slot, strength
                    pc[op.site][seg, op.layer, j] = op.target
        rows = slice(block, block + S)
        dev = t.variant.device
        t.on[:, rows] = on.T.to(dev)
        for s in SITES:  # host (S, L, ...) -> table (L, S, ...)
            t.table(s, "coef")[:, rows] = coef[s].transpose(0, 1).to(device=dev, dtype=dtype)
            t.table(s, "pidx")[:, rows] = pidx[s].transpose(0, 1).to(dev)
            t.table(s, "ps")[:, rows] = ps[s].transpose(0, 1).to(device=dev, dtype=dtype)
            t.table(s, "pc")[:, rows] = pc[s].transpose(0, 1).to(device=dev, dtype=dtype)

    # ----------------------------------------------------------- directions
    def _acquire(self, art: Any, ops: Sequence[SiteOp]) -> int:
        """A direction slot holding ``art``'s directions at (at least) the sites and layers of ``ops``."""
        slot = self._slot_of.get(id(art))
        if slot is None or self._slot_owner[slot] is not art:
            unused = [s for s in range(self.cap.artifacts) if self._slot_owner[s] is None]
            free = [s for s in self._lru if self._slot_refs[s] == 0]
            if unused:
                slot = unused[0]
            elif free:
                slot = free[0]
                self._slot_of.pop(id(self._slot_owner[slot]), None)
            else:
                raise SteerlabError(f"the running requests steer with {self.cap.artifacts} artifacts already, all "
                                    f"the compiled vLLM tables hold (set {ARTIFACTS_ENV} higher)")
            self._clear_slot(slot)
            self._slot_of[id(art)], self._slot_owner[slot] = slot, art
            log.info("steerlab: %r takes slot %d of %d in the steering tables", getattr(art, "name", art), slot,
                     self.cap.artifacts)
        self._write_directions(slot, ops)
        if slot in self._lru:
            self._lru.remove(slot)
        self._slot_refs[slot] += 1
        return slot

    def _release(self, slot: int) -> None:
        self._slot_refs[slot] -= 1
        if self._slot_refs[slot] == 0:
            self._lru.append(slot)

    def _clear_slot(self, slot: int) -> None:
        t = self.tables
        for s in SITES:
            t.table(s, "dirs")[:, slot] = 0
            t.table(s, "units")[:, slot] = 0
        self._written[slot] = {}

    def _write_directions(self, slot: int, ops: Sequence[SiteOp]) -> None:
        """Write the directions of ``ops`` the slot does not hold yet (an artifact's directions are
        written as requests first use each site and layer)."""
        t = self.tables
        dtype, dev = t.table("block", "dirs").dtype, t.variant.device
        held = self._written.setdefault(slot, {})
        for op in ops:
            key = (op.site, op.layer)
            if key in held:
                if held[key] is not op.direction and not torch.equal(held[key], op.direction):
                    raise SteerlabError("an artifact's ops must use one direction per site and layer")
                continue
            held[key] = op.direction
            v = op.direction.to(device=dev, dtype=dtype)  # (H,), in the model's dtype as the hooks use it
            t.table(op.site, "dirs")[op.layer, slot] = v
            norm = v.norm()
            t.table(op.site, "units")[op.layer, slot] = v / norm if float(norm) > 0 else v

    # ------------------------------------------------------------------ step
    def fill(self, req_ids: Sequence[str], token_req: np.ndarray, positions: np.ndarray, padded: int) -> None:
        """Write ``variant`` for one step: ``token_req`` (T,) each token's index into ``req_ids``,
        ``positions`` (T,) its absolute position; tokens ``T..padded`` (graph padding) get row 0."""
        n_tok = int(token_req.shape[0])
        blocks = np.array([self._joined[r].block if r in self._joined else 0 for r in req_ids], dtype=np.int64)
        host = self._host.numpy()
        if not blocks.any():
            if self._dirty:  # clear what earlier steps wrote
                self.tables.variant[: self._dirty].zero_()
                self._dirty = 0
            return
        cuts = np.stack([self._joined[r].cuts if r in self._joined else
                         np.full(self.cap.segments - 1, self.BIG, dtype=np.int64) for r in req_ids])  # (R, S-1)
        tok_block = blocks[token_req]  # (T,)
        seg = (positions[:, None] >= cuts[token_req]).sum(axis=1)  # (T,)
        host[:n_tok] = np.where(tok_block > 0, tok_block + seg, 0)
        end = max(padded, n_tok)
        host[n_tok:end] = 0
        upto = max(end, self._dirty)
        host[end:upto] = 0
        self.tables.variant[:upto].copy_(self._host[:upto], non_blocking=True)
        self._dirty = end
