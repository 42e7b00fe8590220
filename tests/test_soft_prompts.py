"""Soft prompts through the decoding-time interface (what DGLM's prompt generator feeds the
decoder): a test-only method contributes (k, hidden) vectors before each row's prompt; decoding
equals a cache-free recomputation, a row equals its solo run among padded rows of other lengths,
and ``generate``, the engine and the service agree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor

import steerlab
from steerlab.core.artifact import Artifact
from steerlab.core.fingerprint import ModelFingerprint
from steerlab.core.hooks import HookSet
from steerlab.core.methods import MethodSpec, register_method, unregister_method
from steerlab.core.positions import PositionTracker
from steerlab.core.steerer import Application, Steer, Steerer
from steerlab.errors import SteerlabError
from steerlab.generation.decode import decode
from steerlab.generation.decoding import Decoding
from steerlab.generation.engine import Engine, Job
from steerlab.models.loading import LoadedModel


@dataclass(eq=False, repr=False)
class SoftPrompt(Artifact):
    method: ClassVar[str] = "toy_soft"

    vectors: Tensor  # (k, H)
    model: ModelFingerprint | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        return {}, {"vectors": self.vectors}

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Tensor], model: ModelFingerprint | None,
                   meta: dict[str, Any]) -> SoftPrompt:
        return cls(tensors["vectors"], model, meta)


@dataclass
class NoOptions:
    pass


class SoftSteerer(Steerer[SoftPrompt, NoOptions]):
    name = "toy_soft"
    options_cls = NoOptions

    def fit(self, lm: LoadedModel, data: Any, **config: Any) -> SoftPrompt:
        raise NotImplementedError

    def install(self, lm: LoadedModel, apps: Sequence[Application], hooks: HookSet,
                tracker: PositionTracker) -> None:
        pass  # soft prompts only

    def soft_prompt(self, lm: LoadedModel, artifact: SoftPrompt, prompt: str, strength: float,
                    options: NoOptions) -> Tensor:
        return strength * artifact.vectors[: 1 + len(prompt) % artifact.vectors.shape[0]]  # length varies by row


@pytest.fixture(scope="module", autouse=True)
def _method():
    register_method(MethodSpec("toy_soft", SoftPrompt, SoftSteerer, description="test-only soft prompts"))
    yield
    unregister_method("toy_soft")


def _soft(lm: LoadedModel, seed: int = 0, k: int = 4) -> SoftPrompt:
    g = torch.Generator().manual_seed(seed)
    return SoftPrompt(torch.randn(k, lm.hidden_size, generator=g) * 0.5)


def _greedy_without_cache(lm: LoadedModel, text: str, soft: Tensor, n: int) -> list[int]:
    ids = lm.tokenizer(text, return_tensors="pt")["input_ids"][0]
    out: list[int] = []
    table = lm.model.get_input_embeddings()
    with torch.no_grad():
        for _ in range(n):
            seq = torch.cat([ids, torch.tensor(out, dtype=torch.long)])
            emb = torch.cat([soft, table(seq)])[None]  # (1, k + T, H)
            logits = lm.model(inputs_embeds=emb).logits[0, -1]
            out.append(int(logits.argmax()))
    return out


def test_decode_with_soft_prompts_matches_recomputation_and_solo_rows(tiny_llama) -> None:
    lm = tiny_llama
    art = _soft(lm)
    texts = ["The movie was", "hey send me the report asap and also", "A"]
    soft = [art.vectors[:3], None, art.vectors[:1]]
    batch = decode(lm, texts, Decoding(max_new_tokens=5, ignore_eos=True), soft_prompts=soft)
    for r, (text, sp) in enumerate(zip(texts, soft)):
        solo = decode(lm, [text], Decoding(max_new_tokens=5, ignore_eos=True), soft_prompts=[sp])
        assert batch[r].tolist() == solo[0].tolist()
        if sp is not None:
            assert solo[0].tolist() == _greedy_without_cache(lm, text, sp, 5)
    plain = decode(lm, texts[1:2], Decoding(max_new_tokens=5, ignore_eos=True))
    assert batch[1].tolist() == plain[0].tolist()  # a row without a soft prompt is unchanged
    assert batch[0].tolist() != decode(lm, texts[:1], Decoding(max_new_tokens=5, ignore_eos=True))[0].tolist()
    with pytest.raises(SteerlabError, match="soft prompt"):
        decode(lm, texts[:1], Decoding(max_new_tokens=2), soft_prompts=[torch.zeros(2, 3)])


def test_generate_engine_and_service_agree_on_soft_prompts(tiny_llama) -> None:
    lm = tiny_llama
    art = _soft(lm, seed=1)
    prompts = ["The movie was", "A quick brown fox jumps", "I walked into the room"]
    steer = (Steer(art, 1.0),)
    want = steerlab.generate(lm, prompts, steer, max_new_tokens=6, progress=False)
    mixed = steerlab.generate(lm, prompts, [steer, (), steer], max_new_tokens=6, progress=False)
    plain = steerlab.generate(lm, prompts[1:2], max_new_tokens=6, progress=False)
    assert mixed[0] == want[0] and mixed[2] == want[2] and mixed[1] == plain[0]
    from steerlab.generation.rows import build_rows

    engine = Engine(lm, max_batch=4).start()
    try:
        streams = [engine.submit(Job(p.row.text, p.row.steering, soft_prompt=p.row.soft_prompt,
                                     decoding=Decoding(max_new_tokens=6)))
                   for p in build_rows(lm, prompts, steer)]
        got = [s.result(timeout=60)[0] for s in streams]
    finally:
        engine.stop()
    assert got == want
