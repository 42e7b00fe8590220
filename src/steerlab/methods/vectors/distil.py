"""Prompt distillation: a steering direction from the model's own instructed continuations.

Hand-written contrast pairs rarely look like the text a user steers (reviews vs plot summaries,
templates vs chat). Here the model writes the pairs itself: each opening is continued once under
a positive instruction and once under a negative one (or none), and each pair is
``(opening + positive continuation, opening + negative continuation)`` with the instruction
dropped. A direction read from these pairs is what the instruction does to the hidden states,
so steering with it reproduces the prompting baseline's effect without the instruction in the
context. Measured on qwen2.5-1.5b towards positive sentiment it is both the strongest and the most
fluent vector shipped (``sentiment-distilled-qwen1.5b``, ``docs/methods/vectors.md``).

The openings' hashes join the artifact's provenance, so the evaluation harness refuses to score
the artifact on prompts it was distilled from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from steerlab.core.validate import positive_int
from steerlab.data.pairs import ContrastSet, text_hashes
from steerlab.errors import DataError
from steerlab.generation import generate
from steerlab.methods.vectors.steerer import extract
from steerlab.methods.vectors.vector import SteeringVector
from steerlab.models.loading import LoadedModel

# Scores texts for an attribute (higher = more of it), e.g. ``steerlab.scoring.get_scorer("vader")``.
Ranker = Callable[[list[str]], list[float]]


def distil_pairs(
    lm: LoadedModel,
    openings: Sequence[str],
    positive_instruction: str,
    negative_instruction: str = "",
    *,
    max_new_tokens: int = 24,
    temperature: float = 1.0,
    top_p: float = 0.9,
    seed: int = 0,
    samples: int = 1,
    rank_by: Ranker | None = None,
    separator: str = "\n\n",
) -> ContrastSet:
    """The model's own contrast pairs: each opening continued under each instruction.

    An instruction is prepended as ``instruction + separator + opening`` (the prompting
    baseline's layout); an empty instruction continues the bare opening, so
    ``negative_instruction=""`` contrasts the instructed text with what the model writes anyway.
    With ``samples`` > 1 each instructed side draws that many continuations per opening (seeds
    ``seed``, ``seed + 1``…) and keeps the one ``rank_by`` scores highest (positive side) or
    lowest (negative side), scoring opening + continuation: a sharper contrast where the model
    follows an instruction only some of the time. A bare (uninstructed) side keeps one draw, the
    model's typical text. ``rank_by`` is required then: an arbitrary draw wastes the extra samples.
    """
    opening_list = [o for o in openings]
    if not opening_list:
        raise DataError("distillation needs at least one opening to continue")
    for i, o in enumerate(opening_list):
        if not isinstance(o, str) or not o.strip():
            raise DataError(f"opening {i} must be non-empty text")
    if not positive_instruction.strip() and not negative_instruction.strip():
        raise DataError("give at least one instruction: with neither, both sides are the same text")
    if positive_instruction.strip() == negative_instruction.strip():
        raise DataError("the positive and negative instructions are the same: the pairs would not contrast")
    positive_int("samples", samples)
    if samples > 1 and rank_by is None:
        raise DataError("samples > 1 needs a scorer (rank_by) to choose among each opening's continuations")
    sides: list[list[str]] = []
    for sign, instruction in ((1.0, positive_instruction), (-1.0, negative_instruction)):
        prefix = instruction.strip() + separator if instruction.strip() else ""
        k = samples if prefix else 1
        draws = [generate(lm, [prefix + o for o in opening_list], max_new_tokens=max_new_tokens,
                          temperature=temperature, top_p=top_p, seed=seed + j) for j in range(k)]  # k × N
        if k == 1:
            sides.append(draws[0])
            continue
        assert rank_by is not None
        scores = [list(rank_by([o + c for o, c in zip(opening_list, d)])) for d in draws]  # k × N
        if any(len(row) != len(opening_list) for row in scores):
            raise DataError("rank_by must return one score per text")
        best = [_best([sign * row[i] for row in scores]) for i in range(len(opening_list))]
        sides.append([draws[j][i] for i, j in enumerate(best)])
    return ContrastSet([o + c for o, c in zip(opening_list, sides[0])],
                       [o + c for o, c in zip(opening_list, sides[1])], paired=True,
                       name="distilled", source=f"distilled from {len(opening_list)} openings")


def _best(scores: list[float]) -> int:
    """Index of the highest score (the first on ties)."""
    return max(range(len(scores)), key=scores.__getitem__)


def distil(
    lm: LoadedModel,
    openings: Sequence[str],
    positive_instruction: str,
    negative_instruction: str = "",
    *,
    max_new_tokens: int = 24,
    temperature: float = 1.0,
    top_p: float = 0.9,
    seed: int = 0,
    samples: int = 1,
    rank_by: Ranker | None = None,
    layers: Sequence[int] | None = None,
    site: str = "block",
    read: str = "mean",
    aggregator: str = "mean_diff",
    batch_size: int = 16,
    name: str | None = None,
) -> tuple[SteeringVector, ContrastSet]:
    """Distil the instructions' effect into a steering vector; returns it and the pairs it read.

    Arguments as :func:`distil_pairs` (the pairs) and :func:`~steerlab.methods.vectors.extract`
    (the reading).

    ``read="mean"`` averages every token of each text: the opening's hidden states are the same
    on both sides of a pair (the model is causal; only a token merged across the boundary can
    differ), so they cancel in the paired difference and the direction comes from the
    continuations. The provenance records the instructions, the sampling and the
    openings' hashes.
    """
    if not math.isfinite(temperature) or temperature <= 0:
        raise DataError(f"distillation samples its continuations: temperature must be > 0, got {temperature}")
    pairs = distil_pairs(lm, openings, positive_instruction, negative_instruction, max_new_tokens=max_new_tokens,
                         temperature=temperature, top_p=top_p, seed=seed, samples=samples, rank_by=rank_by)
    vec = extract(lm, pairs, layers=layers, site=site, read=read, aggregator=aggregator, batch_size=batch_size,
                  name=name or "distilled")
    prov = vec.meta["provenance"]
    prov["text_hashes"] = sorted(set(prov["text_hashes"]) | set(text_hashes(list(openings))))
    prov["distilled"] = {"positive_instruction": positive_instruction, "negative_instruction": negative_instruction,
                         "n_openings": len(pairs.positive), "max_new_tokens": max_new_tokens,
                         "temperature": temperature, "top_p": top_p, "seed": seed, "samples": samples}
    return vec, pairs
