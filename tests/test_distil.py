"""Prompt distillation: the model's own instructed continuations as contrast pairs (tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import steerlab
from steerlab.data.pairs import text_hashes
from steerlab.errors import DataError, SteerlabError
from steerlab.eval.harness import _check_held_out
from steerlab.methods.vectors import distil, distil_pairs
from tests.helpers import run

OPENINGS = ["The film opens in a small town", "A detective returns to the city", "Two sisters inherit a farm"]
POS, NEG = "Continue the following text in a very positive, happy tone.", "Continue in a negative tone."
GEN = dict(max_new_tokens=4, temperature=1.0, top_p=0.9)


def test_pairs_share_the_opening_and_drop_the_instruction(tiny_llama) -> None:
    pairs = distil_pairs(tiny_llama, OPENINGS, POS, NEG, seed=3, **GEN)
    assert pairs.paired and len(pairs.positive) == len(pairs.negative) == len(OPENINGS)
    for o, p, n in zip(OPENINGS, pairs.positive, pairs.negative):
        assert p.startswith(o) and n.startswith(o)
        assert POS not in p and NEG not in n
    # each side is exactly what the model writes after instruction + separator + opening
    want = steerlab.generate(tiny_llama, [POS + "\n\n" + o for o in OPENINGS], seed=3, **GEN)
    assert pairs.positive == [o + c for o, c in zip(OPENINGS, want)]
    bare = distil_pairs(tiny_llama, OPENINGS, POS, "", seed=3, **GEN)
    assert bare.negative == [o + c for o, c in zip(OPENINGS, steerlab.generate(tiny_llama, OPENINGS, seed=3, **GEN))]


def test_rank_by_keeps_the_extreme_draw_per_side(tiny_llama) -> None:
    def score(texts: list[str]) -> list[float]:  # stands in for a sentiment scorer
        return [float(sum(map(ord, t)) % 97) for t in texts]

    pairs = distil_pairs(tiny_llama, OPENINGS, POS, NEG, seed=5, samples=3, rank_by=score, **GEN)
    for side, instruction, pick in ((pairs.positive, POS, max), (pairs.negative, NEG, min)):
        draws = [steerlab.generate(tiny_llama, [instruction + "\n\n" + o for o in OPENINGS], seed=5 + j, **GEN)
                 for j in range(3)]
        for i, o in enumerate(OPENINGS):
            candidates = [o + d[i] for d in draws]
            assert score([side[i]])[0] == pick(score(candidates))
            assert side[i] in candidates


@pytest.mark.parametrize("kwargs, match", [
    (dict(openings=[], positive_instruction=POS), "at least one opening"),
    (dict(openings=["ok", "  "], positive_instruction=POS), "opening 1"),
    (dict(openings=OPENINGS, positive_instruction=POS, negative_instruction=POS), "are the same"),
    (dict(openings=OPENINGS, positive_instruction=" ", negative_instruction=""), "at least one instruction"),
    (dict(openings=OPENINGS, positive_instruction=POS, samples=2), "needs a scorer"),
    (dict(openings=OPENINGS, positive_instruction=POS, samples=0), "samples"),
])
def test_bad_input_is_refused_before_generating(tiny_llama, kwargs, match) -> None:
    with pytest.raises(SteerlabError, match=match):
        distil_pairs(tiny_llama, **kwargs)


def test_distilled_vector_records_its_openings(tiny_llama) -> None:
    vec, pairs = distil(tiny_llama, OPENINGS, POS, NEG, layers=[1, 2], seed=1, **GEN)
    assert vec.layers == [1, 2] and vec.meta["provenance"]["read"] == "mean"
    prov = vec.meta["provenance"]
    assert set(text_hashes(OPENINGS)) <= set(prov["text_hashes"])
    assert prov["distilled"]["positive_instruction"] == POS and prov["distilled"]["n_openings"] == 3
    # the same reading of the same pairs gives the same direction
    again = steerlab.extract(tiny_llama, pairs, layers=[1, 2], read="mean")
    for layer in (1, 2):
        assert vec.directions[layer].equal(again.directions[layer])
    with pytest.raises(SteerlabError, match="evaluation prompts were used"):
        _check_held_out(vec, OPENINGS[:1])
    with pytest.raises(DataError, match="temperature"):
        distil(tiny_llama, OPENINGS, POS, temperature=0.0)


def test_cli_distil_writes_artifact_and_pairs(tiny_llama, tmp_path: Path, capsys) -> None:
    tiny_llama.model.save_pretrained(tmp_path / "m")
    tiny_llama.tokenizer.save_pretrained(tmp_path / "m")
    (tmp_path / "openings.txt").write_text("\n".join(OPENINGS) + "\n")
    base = ["distil", "--prompts", str(tmp_path / "openings.txt"), "--positive", POS, "--model", str(tmp_path / "m"),
            "--max-new-tokens", "3", "--layers", "1,2"]
    code, _, err = run(base + ["--out", str(tmp_path / "v"), "--pairs-out", str(tmp_path / "pairs.jsonl")], capsys)
    assert code == 0, err
    vec = steerlab.load_artifact(tmp_path / "v")
    assert vec.meta["provenance"]["distilled"]["negative_instruction"] == ""
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert [r["positive"][:len(o)] for r, o in zip(rows, OPENINGS)] == OPENINGS
    again = steerlab.extract(tiny_llama, str(tmp_path / "pairs.jsonl"), layers=[1, 2], read="mean")
    assert vec.directions[1].allclose(again.directions[1])
    # a second run refuses to replace the pairs file, before loading the model
    code, _, err = run(base + ["--out", str(tmp_path / "w"), "--pairs-out", str(tmp_path / "pairs.jsonl")], capsys)
    assert code != 0 and "exists" in err and not (tmp_path / "w").exists()
    code, _, err = run(base + ["--out", str(tmp_path / "w"), "--samples", "2"], capsys)
    assert code != 0 and "--rank-by" in err
