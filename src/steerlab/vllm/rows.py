"""The host side of in-graph steering (:mod:`steerlab.vllm.tables`): which table rows a request
holds, and each step's token-to-row map.

A request's rows are written once, when it joins: one row per position segment, each holding the
row's summed add vector and its projections at every layer of every site. They are given back when
it leaves. Each step only computes every token's row from numpy arrays (:class:`StepTokens`, built
from the model runner's host arrays) and copies one int64 vector to the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from steerlab.core.positions import rule_active, rule_cuts
from steerlab.core.site_ops import SiteOp
from steerlab.errors import SteerlabError
from steerlab.vllm.capacity import check_program
from steerlab.vllm.tables import KINDS, SteeringTables


@dataclass(frozen=True)
class StepTokens:
    """One step's tokens as the table op needs them: ``req_ids`` (R,) the requests in batch order,
    ``token_req`` (T,) each token's index into ``req_ids``, ``positions`` (T,) its absolute
    position in its sequence, and ``padded`` the token count the forward runs (≥ T: graph padding)."""

    req_ids: tuple[str, ...]
    token_req: np.ndarray
    positions: np.ndarray
    padded: int

    @classmethod
    def from_runner(cls, req_ids: Sequence[str], query_start_loc: np.ndarray, num_computed: np.ndarray,
                    padded: int | None = None) -> StepTokens:
        """From vLLM's runner arrays: ``query_start_loc`` (R + 1,) each request's first token in the
        step, ``num_computed`` (R,) tokens each request had computed before the step."""
        counts = np.diff(query_start_loc)  # (R,)
        token_req = np.repeat(np.arange(len(req_ids)), counts)  # (T,)
        pos = num_computed[token_req] + (np.arange(token_req.shape[0]) - query_start_loc[token_req])  # (T,)
        n = int(token_req.shape[0])
        return cls(tuple(req_ids), token_req, pos.astype(np.int64), n if padded is None else max(int(padded), n))


@dataclass
class _Joined:
    """A request's place in the tables."""

    first_row: int  # 0: unsteered (no rows)
    cuts: np.ndarray  # (S - 1,) positions where its segment changes, padded with a huge number


class RowPlanner:
    """Rows per request and ``token_row`` per step (see the module docstring)."""

    BIG = np.iinfo(np.int64).max // 2

    def __init__(self, tables: SteeringTables) -> None:
        self.tables = tables
        self.cap = tables.cap
        self._free = list(range(self.cap.requests - 1, -1, -1))  # free request blocks of `segments` rows
        self._joined: dict[str, _Joined] = {}
        self._host = torch.zeros(self.cap.tokens, dtype=torch.long)  # pageable on purpose: a copy from it is done
        # before copy_ returns, so the next step may rewrite it even while vLLM schedules ahead
        self._dirty = 0  # tokens of `token_row` that may be non-zero

    def join(self, req_id: str, ops: Sequence[tuple[SiteOp, float]], prompt_len: int) -> None:
        """Write the rows of a request whose steering is ``ops`` — (op, strength) in application
        order. Admission checked the program against the same capacity, so this cannot run out."""
        if req_id in self._joined:
            return
        active = [(op, s) for op, s in ops if s != 0]
        if not active:
            self._joined[req_id] = _Joined(0, np.full(self.cap.segments - 1, self.BIG, dtype=np.int64))
            return
        check_program([op for op, _ in active], self.cap)
        unwrapped = sorted({(op.site, op.layer) for op, _ in active} - self.tables.wrapped)
        if unwrapped:
            site, layer = unwrapped[0]
            raise SteerlabError(self.tables.refused.get((site, layer),
                                                        f"this model has no module for site {site!r} at layer {layer}"))
        if not self._free:  # vLLM runs at most max_num_seqs requests, the tables' request count
            raise SteerlabError(f"more than {self.cap.requests} steered requests at once")
        cuts = rule_cuts([op.positions for op, _ in active], prompt_len)
        first = 1 + self._free.pop() * self.cap.segments
        self._write_rows(first, active, cuts, prompt_len)
        padded = np.full(self.cap.segments - 1, self.BIG, dtype=np.int64)
        padded[:len(cuts)] = cuts
        self._joined[req_id] = _Joined(first, padded)

    def leave(self, req_id: str) -> None:
        joined = self._joined.pop(req_id, None)
        if joined is not None and joined.first_row:
            self._free.append((joined.first_row - 1) // self.cap.segments)

    def live(self) -> set[str]:
        return set(self._joined)

    def _write_rows(self, first: int, ops: Sequence[tuple[SiteOp, float]], cuts: list[int], prompt_len: int) -> None:
        """Each segment's row, computed in float32 on the host and cast once: the add vectors summed
        per (site, layer), the projections' unit directions, strengths and targets in order."""
        t, cap = self.tables, self.cap
        S, L, H, P = cap.segments, t.num_layers, t.hidden, max(cap.projections, 1)  # noqa: N806
        host = {s: {"add": torch.zeros(S, L, H), "proj_unit": torch.zeros(S, L, P, H),
                    "proj_strength": torch.zeros(S, L, P), "proj_target": torch.zeros(S, L, P)} for s in cap.sites}
        on = torch.zeros(S, L, dtype=torch.bool)
        reps = [cuts[0] - 1 if cuts else 0] + cuts  # a position inside each segment
        for seg, pos in enumerate(reps[:S]):
            used: dict[tuple[str, int], int] = {}
            for op, strength in ops:
                if not rule_active(op.positions, pos, prompt_len):
                    continue
                tab = host[op.site]
                if op.site == "block":
                    on[seg, op.layer] = True
                v = op.direction.detach().to(torch.float32).cpu()  # (H,)
                if op.kind == "add":
                    tab["add"][seg, op.layer] += strength * v
                    continue
                j = used.get((op.site, op.layer), 0)
                used[(op.site, op.layer)] = j + 1
                norm = v.norm()
                tab["proj_unit"][seg, op.layer, j] = v / norm if float(norm) > 0 else v
                tab["proj_strength"][seg, op.layer, j] = strength
                tab["proj_target"][seg, op.layer, j] = float(op.target)
        rows = slice(first, first + S)
        dev = t.token_row.device
        t.on[:, rows] = on.T.to(dev)
        for s in cap.sites:
            for kind in KINDS:  # host (S, L, ...) -> table (L, S, ...)
                table = t.table(s, kind)
                table[:, rows] = host[s][kind].transpose(0, 1).to(device=dev, dtype=table.dtype)

    def fill(self, step: StepTokens) -> None:
        """Write ``token_row`` for one step; tokens past the real ones (graph padding) get row 0."""
        n_tok = int(step.token_req.shape[0])
        firsts = np.array([self._joined[r].first_row if r in self._joined else 0 for r in step.req_ids],
                          dtype=np.int64)  # (R,)
        if not firsts.any():
            if self._dirty:  # clear what earlier steps wrote
                self.tables.token_row[: self._dirty].zero_()
                self._dirty = 0
            return
        cuts = np.stack([self._joined[r].cuts if r in self._joined else
                         np.full(self.cap.segments - 1, self.BIG, dtype=np.int64) for r in step.req_ids])  # (R, S-1)
        tok_first = firsts[step.token_req]  # (T,)
        seg = (step.positions[:, None] >= cuts[step.token_req]).sum(axis=1)  # (T,)
        host = self._host.numpy()
        host[:n_tok] = np.where(tok_first > 0, tok_first + seg, 0)
        end = max(step.padded, n_tok)
        host[n_tok:end] = 0
        upto = max(end, self._dirty)
        host[end:upto] = 0
        self.tables.token_row[:upto].copy_(self._host[:upto], non_blocking=True)
        self._dirty = end

