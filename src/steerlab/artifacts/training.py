"""Reading the training records that trained artifacts carry, so a reader can tell a steer limited
by its training steps (loss still falling at the end) from one limited by its model or data (flat),
and see what each training cost.

The trainers write a ``training`` record into the artifact's config (DGLM one per stage): steps,
wall time, the first loss and the mean over the last window (``loss_last_50`` and the like), and,
in artifacts trained since histories were kept, the loss history itself: per step
(``loss_history``; LM-Steer, SteerLM), every 50 steps (``loss_history_every_50``; DGLM's
diffusion model) or per step with the batch's noise level (``history`` of ``[σ², loss]``; DGLM's
decoder). A run that continued another artifact's training (``init_from``) also names the steps
that one had taken. Nothing here trains or loads weights."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BARS = "▁▂▃▄▅▆▇█"
HISTORY_KEYS = {"loss_history": 1, "loss_history_every_50": 50}  # key -> steps between stored points


@dataclass(frozen=True)
class Curve:
    """One training stage's record.

    ``losses[i]`` is the loss at step ``i * every`` (a resumed run restores the history from its
    checkpoint, so the curve always starts at step 0); empty when the artifact predates stored
    histories. ``seconds`` is the wall time of the run that wrote the artifact (a resumed run
    counts only its own part); ``last`` is the trainer's own mean over its last window."""

    stage: str  # "" for a one-stage trainer, else e.g. "diffusion"
    losses: tuple[float, ...]
    every: int
    seconds: float | None
    n_steps: int | None
    first: float | None
    last: float | None
    before: int | None = None

    @property
    def steps(self) -> int | None:
        return self.n_steps or (len(self.losses) * self.every if self.losses else None)

    def window_means(self, n: int) -> list[float]:
        """The history cut into ``n`` equal windows (fewer when it has fewer points), each one's
        mean: per-step losses are noisy, window means are the curve a reader can compare."""
        if not self.losses:
            return []
        k = max(1, min(n, len(self.losses)))
        bounds = [round(i * len(self.losses) / k) for i in range(k + 1)]
        return [sum(self.losses[a:b]) / (b - a) for a, b in zip(bounds, bounds[1:], strict=False)]

    def last_quarter_change(self) -> float | None:
        """Relative change of the mean loss from the third quarter of the run to the last one
        (-0.004 = 0.4% lower): near zero means more steps of the same kind would not help."""
        q = self.window_means(4)
        if len(q) < 4 or q[2] == 0:
            return None
        return (q[3] - q[2]) / abs(q[2])


def _number(x: Any) -> float | None:
    """A finite JSON number, else None (JSON as Python reads it may carry NaN or Infinity)."""
    ok = isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
    return float(x) if ok else None


def _count(x: Any) -> int | None:
    """A positive JSON integer, else None."""
    return x if isinstance(x, int) and not isinstance(x, bool) and x > 0 else None


def _losses(node: Mapping[str, Any]) -> tuple[tuple[float, ...], int]:
    """The stored loss history and the steps between its points; ``()`` when none is stored or a
    point is not a finite number."""
    for key, step in HISTORY_KEYS.items():
        history = node.get(key)
        if isinstance(history, Sequence) and history and all(_number(x) is not None for x in history):
            return tuple(float(x) for x in history), step
    pairs = node.get("history")  # [[σ², loss], ...]: the loss is each point's last entry
    if isinstance(pairs, Sequence) and pairs and all(isinstance(p, Sequence) and len(p) == 2 for p in pairs):
        losses = [_number(p[1]) for p in pairs]
        if all(x is not None for x in losses):
            return tuple(float(x) for x in losses if x is not None), 1
    return (), 1


def _continued_from(node: Mapping[str, Any], stage: str) -> int | None:
    """Steps of the run this one continued: ``init_from`` holds that run's record of the same stage
    (or, for a one-stage trainer, the record itself)."""
    init = node.get("init_from")
    if not isinstance(init, Mapping):
        return None
    earlier = init.get(stage) if stage else init
    return _count(earlier.get("n_steps")) if isinstance(earlier, Mapping) else None


def _record(node: Mapping[str, Any], stage: str) -> Curve:
    losses, every = _losses(node)
    last = next((_number(v) for k, v in sorted(node.items()) if k.startswith("loss_last")), None)
    return Curve(stage, losses, every, _number(node.get("seconds_this_run", node.get("seconds"))),
                 _count(node.get("n_steps")), _number(node.get("loss_first")), last,
                 _continued_from(node, stage))


def curves(doc: Mapping[str, Any]) -> list[Curve]:
    """Every training record (a mapping with ``loss_first``) under an artifact's config document
    (``steer_config.json``), in document order; empty for artifacts that are extracted, not trained."""
    found: list[Curve] = []

    def visit(node: Mapping[str, Any], stage: str) -> None:
        if "loss_first" in node:
            found.append(_record(node, stage))
            return
        for key, child in node.items():
            if isinstance(child, Mapping):
                visit(child, key if stage or key != "training" else "")

    config = doc.get("config")
    if isinstance(config, Mapping):
        visit(config, "")
    return found


def sparkline(values: Sequence[float]) -> str:
    """One bar character per value, scaled between the smallest and the largest."""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    return "".join(BARS[min(len(BARS) - 1, int((v - lo) / span * len(BARS)))] for v in values)


def _loss(x: float | None) -> str:
    return f"{x:.3f}" if x is not None else "?"


def _steps(c: Curve) -> str:
    return f"{c.steps:,}" if c.steps else "?"


def _after(c: Curve) -> str:
    return f" (after {c.before:,} earlier)" if c.before else ""


def _change(c: Curve) -> str | None:
    change = c.last_quarter_change()
    return f"{100 * change:+.1f}%" if change is not None else None


def describe(curve: Curve, width: int = 20) -> str:
    """One line: steps, time, loss at the start and at the end, the curve as bars (``width`` window
    means) and how much the last quarter still moved it."""
    name = f"{curve.stage}: " if curve.stage else ""
    took = f" in {curve.seconds:,.0f} s" if curve.seconds is not None else ""
    head = f"{name}{_steps(curve)} steps{_after(curve)}{took}, loss"
    means = curve.window_means(width)
    if not means:
        return f"{head} {_loss(curve.first)} -> {_loss(curve.last)} (no history stored)"
    change = _change(curve)
    tail = f"; last quarter {change}" if change else ""
    per = (curve.steps or 0) / len(means)  # a stored history always gives a step count
    return f"{head} {curve.losses[0]:.3f} -> {means[-1]:.3f} {sparkline(means)} ({per:,.0f} steps a bar){tail}"


def section(named: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """A markdown section with one row per training record of each ``(name, config document)``:
    what each trained steer cost and whether its loss had stopped falling; empty when none of them
    was trained."""
    rows = [(name, c) for name, doc in named for c in curves(doc)]
    if not rows:
        return ""
    lines = ["## How the trained steers were trained", "",
             "From each artifact's training record: steps (and those of the training it continued, if "
             "it was warm-started from another artifact), wall time of the run that wrote it (on the "
             "machine named in its experiment notes), loss at the first step and over the trainer's "
             "last window, the loss curve as window means, and the change from the third quarter of "
             "the run to the last (near zero: more steps of the same kind would not help).", "",
             "| artifact | stage | steps | time | loss first -> last | curve | last quarter |",
             "|---|---|---|---|---|---|---|"]
    for name, c in rows:
        means = c.window_means(20)
        lines.append(f"| `{name}` | {c.stage or '—'} | {_steps(c)}{_after(c)} | "
                     f"{f'{c.seconds:,.0f} s' if c.seconds is not None else '?'} | "
                     f"{_loss(c.first)} -> {_loss(c.last)} | {sparkline(means) if means else 'not stored'} | "
                     f"{_change(c) or '—'} |")
    return "\n".join(lines) + "\n"
