"""The method registry: one :class:`MethodSpec` per steering method, declared by the method itself.

A method package registers its spec when it is imported (PEFT's ``register_peft_method`` is the
model)::

    METHOD = register_method(MethodSpec("vectors", SteeringVector, VectorSteerer))

and is found through the ``steerlab.methods`` entry-point group — the built-in methods too — so
core, generation, evaluation, the CLI and the server never import a method by name, and a
third-party package adds a method with no edit here::

    [project.entry-points."steerlab.methods"]
    my_method = "my_package.steering:METHOD"

An entry point may name a :class:`MethodSpec`, a callable returning one, or a module whose import
registers its method.
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from steerlab.core.registry import Registry
from steerlab.errors import SteerlabError

if TYPE_CHECKING:
    from steerlab.core.artifact import Artifact
    from steerlab.core.steerer import Steerer

ENTRY_POINT_GROUP = "steerlab.methods"


@dataclass(frozen=True)
class MethodSpec:
    """Everything steerlab needs to know about a method.

    Attributes:
        name: the method's name, as stored in its artifacts' ``method`` field.
        artifact_cls: the :class:`~steerlab.core.artifact.Artifact` subclass it loads and saves.
        steerer_cls: the :class:`~steerlab.core.steerer.Steerer` subclass that applies it.
        description: one line for listings.
    """

    name: str
    artifact_cls: type[Artifact]
    steerer_cls: type[Steerer]
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise SteerlabError(f"method name {self.name!r} must be an identifier")
        if getattr(self.artifact_cls, "method", None) != self.name:
            raise SteerlabError(f"{self.artifact_cls.__name__}.method must be {self.name!r}")
        if getattr(self.steerer_cls, "name", None) != self.name:
            raise SteerlabError(f"{self.steerer_cls.__name__}.name must be {self.name!r}")
        if not dataclasses.is_dataclass(getattr(self.steerer_cls, "options_cls", None)):
            raise SteerlabError(f"{self.steerer_cls.__name__}.options_cls must be a dataclass")

    @property
    def options_cls(self) -> type[Any]:
        """The dataclass of per-application options (layers, positions, attributes, ...)."""
        return self.steerer_cls.options_cls


class _MethodRegistry(Registry[MethodSpec]):
    """A registry that reads the entry-point group before the first look-up."""

    def __init__(self) -> None:
        super().__init__("steering method")
        self._loaded = False
        self._loading = threading.RLock()

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._loading:
            if self._loaded:
                return
            self._loaded = True  # set first: a plugin module may look methods up while it loads
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    obj = ep.load()
                    if callable(obj) and not isinstance(obj, (MethodSpec, type)):
                        obj = obj()
                    if isinstance(obj, MethodSpec):
                        self.register(obj.name, obj)
                except Exception as e:  # noqa: BLE001 (one broken plugin must not break the others)
                    warnings.warn(f"steerlab method plugin {ep.name!r} ({ep.value}) failed to load: "
                                  f"{type(e).__name__}: {e}", stacklevel=2)

    def get(self, name: str) -> MethodSpec:
        self._ensure_loaded()
        return super().get(name)

    def names(self) -> list[str]:
        self._ensure_loaded()
        return super().names()

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return super().__contains__(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


METHODS = _MethodRegistry()
"""Every registered method by name (built-ins and plugins)."""


def register_method(spec: MethodSpec) -> MethodSpec:
    """Register ``spec`` (idempotent for the same object); returns it, so a method package can write
    ``METHOD = register_method(MethodSpec(...))``."""
    METHODS.register(spec.name, spec)
    return spec


def unregister_method(name: str) -> None:
    """Remove a method (tests and interactive sessions that define a throw-away method)."""
    METHODS._items.pop(name, None)


def get_method(name: str) -> MethodSpec:
    """The spec of the method called ``name``, with a did-you-mean error for unknown names."""
    return METHODS.get(name)
