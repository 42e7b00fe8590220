"""Data parallelism across machines: several vLLM engines with steerlab's plugin as Ray actors,
one request list spread over them, results back in order.

vLLM's own Ray executor serves one engine across GPUs (tensor / pipeline parallel); data
parallelism means whole replicas, each with its own model copy and its own continuous batching.
Each replica is a Ray actor holding a :class:`~steerlab.vllm.engine.VllmEngine`; rows travel as
plain JSON steering specs (artifact *names*: the shipped ones and those under
``$STEERLAB_ARTIFACTS``, which every node must see at the same path), never as pickled artifacts.

    replicas = VllmReplicas(2, "smollm2-135m")            # ray.init() on this machine, or address=
    texts = replicas.generate(prompts, [[{"artifact": "sentiment-vec", "strength": 4}], None, ...])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from steerlab.defaults import DEFAULT_MODEL
from steerlab.errors import SteerlabError
from steerlab.service.spec import SteerSpec


class _Replica:
    """Runs inside a Ray actor: one engine, specs resolved against its own artifact store."""

    def __init__(self, model: str, engine_kwargs: dict[str, Any]) -> None:
        from steerlab.vllm.engine import VllmEngine
        from steerlab.vllm.requests import PluginStore

        self.engine = VllmEngine(model, **engine_kwargs)
        self.store = PluginStore()

    def generate(self, prompts: list[str], rows: list[list[dict[str, Any]] | None],
                 kwargs: dict[str, Any]) -> list[str]:
        from steerlab.core.steerer import Steer

        def steer(d: dict[str, Any]) -> Steer:
            spec = SteerSpec.from_dict(d)
            return Steer(self.store.get(spec.artifact), spec.strength, dict(spec.options))

        steering = [tuple(steer(d) for d in row) if row else None for row in rows]
        out = self.engine.generate(prompts, steering, progress=False, **kwargs)
        return list(out)

    def ready(self) -> bool:
        return True


class VllmReplicas:
    """``n`` replicas in a Ray cluster (started here with ``ray.init()`` unless ``address`` names
    one); :meth:`generate` splits rows round-robin, runs the replicas concurrently and returns the
    texts in the rows' order. ``cpus`` / ``gpus``: Ray resources per replica."""

    def __init__(self, n: int, model: str = DEFAULT_MODEL, *, address: str | None = None, cpus: float = 1,
                 gpus: float = 0, runtime_env: dict[str, Any] | None = None, **engine_kwargs: Any) -> None:
        import ray

        if n < 1:
            raise SteerlabError(f"replicas must be >= 1, got {n}")
        if not ray.is_initialized():
            ray.init(address=address, runtime_env=runtime_env, include_dashboard=False, log_to_driver=False)
        actor = ray.remote(num_cpus=cpus, num_gpus=gpus)(_Replica)
        self.actors = [actor.remote(model, engine_kwargs) for _ in range(n)]
        ray.get([a.ready.remote() for a in self.actors])

    def generate(self, prompts: Sequence[str], steering: Sequence[Sequence[dict[str, Any]] | None] | None = None,
                 **kwargs: Any) -> list[str]:
        """Like :meth:`VllmEngine.generate`, with steering as per-row lists of JSON specs (or None)."""
        import ray

        rows = list(steering) if steering is not None else [None] * len(prompts)
        if len(rows) != len(prompts):
            raise SteerlabError(f"{len(rows)} steering rows for {len(prompts)} prompts")
        for row in rows:  # bad specs fail here, before any replica works
            for d in row or []:
                SteerSpec.from_dict(d)
        n = len(self.actors)
        shards = [list(range(i, len(prompts), n)) for i in range(n)]
        futures = [a.generate.remote([prompts[j] for j in idx], [list(rows[j] or []) or None for j in idx], kwargs)
                   for a, idx in zip(self.actors, shards) if idx]
        out: list[str] = [""] * len(prompts)
        for idx, texts in zip([s for s in shards if s], ray.get(futures)):
            for j, t in zip(idx, texts):
                out[j] = t
        return out

    def shutdown(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a)
        self.actors = []
