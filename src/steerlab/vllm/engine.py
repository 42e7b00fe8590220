"""steerlab's ``generate`` on vLLM's offline engine: the bulk jobs (evaluation sweeps, SteerLM's
annotate and bootstrap sampling) on continuous batching, with the same prompts, steering and
decoding settings as :func:`steerlab.generate`.

Per row, steering splits three ways, by what each method says of itself (no branch on a method):

- prompt rewrites (``rewrite_prompt`` / ``rewrite_formatted``, e.g. SteerLM's attribute string)
  are applied here, around the chat template, exactly as steerlab's engine does, and the text is
  tokenised here too, so both engines see the same token ids;
- a method's LoRA (``Steerer.adapter``, e.g. SteerLM's) goes through vLLM's native multi-LoRA:
  exported once per (artifact, strength) as a PEFT adapter folder, one adapter per request;
- everything else (hooks) goes to the plugin's worker in ``extra_args["steering"]``, naming
  artifacts this engine saved into its own folder of ``$STEERLAB_ARTIFACTS``.

Not available on vLLM (refused with a clear error): classifier-free guidance (``guidance`` ≠ 1),
soft prompts (DGLM: its soft prompts would go in as prompt embeddings and its LoRA through vLLM's
multi-LoRA, but vLLM 0.32 cannot combine the two — with prompt embeddings on, every LoRA request
fails in vLLM's LoRA embedding layer), two LoRA adapters on one row, ``allow_mismatch``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from steerlab.core.artifact import Artifact
from steerlab.core.plan import per_row, with_option
from steerlab.core.steerer import Prepared
from steerlab.defaults import DEFAULT_MODEL
from steerlab.errors import SteerlabError
from steerlab.generation.decoding import Decoding
from steerlab.generation.rows import build_rows
from steerlab.models.layout import Layout
from steerlab.models.loading import LoadedModel
from steerlab.vllm.requests import ARTIFACTS_ENV


class VllmEngine:
    """One vLLM ``LLM`` with steerlab's plugin, and :meth:`generate` with steerlab's contract.

    ``model``: a packaged name (its safetensors conversion is used) or a model folder. Other
    keyword arguments go to ``vllm.LLM``. vLLM's default compiled mode steers inside the graph;
    ``enforce_eager=True`` (default: ``$STEERLAB_VLLM_EAGER``) skips compiling and gives the same
    results. ``enable_lora`` is needed for methods with adapters (SteerLM).

    Artifacts passed as objects are saved once into a private temporary folder (removed with the
    engine) that is appended to ``$STEERLAB_ARTIFACTS`` for this process, so the worker can load
    them by name."""

    def __init__(self, model: str = DEFAULT_MODEL, *, dtype: str = "bfloat16", max_model_len: int = 2048,
                 enable_lora: bool = False, max_lora_rank: int = 64, max_loras: int = 4, seed: int = 0,
                 enforce_eager: bool | None = None, **llm_kwargs: Any) -> None:
        os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # keep stdout for the caller's output
        from vllm import LLM

        from steerlab.models.packaged import PACKAGED, converted_dir

        path = str(converted_dir(PACKAGED[model])) if model in PACKAGED else model
        self._dir = Path(tempfile.mkdtemp(prefix="steerlab-vllm-"))
        weakref.finalize(self, shutil.rmtree, self._dir, True)  # our own folder: nothing else is in it
        (self._dir / "artifacts").mkdir()
        (self._dir / "lora").mkdir()
        current = os.environ.get(ARTIFACTS_ENV)
        os.environ[ARTIFACTS_ENV] = os.pathsep.join([*([current] if current else []), str(self._dir / "artifacts")])
        if not torch.cuda.is_available():  # on CPU vLLM reserves a share of RAM; the jobs here need far less
            llm_kwargs.setdefault("kv_cache_memory_bytes", 2 << 30)
        lora_kwargs: dict[str, Any] = ({"enable_lora": True, "max_lora_rank": max_lora_rank, "max_loras": max_loras}
                                       if enable_lora else {})
        if enforce_eager is None:  # compiling pays off on long runs; STEERLAB_VLLM_EAGER=1 skips it
            enforce_eager = os.environ.get("STEERLAB_VLLM_EAGER", "").strip().lower() in ("1", "true", "yes")
        self.llm = LLM(model=path, dtype=dtype, max_model_len=max_model_len, seed=seed, enforce_eager=enforce_eager,
                       **lora_kwargs, **llm_kwargs)
        self.enable_lora = enable_lora
        self.name = model
        tokenizer = self.llm.get_tokenizer()
        self._text_lm = LoadedModel(model=None, tokenizer=tokenizer, layout=Layout("", "", "", "", "", "", ""),
                                    name=model)
        self._names: dict[int, tuple[Artifact, str]] = {}  # id(artifact) -> (artifact, its name here)
        self._loras: dict[tuple[int, float], Any] = {}

    def _name(self, artifact: Artifact) -> str:
        hit = self._names.get(id(artifact))
        if hit is None:
            name = f"{artifact.method}-{uuid.uuid4().hex[:12]}"  # unique: another engine's folder may be listed first
            artifact.save(self._dir / "artifacts" / name)
            hit = self._names[id(artifact)] = (artifact, name)  # holding the artifact keeps its id unique
        return hit[1]

    def _lora(self, artifact: Artifact, strength: float, factors: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
              scaling: float) -> Any:
        from vllm.lora.request import LoRARequest

        key = (id(artifact), float(strength))
        if key not in self._loras:
            if not self.enable_lora:
                raise SteerlabError(f"{artifact.name!r} adds a LoRA adapter; create VllmEngine(..., enable_lora=True)")
            self._name(artifact)  # keeps the artifact alive with its id
            folder = self._dir / "lora" / f"lora-{len(self._loras)}"
            export_peft_lora(folder, factors, scaling, strength)
            self._loras[key] = LoRARequest(folder.name, len(self._loras) + 1, str(folder))
        return self._loras[key]

    def generate(self, prompts: str | Sequence[str], steering: Any = None, *, max_new_tokens: int | None = None,
                 temperature: float | None = None, top_p: float | None = None, top_k: int | None = None,
                 seed: int | None = None, decoding: Decoding | None = None, chat: bool = False,
                 system: str | None = None, stop: Sequence[str] | None = None, attributes: Any = None,
                 guidance: float = 1.0, guidance_reference: Any = None, ignore_eos: bool = False,
                 allow_mismatch: bool = False, progress: bool = True, batch_size: int | None = None) -> Any:
        """As :func:`steerlab.generate` (``batch_size`` is vLLM's business and ignored)."""
        decoding = Decoding.of_call(decoding, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                    top_k=top_k, seed=seed, stop=stop, ignore_eos=ignore_eos)
        if guidance != 1.0 or guidance_reference is not None:
            raise SteerlabError("classifier-free guidance (guidance != 1) is not available on the vLLM engine")
        if allow_mismatch:
            raise SteerlabError("allow_mismatch is not available on the vLLM engine: artifacts must match the model")
        single = isinstance(prompts, str)
        prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
        rows = per_row(steering, len(prompt_list))
        if attributes is not None:
            rows = with_option(rows, "attributes", attributes)
        # The same builder as steerlab's engine; options parsed once here, validated by the workers.
        pairs = build_rows(self._text_lm, prompt_list, rows, chat=chat, system=system, validate=False,
                           soft_prompts=False)
        requests, params, loras = [], [], []
        for i, pair in enumerate(pairs):
            hooked, lora = self.split(pair.row.steering)
            requests.append({"prompt_token_ids": self.tokenize(pair.row.text, pair.row.add_special_tokens)})
            params.append(self.sampling_params(decoding.for_row(i), hooked))
            loras.append(lora)
        outs = self.llm.generate(requests, params, lora_request=loras if any(loras) else None, use_tqdm=progress)
        texts_out = [o.outputs[0].text for o in outs]
        return texts_out[0] if single else texts_out

    def tokenize(self, text: str, add_special_tokens: bool) -> list[int]:
        """Token ids of an already conditioned text, as steerlab's engine tokenises it."""
        return list(self._text_lm.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    @staticmethod
    def sampling_params(decoding: Decoding, hooked: list[dict[str, Any]]) -> Any:
        """vLLM's sampling parameters for one row, its hook steering in ``extra_args``."""
        from vllm import SamplingParams

        d = decoding
        return SamplingParams(max_tokens=d.max_new_tokens, temperature=d.temperature, top_p=d.top_p, top_k=d.top_k,
                              seed=d.seed, stop=list(d.stop) or None, ignore_eos=d.ignore_eos,
                              extra_args={"steering": hooked} if hooked else None)

    def split(self, steers: Sequence[Prepared]) -> tuple[list[dict[str, Any]], Any]:
        """A row's steers as (the plugin's steering spec, the row's LoRA request or None)."""
        hooked: list[dict[str, Any]] = []
        lora = None
        for p in steers:
            st, steerer = p.steer, p.steerer
            if st.strength == 0:
                continue
            if steerer.makes_soft_prompts:
                raise SteerlabError(f"{st.artifact.name!r} ({st.artifact.method}) steers through soft prompts, which "
                                    "the vLLM engine cannot carry with its LoRA: vLLM 0.32 fails every LoRA request "
                                    "once prompt embeddings are on; use steerlab's own engine (--engine hf)")
            adapter = steerer.adapter(st.artifact)
            if adapter is not None:
                if lora is not None:
                    raise SteerlabError("vLLM applies one LoRA adapter per request; this row asks for two")
                strength = st.strength if steerer.adapter_follows_strength else 1.0
                lora = self._lora(st.artifact, strength, adapter[0], adapter[1])
                continue
            hooked.append({"artifact": self._name(st.artifact), "strength": st.strength, **dict(st.options)})
        return hooked, lora


def export_peft_lora(folder: Path, factors: Mapping[str, tuple[torch.Tensor, torch.Tensor]], scaling: float,
                     strength: float = 1.0) -> Path:
    """Write LoRA factors as a PEFT adapter folder (``adapter_config.json`` +
    ``adapter_model.safetensors``) that vLLM (and PEFT) load: ``W x + strength · scaling · B A x``
    (the strength is folded into B)."""
    if not factors:
        raise SteerlabError("no LoRA factors to export")
    r = int(next(iter(factors.values()))[0].shape[0])
    folder.mkdir(parents=True, exist_ok=False)
    tensors = {}
    for name, (a, b) in factors.items():
        tensors[f"base_model.model.{name}.lora_A.weight"] = a.detach().float().contiguous()
        tensors[f"base_model.model.{name}.lora_B.weight"] = (b.detach().float() * strength).contiguous()
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": scaling * r, "lora_dropout": 0.0,
              "bias": "none", "target_modules": sorted({n.rsplit(".", 1)[-1] for n in factors}),
              "fan_in_fan_out": False, "use_rslora": False, "use_dora": False, "modules_to_save": None}
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=1))
    return folder
