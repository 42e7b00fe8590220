"""What a vLLM request asks of steerlab: the ``steering`` entry of ``SamplingParams.extra_args``,
parsed into steers against the plugin's artifact store. No vLLM import here: the frontend's
admission check and the worker share this code, and tests run it without vLLM.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from steerlab.core.fingerprint import ModelFingerprint
from steerlab.core.methods import get_method
from steerlab.core.site_ops import SiteOp
from steerlab.core.steerer import Prepared, Steer, get_steerer
from steerlab.errors import SteerlabError
from steerlab.models.loading import LoadedModel
from steerlab.service.resolve import ArtifactStore, artifact_stamp
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


def steering_digest(extra_args: Mapping[str, Any] | None, prompt_len: int | None = None,
                    store: PluginStore | None = None) -> str | None:
    """A digest of everything a request's cached KV depends on through its steering (None when
    unsteered), for keying cached prefixes: each steer's artifact *content* (``store`` given: a
    hash of its files, so an artifact replaced on disk never reuses KV computed with the old one),
    strength and options, and ``prompt_len`` where a position rule depends on it (``prompt`` and
    ``generated``: vLLM caches blocks of generated tokens too, and turn 2 of a chat is turn 1's
    prompt and answer, where the answer's tokens become prompt). An integer rule ``k`` steers
    positions >= k whatever the prompt, so it needs no prompt length. Steering that cannot be
    parsed or resolved gets a digest no other request shares (it is refused at admission anyway)."""
    if not extra_args or extra_args.get(STEERING_KEY) is None:
        return None
    try:
        specs = parse_steering(extra_args)
        steers = [{"artifact": s.artifact, "content": store.digest(s.artifact) if store is not None else "",
                   "strength": s.strength, "options": dict(s.options)} for s in specs]
    except Exception:  # noqa: BLE001 - never fail the scheduler; never share such a prefix
        return "unresolved-" + uuid.uuid4().hex
    canon: dict[str, Any] = {"steers": steers}
    if prompt_len is not None and any(str(s.options.get("positions", "all")) in ("prompt", "generated")
                                      for s in specs):
        canon["prompt_len"] = int(prompt_len)
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class PluginStore:
    """The artifacts requests may name: the shipped ones plus every artifact directory directly
    under the folders of ``$STEERLAB_ARTIFACTS`` (``os.pathsep``-separated; named by their folder,
    the first folder winning a clash). A name not known yet triggers one re-scan, so artifacts
    copied in while the engine runs are picked up (hot-loading); a changed artifact is reloaded
    (the store keys its cache by the config's modification time). Requests never name a path."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self._fixed = [Path(directory)] if directory is not None else None
        self._store = ArtifactStore(self._scan(), allow_paths=False)
        self._lock = threading.Lock()
        self._digests: dict[Path, tuple[tuple[Any, ...], str]] = {}

    @property
    def directories(self) -> list[Path]:
        """The folders scanned: the one given, else ``$STEERLAB_ARTIFACTS`` as it is now (an engine
        started later in the process may have added its own folder)."""
        if self._fixed is not None:
            return self._fixed
        return [Path(d) for d in os.environ.get(ARTIFACTS_ENV, "").split(os.pathsep) if d]

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

    def digest(self, name: str) -> str:
        """A hash of the files of artifact ``name`` (its config and tensors), recomputed only when
        a file's size, modification time or inode changes."""
        if name not in self._store.names():
            self.refresh()
        path = self._store.path(name)
        stamp = artifact_stamp(path)  # (relative name, size, mtime, inode) per file, sorted
        with self._lock:
            hit = self._digests.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        h = hashlib.sha256()
        for rel, *_ in stamp:
            h.update(rel.encode() + b"\0")
            with open(path / rel, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        value = h.hexdigest()[:32]
        with self._lock:
            self._digests[path] = (stamp, value)
        return value


_SHARED: list[PluginStore] = []


def shared_store() -> PluginStore:
    """The process's one store: admission, the prefix-cache key and the worker resolve names (and
    cache what they prepared) through it."""
    if not _SHARED:
        _SHARED.append(PluginStore())
    return _SHARED[0]


@dataclass
class ServedModel:
    """What the frontend knows of the served model before any worker runs (its transformers
    config, checkpoint folder and vLLM's settings): enough for the steerers' checks of an artifact
    against it (fingerprint, layer range, widths) and for every refusal the worker would otherwise
    meet inside a step, so such a request is refused at admission."""

    name: str
    config: Any  # the transformers config vLLM read
    model_dir: str | None
    compiled: bool = False  # the engine runs compiled: hook-only methods other than the head's are refused
    unsteerable: str | None = None  # why this engine steers nothing (every steered request is refused)
    site_refusals: dict[str, str] = field(default_factory=dict)  # site -> why it cannot be steered here
    speculative: bool = False  # speculative decoding: position rules and head hooks are refused

    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @cached_property
    def fingerprint(self) -> ModelFingerprint:
        from steerlab.models.weightless import fingerprint_from_checkpoint

        return fingerprint_from_checkpoint(self.name, self.config, self.model_dir)

    def check_layers(self, layers: Any) -> list[int]:
        return LoadedModel.check_layers(self, layers)  # type: ignore[arg-type]


UNFIT: list[str] = []
"""Set by the plugin where this vLLM release moved an internal it touches (:mod:`steerlab.vllm.contracts`)."""


def unsteerable_reason(vllm_config: Any) -> str | None:
    """Why an engine with this config cannot steer at all (None: it can). The worker then does not
    attach, and admission refuses every steered request with this reason."""
    if UNFIT:
        return UNFIT[0]
    model = vllm_config.model_config
    if getattr(model, "runner_type", "generate") != "generate":
        return f"this vLLM engine runs a {model.runner_type} model; steerlab steers text generation only"
    parallel = vllm_config.parallel_config
    if int(getattr(parallel, "pipeline_parallel_size", 1) or 1) > 1:
        return "steering is not available with pipeline parallelism (pipeline_parallel_size > 1)"
    if bool(getattr(parallel, "enable_dbo", False)) or int(getattr(parallel, "ubatch_size", 0) or 0) > 1:
        return ("steering is not available with micro-batching (enable_dbo / ubatch_size): it runs the layers on "
                "slices of a step's tokens")
    if bool(getattr(vllm_config.cache_config, "kv_sharing_fast_prefill", False)):
        return ("steering is not available with kv_sharing_fast_prefill: it runs the later layers on a slice of a "
                "step's tokens")
    if bool(getattr(model, "is_multimodal_model", False)):
        return "steering is not available on multimodal models yet (their text stack is not found as a decoder)"
    model_cls = _model_class(vllm_config)
    if model_cls is not None and not callable(getattr(model_cls, "compute_logits", None)):
        return f"vLLM's {model_cls.__name__} has no compute_logits, where steering reads the sampled rows"
    return None


def _model_class(vllm_config: Any) -> Any:
    """The vLLM model class an engine with this config builds (None where it cannot be resolved)."""
    model = vllm_config.model_config
    try:
        model_cls, _ = model.registry.resolve_model_cls(model.architectures, model)
    except Exception:  # noqa: BLE001 - any failure to resolve is an unknown architecture
        return None
    return model_cls


def site_refusals(vllm_config: Any) -> dict[str, str]:
    """Sites this model cannot be steered at, with the reason: ``block`` where vLLM's decoder
    layers follow a convention steerlab does not know (:mod:`steerlab.vllm.conventions`); ``mlp``
    and ``attn`` on parallel blocks at tensor parallel > 1 (each rank holds a partial sum there)."""
    from steerlab.vllm.conventions import model_convention, parallel_block, unknown_block

    model_cls = _model_class(vllm_config)
    if model_cls is None:
        arch = getattr(vllm_config.model_config, "architectures", None) or ["?"]
        return {"block": unknown_block(str(arch[0]))}
    out: dict[str, str] = {}
    if model_convention(model_cls) is None:
        out["block"] = unknown_block(model_cls.__name__)
    tp = int(getattr(vllm_config.parallel_config, "tensor_parallel_size", 1) or 1)
    if tp > 1 and parallel_block(model_cls):
        for site in ("mlp", "attn"):
            out[site] = (f"{model_cls.__name__} adds attention and MLP in one parallel block, reduced together across "
                         f"tensor-parallel ranks (tensor_parallel_size={tp}); steer site 'block'")
    return out


SERVED: list[ServedModel] = []
"""The models whose engines this process admits requests for (set by the plugin as each frontend's
input processor is built); admission checks against the latest, the one a process serves."""


def served_from_config(vllm_config: Any) -> ServedModel:
    """The :class:`ServedModel` of an engine's config, as every frontend builds it."""
    model = vllm_config.model_config
    name = model.served_model_name if isinstance(model.served_model_name, str) else str(model.model)
    reason = unsteerable_reason(vllm_config)
    return ServedModel(name, model.hf_text_config, str(model.model), compiled=is_compiled(vllm_config),
                       unsteerable=reason, site_refusals={} if reason else site_refusals(vllm_config),
                       speculative=vllm_config.speculative_config is not None)


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


_PREPARED: OrderedDict[tuple[Any, ...], tuple[list[Any], list[RequestSteer]]] = OrderedDict()
_PREPARED_MAX = 1024
_PREPARED_LOCK = threading.Lock()


def request_steers(specs: list[SteerSpec], store: PluginStore, served: Any = None, *,
                   compiled: bool | None = None) -> list[RequestSteer]:
    """:func:`prepare_request_steers`, once per distinct steering, artifact version and served model
    in a process: admission, the worker and every later request with the same steering reuse it
    (an artifact reloaded from disk is a new object, so a new entry). Refusals are not cached."""
    arts = [store.get(s.artifact) for s in specs]
    key = (tuple((s.artifact, float(s.strength), json.dumps(dict(s.options), sort_keys=True, default=repr))
                 for s in specs), tuple(id(a) for a in arts), id(served), compiled)
    with _PREPARED_LOCK:
        hit = _PREPARED.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], [*arts, served])):
            _PREPARED.move_to_end(key)
            return list(hit[1])
    out = prepare_request_steers(specs, store, served, compiled=compiled)
    with _PREPARED_LOCK:
        _PREPARED[key] = ([*arts, served], out)  # held, so the ids in the key stay theirs
        while len(_PREPARED) > _PREPARED_MAX:
            _PREPARED.popitem(last=False)
    return list(out)


def prepare_request_steers(specs: list[SteerSpec], store: PluginStore, served: Any = None, *,
                           compiled: bool | None = None) -> list[RequestSteer]:
    """Steers for one request, checked: known artifacts, a method that runs inside vLLM (steering
    through hooks alone), valid options, and — given ``served`` (a :class:`ServedModel` or the
    worker's model view) — each steerer's own check of the artifact against the served model,
    its site ops, and whether they fit the graph's tables. ``compiled`` (default: the served
    model's mode) refuses methods that steer through decoder hooks alone."""
    unsteerable = getattr(served, "unsteerable", None)
    if specs and unsteerable:
        raise SteerlabError(unsteerable)
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
    refusals: dict[str, str] = getattr(served, "site_refusals", {})
    speculative = bool(getattr(served, "speculative", False))
    out, ops = [], []
    for p in steers:
        site_ops = p.steerer.site_ops(served, p.artifact, p.options)
        if site_ops is not None:
            ops += site_ops
            for op in site_ops:
                if op.site in refusals:
                    raise SteerlabError(refusals[op.site])
                if speculative and op.positions != "all":
                    raise SteerlabError(f"position rule {op.positions!r} is not available with speculative decoding "
                                        "(a step's draft tokens shift where a request's segments begin); use "
                                        "positions 'all' or an engine without speculative decoding")
        elif speculative:
            raise SteerlabError(f"{p.artifact.name!r} ({p.steerer.name}) steers at the LM head, one row per request; "
                                "speculative decoding scores several rows per request, so it is not available there")
        elif compiled and not p.steerer.head_only:
            raise SteerlabError(f"{p.artifact.name!r} ({p.steerer.name}) steers through decoder hooks, which "
                                "do not run in vLLM's compiled graph; start the engine with "
                                "enforce_eager=True (--enforce-eager) to use it")
        out.append(RequestSteer(p, site_ops))
    from steerlab.vllm.capacity import Capacity, check_program

    check_program(ops, Capacity.from_env(requests=1, tokens=1))
    return out
