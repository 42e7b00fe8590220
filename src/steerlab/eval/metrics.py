"""Text metrics with the conventions of LM-Steer's ``evaluate.py`` (Han et al. 2024), which follows
DExperts: diversity, toxicity aggregates, and bootstrap confidence intervals.

* dist-n: for each prompt, the number of distinct n-grams over all its samples divided by the
  total number of words in those samples (words = ``text.split(' ')``); averaged over prompts.
* toxicity: "average max toxicity" = mean over prompts of the max score among its samples;
  "toxicity probability" = share of prompts with at least one sample scoring > 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def distinct_n(samples_per_prompt: Sequence[Sequence[str]], n: int) -> float:
    """Mean over prompts of |distinct n-grams| / |words| (LM-Steer / DExperts semantics)."""
    values = []
    for samples in samples_per_prompt:
        grams: set[tuple[str, ...]] = set()
        words = 0
        for text in samples:
            toks = text.split(" ")
            words += len(toks)
            grams.update(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))
        if words:
            values.append(len(grams) / words)
    return float(np.mean(values)) if values else float("nan")


def repetition_rate(text: str, n: int = 3) -> float:
    """Share of a text's word n-grams that repeat an earlier n-gram (0 = no repetition)."""
    toks = text.split()
    grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def avg_max_and_probability(scores_per_prompt: Sequence[Sequence[float]], threshold: float = 0.5
                            ) -> tuple[float, float]:
    """(mean over prompts of the max sample score, share of prompts with any sample > threshold)."""
    maxes = [max(s) for s in scores_per_prompt if len(s)]
    if not maxes:
        return float("nan"), float("nan")
    return float(np.mean(maxes)), float(np.mean([m > threshold for m in maxes]))


def bootstrap_ci(values: Sequence[float], *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (resampling units, e.g. prompts)."""
    vals = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if len(vals) == 0:
        return float("nan"), float("nan")
    if len(vals) == 1:
        return float(vals[0]), float(vals[0])
    rng = np.random.default_rng(seed)
    means = rng.choice(vals, size=(n_boot, len(vals)), replace=True).mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)



def mauve_score(texts: Sequence[str], references: Sequence[str], *, encoder: str | None = None,
                seed: int = 25, scaling: float = 5.0) -> float:
    """MAUVE (Pillutla et al. 2021, ``mauve-text``) of ``texts`` against human ``references``, with
    features from a packaged sentence encoder instead of the package's default GPT-2-large (which
    would be downloaded). Bucket count ``auto`` (n / 10); needs a few dozen texts on each side to
    mean anything, hundreds to be stable. Scores are comparable only under the same encoder."""
    try:
        import mauve
    except ImportError as exc:  # pragma: no cover - an install problem, named for the user
        raise ImportError("MAUVE needs mauve-text: pip install 'steerlab[eval]'") from exc
    from steerlab.scoring.encoders import DEFAULT_ENCODER, encode

    if len(texts) < 2 or len(references) < 2:
        raise ValueError("MAUVE needs at least 2 texts on each side")
    name = encoder or DEFAULT_ENCODER
    p, q = encode(list(references), name), encode(list(texts), name)  # (N, D), (M, D) float32
    out = mauve.compute_mauve(p_features=p, q_features=q, seed=seed, mauve_scaling_factor=scaling, verbose=False)
    return float(out.mauve)
