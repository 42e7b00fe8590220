"""What a vLLM request asks of steerlab: the ``steering`` entry of ``SamplingParams.extra_args``,
parsed into steers against the plugin's artifact store. No vLLM import here: the frontend's
admission check and the worker share this code, and tests run it without vLLM.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from steerlab.core.fingerprint import ModelFingerprint
from steerlab.core.methods import get_method
from steerlab.core.site_ops import SiteOp
from steerlab.core.steerer import Prepared, Steer, get_steerer
from steerlab.errors import SteerlabError
from steerlab.models.loading import LoadedModel
from steerlab.service.resolve import ArtifactStore
from steerlab.service.spec import SteerSpec

STEERING_KEY = "steering"
ARTIFACTS_ENV = "STEERLAB_ARTIFACTS"


def parse_steering(extra_args: Mapping[str, Any] | None) -> list[SteerSpec]:
    """The steers a request's ``extra_args`` ask for (``[]``: unsteered). Accepts one steer (an
    object or an artifact name) or a list of them, or that JSON as a string — the form vLLM's HTTP
    ``vllm_xargs`` carries, since its values may only be strings, numbers or lists of them;
    anything else is a :class:`SteerlabError`."""
    if not extra_args or extra_args.get(STEERING_KEY) is None:
        return []
    raw = _json_or_name(extra_args[STEERING_KEY])
    if isinstance(raw, (str, Mapping)):
        raw = [raw]
    if isinstance(raw, list):
        raw = [_json_or_name(x) for x in raw]
    if not isinstance(raw, list):
        raise SteerlabError(f"'steering' must be a steer or a list of steers, got {type(raw).__name__}")
    return [SteerSpec.from_dict(x) for x in raw]


def _json_or_name(x: Any) -> Any:
    """A string holding a JSON object or list, decoded; other values (artifact names) as they are."""
    if isinstance(x, str) and x.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(x)
        except ValueError as e:
            raise SteerlabError(f"'steering' is not valid JSON: {e}") from None
    return x


def steering_digest(extra_args: Mapping[str, Any] | None) -> str | None:
    """A stable digest of a request's steering (None when unsteered), for keying cached prefixes.
    Unparseable steering gets a digest too: such a request is refused before it runs anyway."""
    if not extra_args or extra_args.get(STEERING_KEY) is None:
        return None
    try:
        canon = json.dumps(extra_args[STEERING_KEY], sort_keys=True, separators=(",", ":"), default=repr)
    except (TypeError, ValueError):
        canon = repr(extra_args[STEERING_KEY])
    return hashlib.sha256(canon.encode()).hexdigest()[:32]


class PluginStore:
    """The artifacts requests may name: the shipped ones plus every artifact directory directly
    under the folders of ``$STEERLAB_ARTIFACTS`` (``os.pathsep``-separated; named by their folder,
    the first folder winning a clash). A name not known yet triggers one re-scan, so artifacts
    copied in while the engine runs are picked up (hot-loading); a changed artifact is reloaded
    (the store keys its cache by the config's modification time). Requests never name a path."""

    def __init__(self, directory: str | Path | None = None) -> None:
        env = os.environ.get(ARTIFACTS_ENV, "")
        self.directories = [Path(directory)] if directory is not None else [Path(d) for d in env.split(os.pathsep) if d]
        self._store = ArtifactStore(self._scan(), allow_paths=False)
        self._lock = threading.Lock()

    def _scan(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for folder in self.directories:
            if folder.is_dir():
                for p in sorted(folder.iterdir()):
                    if (p / "steer_config.json").is_file():
                        found.setdefault(p.name, p)
        return found

    def refresh(self) -> None:
        """Add the artifact folders that appeared since the last scan."""
        with self._lock:
            known = set(self._store.names())
            for new, path in self._scan().items():
                if new not in known:
                    self._store.add(new, path)

    def names(self) -> list[str]:
        """Every name a request may use now (after a re-scan)."""
        self.refresh()
        return self._store.names()

    def get(self, name: str) -> Any:
        if name not in self._store.names():
            self.refresh()
        return self._store.get(name)


@dataclass
class ServedModel:
    """What the frontend knows of the served model before any worker runs (its transformers
    config and checkpoint folder): enough for the steerers' checks of an artifact against it
    (fingerprint, layer range, widths), so a mismatch is refused at admission."""

    name: str
    config: Any  # the transformers config vLLM read
    model_dir: str | None
    compiled: bool = False  # the engine runs compiled: hook-only methods other than the head's are refused

    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @cached_property
    def fingerprint(self) -> ModelFingerprint:
        from steerlab.vllm.view import fingerprint_from_checkpoint

        return fingerprint_from_checkpoint(self.name, self.config, self.model_dir)

    def check_layers(self, layers: Any) -> list[int]:
        return LoadedModel.check_layers(self, layers)  # type: ignore[arg-type]


SERVED: list[ServedModel] = []
"""The models whose engines this process built (set by the plugin as vLLM builds each config);
admission checks against the latest, the one a process serves."""


def is_compiled(config: Any) -> bool:
    """Whether a vLLM config runs the model through torch.compile or captured CUDA graphs, where
    per-call hooks on decoder modules never run."""
    cc = config.compilation_config
    return int(getattr(cc, "mode", 0) or 0) != 0 or str(getattr(cc.cudagraph_mode, "name", "NONE")) != "NONE"


@dataclass(frozen=True)
class RequestSteer:
    """One steer of a request, prepared (options parsed once, validated against the served model
    where one is given) with its table-driven ops (None: the method steers through hooks)."""

    prepared: Prepared
    site_ops: list[SiteOp] | None


def request_steers(specs: list[SteerSpec], store: PluginStore, served: Any = None, *,
                   compiled: bool | None = None) -> list[RequestSteer]:
    """Steers for one request, checked: known artifacts, a method that runs inside vLLM (steering
    through hooks alone), valid options, and — given ``served`` (a :class:`ServedModel` or the
    worker's model view) — each steerer's own check of the artifact against the served model,
    its site ops, and whether they fit the graph's tables. ``compiled`` (default: the served
    model's mode) refuses methods that steer through decoder hooks alone."""
    steers = []
    for spec in specs:
        art = store.get(spec.artifact)
        steerer_cls = get_method(art.method).steerer_cls
        if steerer_cls.steers_prompt:
            raise SteerlabError(f"{spec.artifact!r} is a {art.method!r} artifact, which steers through the prompt; "
                                "inside vLLM only methods that steer through hooks alone run (activation vectors, "
                                "LM-Steer)")
        # parses every option (unknown names and bad values fail here) and validates against `served`
        steers.append(get_steerer(art.method).prepare(served, Steer(art, spec.strength, dict(spec.options))))
    if served is None:
        return [RequestSteer(p, None) for p in steers]
    compiled = bool(getattr(served, "compiled", False)) if compiled is None else compiled
    out, ops = [], []
    for p in steers:
        site_ops = p.steerer.site_ops(served, p.artifact, p.options)
        if site_ops is not None:
            ops += site_ops
        elif compiled and not p.steerer.head_only:
            raise SteerlabError(f"{p.artifact.name!r} ({p.steerer.name}) steers through decoder hooks, which "
                                "do not run in vLLM's compiled graph; start the engine with "
                                "enforce_eager=True (--enforce-eager) to use it")
        out.append(RequestSteer(p, site_ops))
    from steerlab.vllm.graph import Capacity, check_program

    check_program(ops, Capacity.from_env(requests=1, tokens=1))
    return out
