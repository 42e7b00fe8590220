"""Turn a :class:`~steerlab.service.spec.GenerationRequest` into steers, a model and decoding
settings — the one place that decides which artifact a name means, which model an artifact
belongs to, whether to use the chat template and which options go to which method.

The CLI and the HTTP server are thin layers over :func:`resolve` and :func:`run`; neither branches
on the method.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steerlab.core.apply import prepare
from steerlab.core.artifact import Artifact, load_artifact
from steerlab.core.plan import RowEntry, with_option
from steerlab.core.steerer import Prepared, Steer, get_steerer
from steerlab.defaults import DEFAULT_MODEL
from steerlab.errors import SteerlabError
from steerlab.generation.decoding import Decoding
from steerlab.service.spec import GenerationRequest, SteerSpec


class ArtifactStore:
    """Artifacts by name, loaded once and cached (thread-safe).

    ``named`` maps names to artifact directories, on top of the shipped artifacts (``shipped=False``
    leaves them out). With ``allow_paths=True`` (the CLI and library
    callers) a reference that is not a name may be a directory; a server passes ``False`` so a
    request can only name artifacts the operator loaded.
    """

    def __init__(self, named: Mapping[str, str | Path] | None = None, *, allow_paths: bool = True,
                 shipped: bool = True) -> None:
        from steerlab.artifacts import shipped as shipped_artifacts

        base = {k: a.path for k, a in shipped_artifacts().items()} if shipped else {}
        self._named = {**base, **{k: Path(v) for k, v in (named or {}).items()}}
        self._allow_paths = allow_paths
        self._cache: dict[Path, tuple[tuple[Any, ...], Artifact]] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return sorted(self._named)

    def add(self, name: str, path: str | Path) -> Artifact:
        """Register (and load, to verify) an artifact under ``name``."""
        art = self._load(Path(path))
        with self._lock:
            self._named[name] = Path(path)
        return art

    def remove(self, name: str) -> None:
        with self._lock:
            if self._named.pop(name, None) is None:
                raise SteerlabError(f"no artifact named {name!r}")

    def discard(self, name: str) -> None:
        """Forget ``name`` if known (undo a failed :meth:`add`)."""
        with self._lock:
            self._named.pop(name, None)

    def is_shipped(self, name: str) -> bool:
        """Whether ``name`` is a shipped artifact (not a user's artifact of the same name)."""
        from steerlab.artifacts import shipped as shipped_artifacts

        entry = shipped_artifacts().get(name)
        return entry is not None and self._named.get(name) == entry.path

    def info(self, name: str) -> dict[str, Any]:
        """Catalogue facts about a shipped name (description, recommended setting), else {}."""
        from steerlab.artifacts import shipped as shipped_artifacts

        if not self.is_shipped(name):
            return {}
        entry = shipped_artifacts()[name]
        return {"description": entry.description, "recommended": entry.recommended, "companions": entry.companions}

    def path(self, name: str) -> Path:
        """The directory of a known name (a :class:`SteerlabError` for an unknown one)."""
        with self._lock:
            path = self._named.get(name)
        if path is None:
            raise SteerlabError(f"unknown artifact {name!r}")
        return path

    def get(self, ref: str) -> Artifact:
        """The artifact a request's reference means: a known name, else (if allowed) a directory.
        Where paths are allowed, an existing directory wins over a name."""
        path = self._named.get(ref)
        if self._allow_paths and Path(ref).is_dir():
            path = Path(ref)
        if path is None:
            if not self._allow_paths:
                import difflib

                close = difflib.get_close_matches(ref, self.names(), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise SteerlabError(f"unknown artifact {ref!r}.{hint} Known: {', '.join(self.names()) or 'none'}")
            path = Path(ref)
        return self._load(path)

    def _load(self, path: Path) -> Artifact:
        stamp = artifact_stamp(path)
        with self._lock:
            hit = self._cache.get(path.resolve())
        if hit is not None and hit[0] == stamp:
            return hit[1]
        art = load_artifact(path)
        with self._lock:
            self._cache[path.resolve()] = (stamp, art)
        return art


def artifact_stamp(path: Path) -> tuple[Any, ...]:
    """What a cached artifact is valid for: every file's name, size, modification time and inode
    (a folder replaced by a copy keeps the copied files' times, but not their inodes)."""
    if not path.is_dir():
        return ()
    out = []
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st = p.stat()
            out.append((str(p.relative_to(path)), st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)


@dataclass(frozen=True)
class Resolved:
    """What :func:`run` needs: the model to load, the steers (parsed once, into their methods'
    typed options: the request's ``attributes`` are an option of the steer that takes them),
    how rows are formed (chat template, system message, guidance and its reference row's steers)
    and how they are decoded."""

    model: str
    steering: tuple[Prepared, ...]
    decoding: Decoding
    chat: bool = False
    system: str | None = None
    guidance: float = 1.0
    reference: tuple[Prepared, ...] | None = None  # None: the reference row is unsteered


def model_for(explicit: str | None, artifacts: Sequence[Artifact], default: str = DEFAULT_MODEL) -> str:
    """The model to load: ``explicit`` if given, else the packaged model the artifacts were made on.

    An artifact never chooses a model to download or a path to load: if it names anything but a
    packaged model, the caller must name the model.
    """
    from steerlab.models.packaged import PACKAGED

    if explicit:
        return explicit
    names = []
    for art in artifacts:
        name = art.model.name if art.model else None
        if name is None:
            continue
        if name not in PACKAGED:
            raise SteerlabError(f"artifact {art.name!r} was made on {name!r}, which is not a packaged model; "
                                f"an artifact never chooses a model to download or load. Pass --model {name} "
                                "(or another model) to load it yourself")
        names.append(name)
    if len(set(names)) > 1:
        raise SteerlabError(f"the artifacts were made on different models ({', '.join(sorted(set(names)))}); "
                            "name one model")
    return names[0] if names else default


def resolve(request: GenerationRequest, store: ArtifactStore | None = None) -> Resolved:
    """Load the request's artifacts, choose the model and chat mode, validate options; nothing
    touches a model yet, so every error here is cheap."""
    store = store or ArtifactStore()
    specs = list(request.steering or [])
    artifacts = [store.get(s.artifact) for s in specs]
    steers: list[RowEntry] = [Steer(a, s.strength, dict(s.options)) for a, s in zip(artifacts, specs)]
    reference = None
    if request.guidance_reference is not None:
        if request.guidance == 1.0:
            raise SteerlabError("guidance_reference (--guidance-attr) needs guidance != 1 (1 = no guidance)")
        reference = _parsed(with_option([steers], "attributes", request.guidance_reference)[0])
    if request.attributes is not None:
        steers = with_option([steers], "attributes", request.attributes)[0]
    steering = _parsed(steers)  # unknown names and bad values fail here, before any model loads
    chat = request.chat if request.chat is not None else any(a.prefers_chat for a in artifacts)
    return Resolved(model_for(request.model, artifacts), steering, request.decoding, chat=chat,
                    system=request.system, guidance=request.guidance, reference=reference)


def _parsed(steers: Sequence[RowEntry]) -> tuple[Prepared, ...]:
    """Each steer's options parsed and bound to its artifact (validated against a model later,
    once, where the request meets one)."""
    return tuple(prepare(None, st) for st in steers)


def run(lm: Any, request: GenerationRequest, resolved: Resolved | None = None, **extra: Any) -> list[str]:
    """Generate the request's completions on ``lm`` (one per prompt)."""
    from steerlab.generation import generate

    resolved = resolved or resolve(request)
    return generate(lm, list(request.prompts), resolved.steering or None, reference=resolved.reference,
                    decoding=resolved.decoding, chat=resolved.chat, system=resolved.system,
                    guidance=resolved.guidance, **extra)


def explain(lm: Any, spec: SteerSpec, text: str, store: ArtifactStore | None = None) -> list[tuple[str, float]]:
    """Per-token scores of ``text`` under the steer ``spec`` (methods that explain text: LM-Steer),
    computed on ``lm`` while holding its lock (so it takes turns with generation)."""
    if not isinstance(text, str) or not text.strip():
        raise SteerlabError("text to explain must be a non-empty string")
    store = store or ArtifactStore()
    art = store.get(spec.artifact)
    steerer = get_steerer(art.method)
    if not steerer.explains:
        raise SteerlabError(f"{spec.artifact!r} is a {art.method!r} artifact, which does not explain text")
    ready = steerer.prepare(lm, Steer(art, spec.strength, dict(spec.options)))
    lm.require_weights("explaining text")
    with lm.lock:
        return steerer.explain(lm, art, text, spec.strength, ready.options)
