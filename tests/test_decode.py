"""The decode loop steerlab owns equals transformers' generate token for token, streams every
step, and stops each row on its own."""

from __future__ import annotations

import torch

import steerlab
from steerlab.generation.decode import decode
from steerlab.generation.decoding import Decoding
from tests.helpers import PAIRS

PROMPTS = ["The movie was", "hey send me the report asap please", "A"]


def _hf(lm, texts, n):  # noqa: ANN001, ANN202
    enc = lm.tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = lm.model.generate(**enc, max_new_tokens=n, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id,
                                temperature=None, top_p=None, top_k=None)
    return out[:, enc["input_ids"].shape[1]:]


def test_greedy_equals_transformers_generate(tiny) -> None:
    ours = decode(tiny, PROMPTS, Decoding(max_new_tokens=10))
    theirs = _hf(tiny, PROMPTS, 10)
    assert torch.equal(ours, theirs[:, : ours.shape[1]])


def test_steered_greedy_equals_transformers_generate(tiny) -> None:
    vec = steerlab.extract(tiny, PAIRS, layers=[1, 2])
    rows = [steerlab.Steer(vec, 6.0), None, steerlab.Steer(vec, -4.0, {"positions": "generated"})]
    with steerlab.patch(tiny, rows, batch_size=3):
        ours = decode(tiny, PROMPTS, Decoding(max_new_tokens=8))
    with steerlab.patch(tiny, rows, batch_size=3):
        theirs = _hf(tiny, PROMPTS, 8)
    assert torch.equal(ours, theirs[:, : ours.shape[1]])


def test_prefill_computes_only_the_last_positions_logits(tiny) -> None:
    # the prompt's other positions' logits are never read: (B, T, V) of them is wasted work and memory
    widths: list[int] = []
    handle = tiny.model.get_output_embeddings().register_forward_hook(
        lambda module, args, out: widths.append(out.shape[1]))
    try:
        decode(tiny, PROMPTS, Decoding(max_new_tokens=3))
    finally:
        handle.remove()
    assert widths == [1, 1, 1]


def test_seeded_sampling_is_reproducible(tiny_llama) -> None:
    d = Decoding(max_new_tokens=8, temperature=0.9, top_p=0.9, top_k=20)
    torch.manual_seed(3)
    a = decode(tiny_llama, PROMPTS, d)
    torch.manual_seed(3)
    b = decode(tiny_llama, PROMPTS, d)
    assert torch.equal(a, b)


def test_on_step_streams_every_token(tiny_llama) -> None:
    seen: list[torch.Tensor] = []
    ids = decode(tiny_llama, PROMPTS, Decoding(max_new_tokens=6),
                 on_step=lambda step, tokens, done: seen.append(tokens))
    assert torch.equal(torch.stack(seen, dim=1), ids)


def test_rows_stop_on_their_own(tiny_llama) -> None:
    tok = tiny_llama.tokenizer
    free = decode(tiny_llama, PROMPTS, Decoding(max_new_tokens=8))
    # a printable token of row 0 (random tiny models also emit partial UTF-8 bytes): row 0 stops right after it
    i = next(i for i in range(1, 7) if (t := tok.decode(free[0, i:i + 1])).strip() and t.isascii() and t.isprintable())
    stop = tok.decode(free[0, i:i + 1])
    stopped = decode(tiny_llama, PROMPTS, Decoding(max_new_tokens=8, stop=[stop]))
    assert torch.equal(stopped[0, : i + 1], free[0, : i + 1])
    assert stopped.shape[1] == i + 1 or bool((stopped[0, i + 1:] == tok.pad_token_id).all())
    for r in range(1, len(PROMPTS)):  # other rows run on unless their own text reaches the stop string
        if stop not in tok.decode(free[r]):
            assert torch.equal(stopped[r], free[r, : stopped.shape[1]])


def test_processors_see_every_step(tiny_llama) -> None:
    banned = int(decode(tiny_llama, ["The movie was"], Decoding(max_new_tokens=1))[0, 0])

    def ban(seq, scores):  # noqa: ANN001, ANN202
        scores = scores.clone()
        scores[:, banned] = float("-inf")
        return scores

    ids = decode(tiny_llama, ["The movie was"], Decoding(max_new_tokens=5), processors=[ban])
    assert banned not in ids[0].tolist()
