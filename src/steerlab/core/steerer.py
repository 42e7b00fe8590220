"""The one interface every steering method implements.

A method is a :class:`Steerer` subclass registered by name plus an :class:`~steerlab.core.artifact.Artifact`
subclass. Users hold artifacts; to steer they wrap them in :class:`Steer` (artifact + strength +
per-application options) and pass them to :func:`steerlab.generate` (possibly a different list per
batch row) or to :func:`~steerlab.core.apply.apply` (a context manager).

A steer is made ready for one model once, by :meth:`Steerer.prepare`: its options parsed into the
method's typed values and the artifact validated against the model. The resulting :class:`Prepared`
is what every later stage reads (prompt rewrites, soft prompts, hooks, vLLM's tables), so nothing
is parsed or validated again on the path of a request. Grouping rows into applications lives in
:mod:`steerlab.core.plan`, the all-or-nothing install in :mod:`steerlab.core.apply`.
"""

from __future__ import annotations

import dataclasses
import difflib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, Union

import torch
from torch import Tensor

from steerlab.core.artifact import Artifact
from steerlab.core.hooks import HookSet
from steerlab.core.methods import METHODS, get_method
from steerlab.core.model import LoadedModel
from steerlab.core.positions import PositionTracker
from steerlab.core.validate import finite
from steerlab.errors import SteerlabError

if TYPE_CHECKING:
    from steerlab.core.site_ops import SiteOp

A = TypeVar("A", bound=Artifact)
O = TypeVar("O")  # noqa: E741 (the options dataclass)

__all__ = ["METHODS", "Application", "Prepared", "Steer", "Steerer", "get_steerer"]


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


SteerLike = Union[Artifact, Steer, "Prepared"]
RowSteering = Union[None, SteerLike, Sequence[SteerLike]]
"""What one row gets: nothing, one steer, or several composed (a tuple or list of steers)."""


@dataclass
class Application:
    """One (artifact, options) pair applied to a batch; ``strengths`` holds each row's strength."""

    artifact: Artifact
    options: Any  # the method's options dataclass instance
    strengths: Tensor  # (B,) float32; 0.0 for rows that do not use this artifact
    prepared: Prepared | None = None  # the prepared steer this application came from, if any


class Steerer(ABC, Generic[A, O]):
    """Base class of a steering method, generic in its artifact type ``A`` and options dataclass
    ``O``. Subclasses set ``name`` and ``options_cls`` and are registered with their artifact class
    as a :class:`~steerlab.core.methods.MethodSpec`."""

    name: ClassVar[str]
    options_cls: ClassVar[type[Any]]
    steers_prompt: ClassVar[bool] = False
    """True for methods that steer through the prompt — its text (:meth:`rewrite_prompt` /
    :meth:`rewrite_formatted`) or soft prompts (:meth:`soft_prompt`) — so their hooks alone are not
    the method (see :func:`patch`). Derived from the overrides, like :attr:`makes_soft_prompts` and
    :attr:`explains` (:meth:`__init_subclass__`): a flag cannot contradict the code."""
    suggested_strengths: ClassVar[tuple[float, ...]] = (0.5, 1.0, 2.0, 4.0)
    """Magnitudes the evaluation harness sweeps by default (signed by the task's goal)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Set the capability flags that restate which methods a subclass overrides; a subclass that
        declares one against its own methods is refused when it is defined."""
        super().__init_subclass__(**kwargs)
        derived = {"steers_prompt": any(_overrides(cls, m) for m in ("rewrite_prompt", "rewrite_formatted",
                                                                     "soft_prompt")),
                   "makes_soft_prompts": _overrides(cls, "soft_prompt"),
                   "explains": _overrides(cls, "explain")}
        for flag, value in derived.items():
            declared = cls.__dict__.get(flag)
            if declared is not None and bool(declared) != value:
                raise TypeError(f"{cls.__name__}.{flag} = {declared!r} contradicts its methods: it is derived "
                                "from which of rewrite_prompt / rewrite_formatted / soft_prompt / explain the "
                                "class overrides; drop the declaration")
            setattr(cls, flag, value)

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

    makes_soft_prompts: ClassVar[bool] = False
    """True for methods that override :meth:`soft_prompt` (DGLM): engines that cannot feed input
    embeddings refuse them by this flag. Derived, never declared."""

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
    """True for methods that override :meth:`explain` to score the tokens of a text (LM-Steer).
    Derived, never declared."""

    def explain(self, lm: LoadedModel, artifact: A, text: str, strength: float, options: O) -> list[tuple[str, float]]:
        """Per token of ``text``: how much the steer at ``+strength`` rather than ``-strength``
        explains it (> 0: the + direction). Methods without such a reading raise."""
        raise SteerlabError(f"method {self.name!r} does not explain text")

    def bind_options(self, artifact: A, options: O) -> O:
        """Resolve options that need the artifact into their typed values (SteerLM: the attribute
        string against the adapter's schema), once per request; default: unchanged."""
        return options

    def prepare(self, lm: LoadedModel | None, steer: Steer, *, allow_mismatch: bool = False) -> Prepared:
        """Make ``steer`` ready for ``lm`` once: options parsed and bound to the artifact, and the
        application validated against the model (skipped when ``lm`` is None: an engine that only
        formats text, whose workers validate against the model they hold)."""
        options = self.bind_options(steer.artifact, self.parse_options(steer.options))  # type: ignore[arg-type]
        parsed = Prepared(steer, self, options, None, allow_mismatch)
        return parsed if lm is None else parsed.for_model(lm, allow_mismatch=allow_mismatch)

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




@dataclass(frozen=True, eq=False)
class Prepared:
    """A steer made ready for one model by :meth:`Steerer.prepare`: what every stage of a request
    reads instead of parsing and validating again. Passing a prepared steer to
    :func:`~steerlab.core.apply.patch` also says the caller applied its prompt stages
    (:meth:`rewrite_prompt`, :meth:`rewrite_formatted`, :meth:`soft_prompt`). Rows whose
    prepared steers share an artifact and equal options are grouped into one application."""

    steer: Steer
    steerer: Steerer[Any, Any]
    options: Any  # the method's options dataclass, bound to the artifact
    model_id: int | None  # id() of the model it was validated for; None: parsed only
    allow_mismatch: bool = False

    @property
    def artifact(self) -> Artifact:
        return self.steer.artifact

    @property
    def strength(self) -> float:
        return float(self.steer.strength)

    def checked_for(self, lm: LoadedModel, allow_mismatch: bool) -> bool:
        """Whether this was validated for ``lm`` under at least as strict a mismatch policy."""
        return self.model_id == id(lm) and (allow_mismatch or not self.allow_mismatch)

    def for_model(self, lm: LoadedModel, *, allow_mismatch: bool = False) -> Prepared:
        """This steer validated for ``lm`` (itself if it already was): options are not parsed again."""
        if self.checked_for(lm, allow_mismatch):
            return self
        app = Application(self.artifact, self.options, torch.tensor([self.strength]))
        self.steerer.validate(lm, app, allow_mismatch=allow_mismatch)
        return dataclasses.replace(self, model_id=id(lm), allow_mismatch=allow_mismatch)

    def rewrite_prompt(self, prompt: str) -> str:
        return self.steerer.rewrite_prompt(prompt, self.artifact, self.strength, self.options)

    def rewrite_formatted(self, text: str) -> str:
        return self.steerer.rewrite_formatted(text, self.artifact, self.strength, self.options)

    def soft_prompt(self, lm: LoadedModel, prompt: str) -> Tensor | None:
        """This steer's soft prompt (k, hidden) for the user's ``prompt``, or None (also at strength 0)."""
        if self.strength == 0:
            return None
        return self.steerer.soft_prompt(lm, self.artifact, prompt, self.strength, self.options)


def get_steerer(method: str) -> Steerer[Any, Any]:
    """An instance of the steerer of the registered method called ``method``."""
    return get_method(method).steerer_cls()


def _overrides(cls: type, name: str) -> bool:
    """Whether ``cls`` (a :class:`Steerer` subclass) has its own ``name``, not the base's."""
    return getattr(cls, name) is not getattr(Steerer, name)
