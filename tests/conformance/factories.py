"""How to build a small working Steer of each registered method on a tiny model.

Every method registered in ``steerlab.METHODS`` must have an entry here; the conformance suite
fails for a method without one, so new methods cannot skip it.
"""

from __future__ import annotations

from collections.abc import Callable

import steerlab
from steerlab.models.loading import LoadedModel
from tests import toy_method  # noqa: F401  (registers a method from outside the package)
from tests.helpers import PAIRS


def _vectors(lm: LoadedModel) -> steerlab.Steer:
    vec = steerlab.extract(lm, PAIRS, layers=[1, 2], read="mean")
    return steerlab.Steer(vec, 8.0)


def _lm_steer(lm: LoadedModel) -> steerlab.Steer:
    from steerlab.methods.lm_steer import train

    art = train(lm, PAIRS, rank=4, n_steps=3, batch_size=4, epsilon=1e-1, init_var=0.1, progress=False)
    return steerlab.Steer(art, 5.0)


def _steerlm(lm: LoadedModel) -> steerlab.Steer:
    from steerlab.methods.steerlm import Example, train_sft

    data = [Example(pos, neg, {"sentiment": 4}) for pos, neg in PAIRS] + [
        Example(neg, pos, {"sentiment": 0}) for pos, neg in PAIRS]
    art = train_sft(lm, data, r=4, lora_alpha=8, n_steps=2, batch_size=2, max_length=120, lr=1e-2, progress=False)
    return steerlab.Steer(art, 1.0, {"attributes": {"sentiment": 4}})


def tiny_dglm(lm: LoadedModel, seed: int = 0) -> steerlab.Steer:
    """A DGLM artifact of random tiny parts (384-d, the packaged encoder's width) for ``lm``."""
    import torch

    from steerlab.methods.dglm import DGLMArtifact, Probe
    from steerlab.methods.dglm.decoder import PromptGenerator, PromptGeneratorConfig
    from steerlab.methods.dglm.diffusion import Denoiser, DiffusionConfig
    from steerlab.methods.peft_lora import attention_modules

    torch.manual_seed(seed)
    diffusion = Denoiser(DiffusionConfig(dim=384, n_tokens=8, width=32, layers=1, heads=2))
    generator = PromptGenerator(PromptGeneratorConfig(dim=384, hidden=lm.hidden_size, k=2, width=32,
                                                      noise_features=8), embed_scale=1.0)
    lora = {}
    for name in attention_modules(lm.model):
        w = lm.model.get_submodule(name).weight
        n_out, n_in = (w.shape[1], w.shape[0]) if type(lm.model.get_submodule(name)).__name__ == "Conv1D" else w.shape
        lora[name] = (torch.randn(2, n_in) * 0.3, torch.randn(n_out, 2) * 0.3)
    probe = Probe(torch.randn(384), 0.0, torch.zeros(384), torch.ones(384))
    art = DGLMArtifact(diffusion, generator, lora, 1.0, {"sentiment": probe}, "all-minilm-l6-v2", lm.fingerprint,
                       {"name": "tiny-dglm"})
    return steerlab.Steer(art, 1.0, {"guide": "sentiment:positive", "steps": 2})


def _toy_bias(lm: LoadedModel) -> steerlab.Steer:
    from tests.toy_method import BiasSteerer

    art = BiasSteerer().fit(lm, ["The movie was wonderful", "send me the report"])
    return steerlab.Steer(art, 3.0, {"temperature": 2.0})


FACTORIES: dict[str, Callable[[LoadedModel], steerlab.Steer]] = {
    "vectors": _vectors,
    "lm_steer": _lm_steer,
    "steerlm": _steerlm,
    "dglm": tiny_dglm,
    "toy_bias": _toy_bias,  # a method from outside the package (tests/toy_method.py)
}
