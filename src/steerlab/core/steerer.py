"""The one interface every steering method implements, and the functions that apply them.

A method is a :class:`Steerer` subclass registered by name plus an :class:`~steerlab.core.artifact.Artifact`
subclass. Users hold artifacts; to steer they wrap them in :class:`Steer` (artifact + strength +
per-application options) and call :func:`apply` (a context manager) or pass them to
:func:`steerlab.generate`, possibly a different list per batch row.

Applying is split in two so a failure can never leave a model half-patched:
``Steerer.validate`` checks every application first, then ``Steerer.install`` registers hooks
into one :class:`~steerlab.core.hooks.HookSet`; if anything raises, everything installed so far is
removed before the error propagates.
"""

from __future__ import annotations

import dataclasses
import difflib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, Union

import torch
from torch import Tensor

from steerlab.core.artifact import Artifact
from steerlab.core.hooks import HookSet
from steerlab.core.methods import METHODS, get_method
from steerlab.core.positions import PositionTracker
from steerlab.core.validate import finite
from steerlab.errors import SteerlabError

if TYPE_CHECKING:
    from steerlab.core.site_ops import SiteOp
    from steerlab.models.loading import LoadedModel

A = TypeVar("A", bound=Artifact)
O = TypeVar("O")  # noqa: E741 (the options dataclass)

__all__ = ["METHODS", "Application", "Steer", "Steerer", "apply", "get_steerer", "patch"]


@dataclass(frozen=True)
class Steer:
    """One artifact applied with a strength and method-specific options (layers, positions, ...)."""

    artifact: Artifact
    strength: float = 1.0
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.artifact, Artifact):
            raise SteerlabError(f"Steer needs an artifact, got {type(self.artifact).__name__}")
        finite("strength", self.strength)
        if not isinstance(self.options, Mapping):
            raise SteerlabError(f"Steer options must be a mapping of option names to values, got {self.options!r}")


SteerLike = Union[Artifact, Steer]
RowSteering = Union[None, SteerLike, Sequence[SteerLike]]
"""What one row gets: nothing, one steer, or several composed (a tuple or list of steers)."""


@dataclass
class Application:
    """One (artifact, options) pair applied to a batch; ``strengths`` holds each row's strength."""

    artifact: Artifact
    options: Any  # the method's options dataclass instance
    strengths: Tensor  # (B,) float32; 0.0 for rows that do not use this artifact


class Steerer(ABC, Generic[A, O]):
    """Base class of a steering method, generic in its artifact type ``A`` and options dataclass
    ``O``. Subclasses set ``name`` and ``options_cls`` and are registered with their artifact class
    as a :class:`~steerlab.core.methods.MethodSpec`."""

    name: ClassVar[str]
    options_cls: ClassVar[type[Any]]
    steers_prompt: ClassVar[bool] = False
    """True for methods that steer through the prompt — its text (:meth:`rewrite_prompt` /
    :meth:`rewrite_formatted`) or soft prompts (:meth:`soft_prompt`) — so their hooks alone are not
    the method (see :func:`patch`)."""
    suggested_strengths: ClassVar[tuple[float, ...]] = (0.5, 1.0, 2.0, 4.0)
    """Magnitudes the evaluation harness sweeps by default (signed by the task's goal)."""

    @abstractmethod
    def fit(self, lm: LoadedModel, data: Any, **config: Any) -> A:
        """Learn an artifact for ``lm`` from ``data``."""

    @abstractmethod
    def install(
        self, lm: LoadedModel, apps: Sequence[Application], hooks: HookSet, tracker: PositionTracker
    ) -> None:
        """Register this method's hooks for ``apps`` into ``hooks`` (after :meth:`validate`)."""

    def validate(self, lm: LoadedModel, app: Application, *, allow_mismatch: bool = False) -> None:
        """Raise before anything is installed if ``app`` cannot run on ``lm``."""
        app.artifact.check_tensors()  # NaN / inf / overflowing values, even if set after loading
        if app.artifact.model is not None:
            app.artifact.model.check(lm.fingerprint, allow_mismatch=allow_mismatch)

    def rewrite_prompt(self, prompt: str, artifact: A, strength: float, options: O) -> str:
        """Methods that steer through the prompt (SteerLM) rewrite it here; default: unchanged."""
        return prompt

    def rewrite_formatted(self, text: str, artifact: A, strength: float, options: O) -> str:
        """Rewrite the prompt *after* the chat template (e.g. open the model's turn with a control
        string, as SteerLM does); default: unchanged."""
        return text

    def soft_prompt(self, lm: LoadedModel, artifact: A, prompt: str, strength: float, options: O) -> Tensor | None:
        """Vectors (k, hidden) to place before the row's prompt tokens in the input embeddings
        (soft prompts, as DGLM's prompt generator makes from ``prompt``); default: none."""
        return None

    def adapter(self, artifact: A) -> tuple[Mapping[str, tuple[Tensor, Tensor]], float] | None:
        """The LoRA this method adds to the model's linear layers, as ``(factors by module name
        (A (r, in), B (out, r)), scaling)``, or None. Engines with native multi-LoRA (vLLM) apply
        it themselves instead of this method's hooks; default: none."""
        return None

    adapter_follows_strength: ClassVar[bool] = True
    """Whether the strength scales :meth:`adapter` (SteerLM) or only switches it on (DGLM)."""

    head_only: ClassVar[bool] = False
    """True when the method's hooks act on the LM head alone (LM-Steer): they still run where an
    engine compiles the decoder stack (vLLM), since the head runs outside that graph."""

    def site_ops(self, lm: LoadedModel, artifact: A, options: O) -> list[SiteOp] | None:
        """The application as table-driven ops on decoder sites (:mod:`steerlab.core.site_ops`),
        which engines run inside a compiled graph; None (the default) when the method steers only
        through its hooks."""
        return None

    explains: ClassVar[bool] = False
    """True for methods whose :meth:`explain` scores the tokens of a text (LM-Steer)."""

    def explain(self, lm: LoadedModel, artifact: A, text: str, strength: float, options: O) -> list[tuple[str, float]]:
        """Per token of ``text``: how much the steer at ``+strength`` rather than ``-strength``
        explains it (> 0: the + direction). Methods without such a reading raise."""
        raise SteerlabError(f"method {self.name!r} does not explain text")

    def parse_options(self, options: Mapping[str, Any]) -> O:
        """Build the options dataclass, rejecting unknown keys with a did-you-mean hint."""
        known = {f.name for f in dataclasses.fields(self.options_cls)}
        for key in options:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise SteerlabError(
                    f"unknown option {key!r} for method {self.name!r}.{hint} "
                    f"Known: {', '.join(sorted(known))}."
                )
        try:
            return self.options_cls(**options)
        except SteerlabError:
            raise
        except (TypeError, ValueError, OverflowError) as e:
            raise SteerlabError(f"bad options for method {self.name!r}: {e}") from None


def get_steerer(method: str) -> Steerer[Any, Any]:
    """An instance of the steerer of the registered method called ``method``."""
    return get_method(method).steerer_cls()


def _cached_steerer(cache: dict[str, Steerer], method: str) -> Steerer:
    """One steerer instance per method within a call."""
    if method not in cache:
        cache[method] = get_steerer(method)
    return cache[method]


def as_steer(x: SteerLike) -> Steer:
    """Wrap a bare artifact as a strength-1 :class:`Steer`."""
    if isinstance(x, Steer):
        return x
    if isinstance(x, Artifact):
        return Steer(x)
    raise SteerlabError(f"expected an artifact or Steer, got {type(x).__name__}")


def row_steers(row: RowSteering) -> list[Steer]:
    """Normalise one row's steering to a list of :class:`Steer`."""
    if row is None:
        return []
    if isinstance(row, (Artifact, Steer)):
        return [as_steer(row)]
    if isinstance(row, (list, tuple)):
        return [as_steer(x) for x in row]
    raise SteerlabError(f"cannot steer with a {type(row).__name__}")


def per_row(steering: Any, batch: int) -> list[list[Steer]]:
    """Expand generate()'s ``steering`` argument to one list of steers per row.

    A ``list`` means one entry per row (each None, a steer, or a tuple/list of steers to compose);
    anything else (one steer, or a ``tuple`` of steers to compose) applies to every row.
    """
    if isinstance(steering, list):
        if len(steering) != batch:
            raise SteerlabError(
                f"per-row steering has {len(steering)} entries for {batch} prompts; "
                "pass one entry per prompt, or a tuple to compose steers for every row"
            )
        return [row_steers(r) for r in steering]
    shared = row_steers(steering)
    return [shared for _ in range(batch)]


def with_option(rows: list[list[Steer]], key: str, value: Any) -> list[list[Steer]]:
    """Set option ``key`` on every steer whose method has it; ``value`` may be a per-row list.

    Raises if no steer in the batch has such an option (e.g. ``attributes`` without a SteerLM
    artifact), so a knob is never silently ignored.
    """
    values = value if isinstance(value, list) else [value] * len(rows)
    if len(values) != len(rows):
        raise SteerlabError(f"{len(values)} {key} entries for {len(rows)} prompts")
    cache: dict[str, Steerer] = {}
    used = False
    out = []
    for steers, v in zip(rows, values):
        new = []
        for st in steers:
            fields = {f.name for f in dataclasses.fields(_cached_steerer(cache, st.artifact.method).options_cls)}
            if key in fields and v is not None:
                st = dataclasses.replace(st, options={**st.options, key: v})
                used = True
            new.append(st)
        out.append(new)
    if not used:
        raise SteerlabError(f"{key}= needs a steer whose method takes it (e.g. a SteerLM adapter) in steering")
    return out


def route_options(artifacts: Sequence[Artifact], options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Split one set of options (a CLI's ``--layers``, ``--opt k=v``) between artifacts of several
    methods: each artifact gets the options its method has. An option no method has goes to every
    artifact, so parsing reports it with a did-you-mean hint instead of dropping it."""
    fields = {a.method: {f.name for f in dataclasses.fields(get_method(a.method).options_cls)} for a in artifacts}
    routed: list[dict[str, Any]] = [{} for _ in artifacts]
    for key, value in options.items():
        takers = [i for i, a in enumerate(artifacts) if key in fields[a.method]] or range(len(artifacts))
        for i in takers:
            routed[i][key] = value
    return routed


def plan(rows: Sequence[Sequence[Steer]]) -> list[tuple[Steerer, Application]]:
    """Group per-row steers into one :class:`Application` per distinct (artifact, options)."""
    batch = len(rows)
    groups: dict[tuple[int, str], tuple[Steerer, Application]] = {}
    steerers: dict[str, Steerer] = {}
    for b, steers in enumerate(rows):
        for st in steers:
            method = st.artifact.method
            steerer = _cached_steerer(steerers, method)
            key = (id(st.artifact), repr(sorted(st.options.items())))
            if key not in groups:
                opts = steerer.parse_options(st.options)
                groups[key] = (steerer, Application(st.artifact, opts, torch.zeros(batch)))
            groups[key][1].strengths[b] += float(st.strength)
    return list(groups.values())


class SteeringHandle:
    """What :func:`patch` returns: call :meth:`remove` (idempotent) to restore the model."""

    def __init__(self, hooks: HookSet, tracker: PositionTracker | None = None) -> None:
        self._hooks = hooks
        self.tracker = tracker  # the positions every hook of this patch reads

    @property
    def active(self) -> bool:
        return not self._hooks.removed

    def remove(self) -> None:
        self._hooks.remove()

    def __enter__(self) -> SteeringHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def check(
    lm: LoadedModel, steering: Any, *, batch_size: int = 1, allow_mismatch: bool = False,
    prompts_rewritten: bool = False,
) -> list[tuple[Steerer, Application]]:
    """Everything :func:`patch` checks before it installs anything (options, layers, model
    fingerprint, prompt rewrites), without touching the model; returns the plan."""
    rows = per_row(steering, batch_size)
    planned = plan(rows)
    for steerer, app in planned:
        if steerer.steers_prompt and not prompts_rewritten and bool(app.strengths.any()):
            raise SteerlabError(
                f"{steerer.name} steers through the prompt as well as hooks, which apply()/patch() cannot "
                "rewrite: pass the steer to steerlab.generate(..., steering=...) instead, or build the "
                "prompt with the artifact's own template and call patch(..., prompts_rewritten=True)")
        steerer.validate(lm, app, allow_mismatch=allow_mismatch)
    return planned


def patch(
    lm: LoadedModel, steering: Any, *, batch_size: int = 1, allow_mismatch: bool = False,
    prompts_rewritten: bool = False,
) -> SteeringHandle:
    """Install steering on ``lm`` and return a handle; all or nothing.

    ``steering`` is as for :func:`per_row`. With ``batch_size=1`` and shared steering, strengths
    broadcast over any batch size.

    Methods that also steer through the prompt (``Steerer.steers_prompt``, e.g. SteerLM's attribute
    string) are refused unless ``prompts_rewritten=True`` says the caller built each row's text
    with their rewrites (:func:`rewrite_prompts`; :func:`steerlab.generate` does): hooks alone would
    silently drop the attribute string.
    """
    planned = check(lm, steering, batch_size=batch_size, allow_mismatch=allow_mismatch,
                    prompts_rewritten=prompts_rewritten)
    hooks = HookSet()
    try:
        tracker = PositionTracker()
        tracker.install(lm.base, hooks)
        install_planned(lm, planned, hooks, tracker)
    except BaseException:
        hooks.remove()
        raise
    return SteeringHandle(hooks, tracker)


def install_planned(lm: LoadedModel, planned: Sequence[tuple[Steerer, Application]], hooks: HookSet,
                    tracker: PositionTracker) -> None:
    """Install a checked plan into ``hooks``: each method once, with all its applications (the
    caller removes ``hooks`` if this raises)."""
    by_method: dict[str, tuple[Steerer, list[Application]]] = {}
    for steerer, app in planned:
        by_method.setdefault(steerer.name, (steerer, []))[1].append(app)
    for steerer, apps in by_method.values():
        steerer.install(lm, apps, hooks, tracker)


@contextmanager
def apply(
    lm: LoadedModel, *steering: SteerLike, allow_mismatch: bool = False, prompts_rewritten: bool = False
) -> Iterator[SteeringHandle]:
    """Steer ``lm`` inside a ``with`` block; the model is restored exactly on exit, even on error.

    Several steers compose; contexts nest. Example::

        with steerlab.apply(lm, Steer(vec, 4.0, {"layers": [12]})):
            print(steerlab.generate(lm, ["The weather today"]))
    """
    handle = patch(lm, tuple(steering), allow_mismatch=allow_mismatch, prompts_rewritten=prompts_rewritten)
    try:
        yield handle
    finally:
        handle.remove()


def soft_prompts(lm: LoadedModel, prompts: Sequence[str], rows: Sequence[Sequence[Steer]]) -> list[Tensor | None]:
    """Each row's soft prompt (k, hidden): its steers' soft prompts for the user's ``prompt``, in
    steering order, concatenated; None where no steer has one."""
    steerers: dict[str, Steerer] = {}
    out: list[Tensor | None] = []
    for prompt, steers in zip(prompts, rows):
        parts = []
        for st in steers:
            steerer = _cached_steerer(steerers, st.artifact.method)
            if st.strength == 0:
                continue
            sp = steerer.soft_prompt(lm, st.artifact, prompt, float(st.strength), steerer.parse_options(st.options))
            if sp is not None:
                parts.append(sp)
        out.append(torch.cat(parts, dim=0) if parts else None)
    return out


def rewrite_prompts(prompts: Sequence[str], rows: Sequence[Sequence[Steer]], *, formatted: bool = False) -> list[str]:
    """Let prompt-steering methods rewrite each row's prompt (identity for hook-only methods).

    ``formatted=False`` rewrites the user's text (before the chat template); ``formatted=True``
    rewrites the templated text the model will continue (``Steerer.rewrite_formatted``).
    """
    steerers: dict[str, Steerer] = {}
    parsed: dict[tuple[int, str], Any] = {}  # options parsed once per (artifact, options)
    out = []
    for prompt, steers in zip(prompts, rows):
        for st in steers:
            steerer = _cached_steerer(steerers, st.artifact.method)
            key = (id(st.artifact), repr(sorted(st.options.items())))
            if key not in parsed:
                parsed[key] = steerer.parse_options(st.options)
            rewrite = steerer.rewrite_formatted if formatted else steerer.rewrite_prompt
            prompt = rewrite(prompt, st.artifact, float(st.strength), parsed[key])
        out.append(prompt)
    return out
