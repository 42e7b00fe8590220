"""The evaluation protocol: N prompts × k samples × T new tokens with top-p sampling, scored for
the task's attribute, fluency (perplexity under a reference LM) and diversity, for several
conditions side by side: unsteered, the prompting baseline, and steered at one or more strengths.

All conditions of one run go through a single per-row-steered ``generate`` call, so every
condition sees the same prompts, seed and batch composition.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from steerlab.core.steerer import Steer
from steerlab.data.pairs import load_prompts
from steerlab.eval import metrics as M
from steerlab.eval.perplexity import conditional_perplexity
from steerlab.eval.tasks import Task
from steerlab.generation.generate import TextEngine, generate
from steerlab.models.loading import LoadedModel
from steerlab.scoring.scorers import get_scorer


@dataclass(frozen=True)
class Protocol:
    """Sampling and size settings. Defaults follow the papers (k = 25, T = 20, top-p 0.9)."""

    n_prompts: int = 100
    samples: int = 25
    max_new_tokens: int = 20
    top_p: float = 0.9
    temperature: float = 1.0
    seed: int = 0
    batch_size: int = 32
    n_boot: int = 1000


QUICK = Protocol(n_prompts=8, samples=3, max_new_tokens=20)
FULL = Protocol()


@dataclass
class Condition:
    """One row of a report: how prompts are steered (or instructed)."""

    name: str
    kind: str  # "unsteered" | "prompting" | "steered"
    steering: tuple[Steer, ...] = ()
    prefix: str = ""  # text prepended to each prompt (prompting baseline)
    strength: float | None = None
    options: dict[str, Any] = field(default_factory=dict)  # the steer's options (e.g. layers)


@dataclass
class ConditionResult:
    name: str
    kind: str
    strength: float | None
    options: dict[str, Any]
    attribute: float  # mean scorer value over prompts (per-prompt means)
    attribute_ci: tuple[float, float]
    success: float  # mean over prompts of the share of successful samples
    success_ci: tuple[float, float]
    perplexity: float
    perplexity_ci: tuple[float, float]
    perplexity_total: float  # token-weighted: exp(total NLL / total tokens), every sample
    perplexity_filtered: int
    dist: tuple[float, float, float]
    mean_words: float
    repetition: float
    extra: dict[str, float] = field(default_factory=dict)
    examples: list[tuple[str, str]] = field(default_factory=list)
    per_prompt_success: list[float] = field(default_factory=list)  # (N,) share of each prompt's k samples
    # success minus the prompting baseline's, paired over the same prompts: (mean difference, 95% low,
    # 95% high) by bootstrap over prompts; None for the baselines or when the run had no single prompting row
    vs_prompting: tuple[float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prompts_for(task: Task, protocol: Protocol) -> list[str]:
    """The first ``n_prompts`` of the task's shipped prompt set."""
    return load_prompts(task.prompts)[: protocol.n_prompts]


@dataclass
class Samples:
    """Raw output of one generation pass: texts, scores and perplexities of every condition."""

    prompts: list[str]
    conditions: list[Condition]
    k: int
    outs: list[str]  # condition-major, then prompt, then sample
    scores: list[float]
    extras: dict[str, list[float]]
    ppl: Any  # PerplexityResult
    scorer: tuple[str, bool, tuple[str, ...]]  # (scorer, score_with_prompt, extra_scorers) used


def sample_conditions(lm: LoadedModel, task: Task, conditions: Sequence[Condition], protocol: Protocol,
                      reference: LoadedModel, prompts: Sequence[str] | None = None,
                      engine: TextEngine | None = None) -> Samples:
    """Generate every condition in one per-row-steered pass, then score and measure fluency.
    ``engine`` generates instead of steerlab's own engine on ``lm`` (same prompts, steering and
    decoding settings); scoring and perplexity stay here."""
    prompts = list(prompts) if prompts is not None else prompts_for(task, protocol)
    k = protocol.samples
    texts: list[str] = []
    rows: list[Any] = []
    for cond in conditions:
        for p in prompts:
            for _ in range(k):
                texts.append(cond.prefix + p)
                rows.append(tuple(cond.steering) or None)
    run = engine.generate if engine is not None else functools.partial(generate, lm)
    outs = run(texts, steering=rows, max_new_tokens=protocol.max_new_tokens, temperature=protocol.temperature,
               top_p=protocol.top_p, seed=protocol.seed, batch_size=protocol.batch_size)
    plain_prompts = [p for _ in conditions for p in prompts for _ in range(k)]
    scored = [p + o for p, o in zip(plain_prompts, outs)] if task.score_with_prompt else outs
    scores = get_scorer(task.scorer)(scored)
    extras = {name: get_scorer(name)(scored) for name in task.extra_scorers}
    ppl = conditional_perplexity(reference, plain_prompts, outs)
    return Samples(prompts, list(conditions), k, outs, scores, extras, ppl,
                   (task.scorer, task.score_with_prompt, task.extra_scorers))


def summarise(task: Task, samples: Samples, protocol: Protocol, only: Sequence[str] | None = None
              ) -> list[ConditionResult]:
    """Per-condition metrics for ``task`` (which must score like the task that sampled)."""
    if samples.scorer != (task.scorer, task.score_with_prompt, task.extra_scorers):
        raise ValueError(f"samples were scored for {samples.scorer}, not for task {task.name!r}")
    per_cond = len(samples.prompts) * samples.k
    results = []
    for ci, cond in enumerate(samples.conditions):
        if only is not None and cond.name not in only:
            continue
        sl = slice(ci * per_cond, (ci + 1) * per_cond)
        ppl = samples.ppl
        total = math.exp(sum(ppl.nll[sl]) / max(1, sum(ppl.tokens[sl])))
        res = _summarise(task, cond, samples.prompts, samples.outs[sl], samples.scores[sl], ppl.per_sample[sl],
                         total, samples.k, protocol)
        for name, values in samples.extras.items():
            res.extra.update(_second_opinion(name, values[sl], samples.scores[sl], task))
        results.append(res)
    _pair_with_prompting(results, protocol)  # within the rows kept: a report's own prompting row
    return results


def _pair_with_prompting(results: Sequence[ConditionResult], protocol: Protocol) -> None:
    """Set each steered row's ``vs_prompting``: the mean over prompts of (its success − the
    prompting row's) on the same prompt, with a bootstrap interval over prompts. Pairing removes
    the prompt-to-prompt spread both rows share, so "beats prompting" is judged on the difference
    rather than on two overlapping marginal intervals. Skipped unless exactly one prompting row."""
    prompting = [r for r in results if r.kind == "prompting"]
    if len(prompting) != 1:
        return
    base = np.asarray(prompting[0].per_prompt_success)  # (N,)
    for r in results:
        if r.kind == "steered":
            diff = np.asarray(r.per_prompt_success) - base  # (N,)
            lo, hi = M.bootstrap_ci(diff.tolist(), n_boot=protocol.n_boot, seed=protocol.seed)
            r.vs_prompting = (float(diff.mean()), lo, hi)


def run_conditions(lm: LoadedModel, task: Task, conditions: Sequence[Condition], protocol: Protocol,
                   reference: LoadedModel, prompts: Sequence[str] | None = None,
                   engine: TextEngine | None = None) -> list[ConditionResult]:
    """Generate, score and measure every condition on the same prompts."""
    return summarise(task, sample_conditions(lm, task, conditions, protocol, reference, prompts, engine), protocol)


def _summarise(task: Task, cond: Condition, prompts: list[str], outs: list[str], scores: list[float],
               ppls: list[float], total_ppl: float, k: int, protocol: Protocol) -> ConditionResult:
    by_prompt = [scores[i * k:(i + 1) * k] for i in range(len(prompts))]
    texts_by_prompt = [outs[i * k:(i + 1) * k] for i in range(len(prompts))]
    attr = [float(np.mean(s)) for s in by_prompt]
    succ = [float(np.mean([task.succeeds(v) for v in s])) for s in by_prompt]
    kept = [x for x in ppls if not math.isnan(x)]
    boot = {"n_boot": protocol.n_boot, "seed": protocol.seed}
    extra: dict[str, float] = {}
    if task.toxicity_metrics:
        avg_max, prob = M.avg_max_and_probability(by_prompt)
        extra.update(avg_max_toxicity=avg_max, toxicity_probability=prob)
    return ConditionResult(
        name=cond.name, kind=cond.kind, strength=cond.strength, options=dict(cond.options),
        attribute=float(np.mean(attr)), attribute_ci=M.bootstrap_ci(attr, **boot),
        success=float(np.mean(succ)), success_ci=M.bootstrap_ci(succ, **boot),
        perplexity=float(np.mean(kept)) if kept else float("nan"), perplexity_ci=M.bootstrap_ci(kept, **boot),
        perplexity_total=total_ppl, perplexity_filtered=sum(math.isnan(x) for x in ppls),
        dist=(M.distinct_n(texts_by_prompt, 1), M.distinct_n(texts_by_prompt, 2), M.distinct_n(texts_by_prompt, 3)),
        mean_words=float(np.mean([len(o.split()) for o in outs])),
        repetition=float(np.mean([M.repetition_rate(o) for o in outs])),
        extra=extra, examples=[(p, t[0]) for p, t in zip(prompts[:3], texts_by_prompt[:3])],
        per_prompt_success=succ,
    )


# Where a second-opinion scorer's value means "has the attribute" (sign for VADER, 0.5 otherwise).
_CUTS = {"vader": 0.0}


def _second_opinion(name: str, values: list[float], primary: list[float], task: Task) -> dict[str, float]:
    """Mean of a secondary scorer and how often it agrees with the primary scorer's decision."""
    cut = _CUTS.get(name, 0.5)
    agree = [(v > cut) == (p > task.threshold) for v, p in zip(values, primary)]
    return {f"{name}_mean": float(np.mean(values)), f"{name}_agreement": float(np.mean(agree))}
