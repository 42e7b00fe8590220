"""On a CUDA GPU, steering computes what it computes on the CPU: per-row steering in one batch,
exact restore, and generation through the engine. Marked ``gpu``: skipped where there is none."""

from __future__ import annotations

import pytest
import torch

import steerlab
from tests.helpers import PAIRS, build_tokenizer, make_tiny

pytestmark = pytest.mark.gpu


def test_steering_on_the_gpu_equals_the_cpu() -> None:
    cpu = make_tiny("llama", build_tokenizer())
    vec = steerlab.extract(cpu, PAIRS, layers=[1, 2])
    prompts = ["The movie was", "A quick brown fox", "I walked into the room"]
    rows = [steerlab.Steer(vec, 4.0, {"layers": [1]}), None, steerlab.Steer(vec, -2.0, {"layers": [2]})]
    want = steerlab.generate(cpu, prompts, rows, max_new_tokens=8, progress=False)
    gpu = make_tiny("llama", build_tokenizer())
    gpu.model.to("cuda")
    enc = gpu.tokenizer(prompts, return_tensors="pt", padding=True).to("cuda")
    with torch.no_grad():
        base = gpu.model(**enc).logits
        with steerlab.apply(gpu, rows[0]):
            steered = gpu.model(**enc).logits
        again = gpu.model(**enc).logits
    assert not torch.equal(base, steered) and torch.equal(base, again)  # steers, restores exactly
    assert steerlab.generate(gpu, prompts, rows, max_new_tokens=8, progress=False) == want
