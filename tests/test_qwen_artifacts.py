"""The ``*-qwen1.5b`` artifacts on the real Qwen2.5-Coder-1.5B-Instruct (``make qwen`` installs it;
``make test`` does): one behaviour per artifact, measured on the attribute it steers.

The model takes ~6 GB in float32; it is loaded once for this module and freed after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext

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
    """The artifact at its recommended setting, pointed ``sign`` times its recommended strength."""
    rec = shipped()[name].recommended
    return steerlab.Steer(steerlab.load_artifact(name), sign * abs(float(rec["strength"])), rec.get("options", {}))


def _both_ways(lm: steerlab.LoadedModel, name: str, prompts: list[str], scorer: str) -> tuple[float, float]:
    """Mean score of generations steered towards the artifact's + pole and towards its − pole."""
    score = get_scorer(scorer)
    up = steerlab.generate(lm, prompts, _steer(name, 1.0), **KW)
    down = steerlab.generate(lm, prompts, _steer(name, -1.0), **KW)
    return float(np.mean(score(up))), float(np.mean(score(down)))


def test_qwen_artifacts_are_bound_to_the_model() -> None:
    names = [n for n in shipped() if n.endswith("-qwen1.5b")]
    assert {"sentiment-vec-qwen1.5b", "formality-vec-qwen1.5b", "toxicity-vec-qwen1.5b",
            "lmsteer-sentiment-qwen1.5b", "lmsteer-toxicity-qwen1.5b"} <= set(names)
    for name in names:
        entry = shipped()[name]
        assert entry.config()["model"]["name"] == QWEN


@pytest.mark.parametrize("name", ["sentiment-vec-qwen1.5b", "lmsteer-sentiment-qwen1.5b"])
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


FORMAL_CASUAL = [
    ("I would be grateful if you could confirm the appointment.", "can u confirm the appt lol"),
    ("Please find the requested documents attached.", "here's the stuff u wanted"),
    ("We regret to inform you that the event has been postponed.", "ugh the party got pushed back"),
    ("Kindly let me know whether this arrangement suits you.", "lmk if that works 4 u"),
    ("Thank you for your prompt response.", "thx for getting back so fast!!"),
    ("I am afraid I shall be unable to attend.", "nah can't make it sorry"),
]


def _formal_margin(lm: steerlab.LoadedModel, steer: steerlab.Steer | None) -> float:
    """Mean over the pairs of log p(formal) − log p(casual) after a neutral opening, teacher-forced."""
    margins = []
    for formal, casual in FORMAL_CASUAL:
        logps = []
        for text in (formal, casual):
            ids = lm.tokenizer("Message: " + text, return_tensors="pt")["input_ids"]  # (1, T)
            with steerlab.patch(lm, steer) if steer is not None else nullcontext(), torch.no_grad():
                logits = lm.model(input_ids=ids).logits[0, :-1].float()  # (T-1, V)
            logps.append(float(torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None]).sum()))
        margins.append(logps[0] - logps[1])
    return float(np.mean(margins))


def test_formality_vector_moves_likelihood_towards_formal(qwen) -> None:
    """Sentences written for this test (not the extraction pairs): steering + makes the formal
    wording of each pair likelier against its casual wording, steering − the reverse."""
    name = "formality-vec-qwen1.5b"
    plain = _formal_margin(qwen, None)
    assert _formal_margin(qwen, _steer(name, 1.0)) > plain > _formal_margin(qwen, _steer(name, -1.0))
