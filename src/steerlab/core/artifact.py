"""Artifacts: a steering result as a directory of JSON + safetensors.

Layout of an artifact directory::

    steer_config.json          method, format/library version, base model fingerprint,
                               hyper-parameters, provenance, eval card
    steer_weights.safetensors  every tensor the method needs

Nothing is pickled and nothing is loaded with ``torch.load``: a downloaded artifact can hold data,
never code. Saves are atomic (a temporary sibling directory renamed into place) and never
replace anything but an earlier artifact, and that only with ``overwrite=True``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from steerlab._version import __version__
from steerlab.core.atomic import atomic_dir
from steerlab.core.fingerprint import ModelFingerprint
from steerlab.core.validate import check_tensor_values
from steerlab.errors import ArtifactError, SteerlabError

FORMAT_VERSION = 1
CONFIG_NAME = "steer_config.json"
WEIGHTS_NAME = "steer_weights.safetensors"
ARTIFACT_FILES = frozenset({CONFIG_NAME, WEIGHTS_NAME})

A = TypeVar("A", bound="Artifact")


class Artifact(ABC):
    """Base class of every method's result; ``method`` names the registered method
    (:mod:`steerlab.core.methods`) that loads and applies it."""

    method: ClassVar[str]
    model: ModelFingerprint | None
    meta: dict[str, Any]

    @abstractmethod
    def to_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """(JSON-able hyper-parameters, named tensors) that fully describe the artifact."""

    @classmethod
    @abstractmethod
    def from_state(
        cls: type[A],
        config: dict[str, Any],
        tensors: dict[str, Tensor],
        model: ModelFingerprint | None,
        meta: dict[str, Any],
    ) -> A:
        """Rebuild an artifact from what :meth:`to_state` returned."""

    @property
    def name(self) -> str:
        """A human label (from meta, else the method name)."""
        return str(self.meta.get("name") or self.method)

    @property
    def prefers_chat(self) -> bool:
        """True if the artifact was trained on chat turns, so generation should apply the model's
        chat template unless the caller says otherwise (SteerLM adapters)."""
        return False

    def controls(self) -> dict[str, Any]:
        """The knobs a user turns, as JSON (a console draws one control per entry): ``strength``
        for every artifact, plus ``attributes`` (name -> {low, high, default, description}) for
        methods with attribute knobs."""
        from steerlab.core.methods import get_method

        return {"strength": True, "attributes": {}, "explain": bool(get_method(self.method).steerer_cls.explains)}

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the artifact directory atomically; returns its path.

        An existing artifact at ``path`` is replaced only with ``overwrite=True``; a folder holding
        anything else, or a file, is never replaced (:class:`~steerlab.errors.OutputError`).
        """
        return save_artifact(self, path, overwrite=overwrite)

    def check_tensors(self) -> None:
        """Raise :class:`ArtifactError` if any tensor holds NaN, inf or values too large to steer with."""
        _, tensors = self.to_state()
        for key, t in tensors.items():
            check_tensor_values(f"tensor {key!r} of {self.name!r}", t)

    def __repr__(self) -> str:
        model = self.model.name if self.model else "any model"
        return f"{type(self).__name__}({self.name!r}, method={self.method!r}, model={model!r})"


def save_artifact(artifact: Artifact, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``artifact`` to directory ``path``; an earlier artifact there is replaced atomically
    only with ``overwrite=True`` (see :func:`~steerlab.core.atomic.atomic_dir`)."""
    artifact.check_tensors()
    config, tensors = artifact.to_state()
    doc = {
        "format_version": FORMAT_VERSION,
        "library": "steerlab",
        "library_version": __version__,
        "method": artifact.method,
        "name": artifact.meta.get("name"),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": artifact.model.to_dict() if artifact.model else None,
        "config": config,
        "tensors": {k: list(v.shape) for k, v in tensors.items()},
        "provenance": artifact.meta.get("provenance", {}),
        "eval_card": artifact.meta.get("eval_card", {}),
    }
    target = Path(path)
    with atomic_dir(target, ARTIFACT_FILES, overwrite=overwrite, what="steerlab artifact") as tmp:
        (tmp / CONFIG_NAME).write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
        contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        save_file(contiguous, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
    return target


def read_config(path: str | Path) -> dict[str, Any]:
    """Read and check ``steer_config.json`` of an artifact directory."""
    root = Path(path)
    if not root.is_dir():
        raise ArtifactError(f"{root} is not an artifact directory (no such directory)")
    cfg_path = root / CONFIG_NAME
    if not cfg_path.is_file():
        raise ArtifactError(f"{root} is not an artifact directory: {CONFIG_NAME} is missing")
    try:
        doc = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{cfg_path} is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or "method" not in doc or "config" not in doc:
        raise ArtifactError(f"{cfg_path} lacks the 'method' / 'config' fields of a steerlab artifact")
    version = doc.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ArtifactError(f"{cfg_path}: format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"{cfg_path} has format_version {version!r}; this steerlab ({__version__}) reads up to "
            f"{FORMAT_VERSION}. Upgrade steerlab."
        )
    if not isinstance(doc["method"], str) or not doc["method"]:
        raise ArtifactError(f"{cfg_path}: 'method' must be a method name, got {doc['method']!r}")
    if not isinstance(doc["config"], dict):
        raise ArtifactError(f"{cfg_path}: 'config' must be an object, got {type(doc['config']).__name__}")
    for key in ("provenance", "eval_card"):
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise ArtifactError(f"{cfg_path}: {key!r} must be an object, got {type(doc[key]).__name__}")
    if doc.get("name") is not None and not isinstance(doc["name"], str):
        raise ArtifactError(f"{cfg_path}: 'name' must be a string, got {doc['name']!r}")
    if doc.get("model") is not None and not isinstance(doc["model"], dict):
        raise ArtifactError(f"{cfg_path}: 'model' must be a model fingerprint object, got {doc['model']!r}")
    return doc


def resolve_artifact_path(path: str | Path) -> Path:
    """``path`` itself if it exists, else the shipped artifact of that name (``steerlab artifacts``)."""
    from steerlab.artifacts import shipped_path

    root = Path(path)
    if not root.exists():
        named = shipped_path(str(path))
        if named is not None:
            return named
    return root


def load_artifact(path: str | Path) -> Artifact:
    """Load any registered method's artifact from a directory, or a shipped one by name."""
    from steerlab.core.methods import get_method

    root = resolve_artifact_path(path)
    doc = read_config(root)
    try:
        cls = get_method(doc["method"]).artifact_cls
    except SteerlabError as e:
        raise ArtifactError(f"{root}: {e}") from None
    weights = root / WEIGHTS_NAME
    if not weights.is_file():
        raise ArtifactError(f"{root}: {WEIGHTS_NAME} is missing")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise ArtifactError(f"{weights} is corrupt or truncated: {e}") from None
    model = ModelFingerprint.from_dict(doc["model"], source=str(root)) if doc.get("model") else None
    meta = {
        "name": doc.get("name"),
        "provenance": doc.get("provenance") or {},
        "eval_card": doc.get("eval_card") or {},
        "created": doc.get("created"),
        "library_version": doc.get("library_version"),
    }
    try:
        artifact = cls.from_state(doc["config"], tensors, model, meta)
    except SteerlabError as e:
        raise ArtifactError(f"{root}: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as e:
        raise ArtifactError(f"{root}: config and weights do not match ({type(e).__name__}: {e})") from None
    artifact.check_tensors()
    return artifact


def update_eval_card(path: str | Path, card: dict[str, Any]) -> None:
    """Merge ``card`` into the eval card of a saved artifact (atomic rewrite of the JSON)."""
    from steerlab.core.atomic import atomic_file

    root = Path(path)
    doc = read_config(root)
    doc.setdefault("eval_card", {}).update(card)
    with atomic_file(root / CONFIG_NAME, overwrite=True) as tmp:  # rewrites our own file in place
        tmp.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
