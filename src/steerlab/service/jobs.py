"""Turn a resolved request into engine jobs: the exact text each row continues, its steering and
its decoding settings — for plain prompts and for chat conversations alike.

The rows come from :func:`~steerlab.generation.rows.build_rows`, the builder
:func:`steerlab.generate` and the vLLM engine use too, so a job run by the engine equals the same
request run by ``generate``. Nothing here branches on the method.
"""

from __future__ import annotations

from collections.abc import Sequence

from steerlab.core.model import LoadedModel
from steerlab.generation.jobs import Job
from steerlab.generation.rows import Input, Message, build_rows, check_messages
from steerlab.service.resolve import Resolved

__all__ = ["Message", "build_jobs", "check_messages"]


def build_jobs(lm: LoadedModel, resolved: Resolved, inputs: Sequence[Input], *, n: int = 1) -> list[Job]:
    """One job per input and choice (``n`` per input, input-major). A string input is a prompt
    (chat template if the request resolved to chat); a list is a conversation. With a seed,
    choice ``i`` samples from ``seed + i`` so the choices differ."""
    pairs = build_rows(lm, inputs, tuple(resolved.steering), chat=resolved.chat, system=resolved.system,
                       guidance=resolved.guidance,
                       reference=tuple(resolved.reference) if resolved.reference else None)
    jobs = []
    for pair in pairs:
        row, ref = pair.row, pair.reference
        for i in range(n):
            jobs.append(Job(row.text, row.steering, resolved.decoding.for_row(i),
                            add_special_tokens=row.add_special_tokens, guidance=resolved.guidance,
                            reference_text=ref.text if ref else None,
                            reference_steering=ref.steering if ref else (), soft_prompt=row.soft_prompt,
                            reference_soft_prompt=ref.soft_prompt if ref else None))
    return jobs
