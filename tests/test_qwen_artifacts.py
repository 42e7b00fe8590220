"""The ``*-qwen1.5b`` artifacts on the real Qwen2.5-Coder-1.5B-Instruct (``make qwen`` installs it;
``make test`` does): one behaviour per artifact, measured on the attribute it steers.

The model takes ~6 GB in float32; it is loaded once for this module and freed after it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

import steerlab
from steerlab.artifacts import shipped
from steerlab.scoring.scorers import get_scorer

pytestmark = pytest.mark.slow

QWEN = "qwen2.5-1.5b"
KW = {"max_new_tokens": 16, "temperature": 1.0, "top_p": 0.9, "seed": 0, "progress": False, "batch_size": 16}


@pytest.fixture(scope="module")
def qwen() -> Iterator[steerlab.LoadedModel]:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a 1.5B model: the suite's one thread would triple these tests' time
    try:
        yield steerlab.load_model(QWEN)
    finally:
        torch.set_num_threads(threads)


def _steer(name: str, sign: float) -> steerlab.Steer:
    """The artifact at the catalogue's default setting (a strength that moves the attribute clearly;
    the eval card's within-budget choice can be too gentle for 8 prompts), pointed ``sign``."""
    rec = shipped()[name].default
    return steerlab.Steer(steerlab.load_artifact(name), sign * abs(float(rec["strength"])), rec.get("options", {}))


def _both_ways(lm: steerlab.LoadedModel, name: str, prompts: list[str], scorer: str) -> tuple[float, float]:
    """Mean score of generations steered towards the artifact's + pole and towards its − pole."""
    score = get_scorer(scorer)
    up = steerlab.generate(lm, prompts, _steer(name, 1.0), **KW)
    down = steerlab.generate(lm, prompts, _steer(name, -1.0), **KW)
    return float(np.mean(score(up))), float(np.mean(score(down)))


def test_qwen_artifacts_are_bound_to_the_model() -> None:
    names = [n for n in shipped() if n.endswith("-qwen1.5b")]
    assert {"sentiment-vec-qwen1.5b", "sentiment-distilled-qwen1.5b", "formality-vec-qwen1.5b",
            "toxicity-vec-qwen1.5b", "lmsteer-sentiment-qwen1.5b", "lmsteer-toxicity-qwen1.5b"} <= set(names)
    for name in names:
        entry = shipped()[name]
        assert entry.config()["model"]["name"] == QWEN


@pytest.mark.parametrize("name", ["sentiment-vec-qwen1.5b", "sentiment-distilled-qwen1.5b",
                                  "lmsteer-sentiment-qwen1.5b"])
def test_sentiment_steers_move_sentiment(qwen, name: str) -> None:
    prompts = steerlab.load_prompts("sentiment_neutral")[:8]
    up, down = _both_ways(qwen, name, prompts, "vader")
    assert up > down + 0.1, (up, down)


@pytest.mark.parametrize("name", ["toxicity-vec-qwen1.5b", "lmsteer-toxicity-qwen1.5b"])
def test_toxicity_steers_move_toxicity(qwen, name: str) -> None:
    """+ is towards toxic for both (the vector's positive side is the toxic tweets; LM-Steer's
    value + is the opposite of detoxifying)."""
    prompts = steerlab.load_prompts("toxic_hard")[:12]
    toxic, clean = _both_ways(qwen, name, prompts, "toxicity")
    assert clean < toxic, (clean, toxic)


def test_formality_vector_moves_register(qwen) -> None:
    """+ is the formal side (news and Commons sentences), − the casual one (tweets and chat)."""
    prompts = steerlab.load_prompts("formality")[:8]
    formal, casual = _both_ways(qwen, "formality-vec-qwen1.5b", prompts, "formality")
    assert formal > casual + 0.1, (formal, casual)
