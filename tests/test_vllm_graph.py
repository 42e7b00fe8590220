"""The in-graph steering tables (steerlab.vllm.tables) equal the steerers' own hooks, for every
option of the vector method, without vLLM: a tiny model's site modules get the table ops, a greedy
loop fills each token's row as vLLM's runner does, and the tokens must equal steerlab.generate's."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import steerlab
from steerlab.core.steerer import Steer, get_steerer
from steerlab.errors import SteerlabError
from steerlab.methods.vectors import SteeringVector
from steerlab.vllm.capacity import Capacity, check_program
from steerlab.vllm.rows import RowPlanner, StepTokens
from steerlab.vllm.tables import SteeringTables, wrap_sites
from tests.helpers import make_tiny

PROMPTS = ["The movie was wonderful and", "hey", "Could you please send", "A quick brown fox jumps"]


def _vec(lm: steerlab.LoadedModel, seed: int, layers: tuple[int, ...] = (1, 2), site: str = "block") -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    directions = {la: 3 * torch.randn(lm.hidden_size, generator=g) for la in layers}
    stats = {str(la): {"pos_proj": 1.5, "neg_proj": -1.0} for la in layers}
    return SteeringVector(directions, model=lm.fingerprint, site=site, meta={"stats": stats})


def _graph_generate(lm: steerlab.LoadedModel, rows: list[tuple[Steer, ...]], n: int,
                    cap: Capacity) -> tuple[list[list[int]], RowPlanner]:
    """Greedy decoding with the table ops, rows written as the vLLM worker writes them."""
    tables = SteeringTables(lm.num_layers, lm.hidden_size, cap, torch.float32, torch.device("cpu"))
    wrap_sites(tables, lm.site_module, lm.num_layers)
    planner = RowPlanner(tables)
    enc = lm.tokenizer(PROMPTS, return_tensors="pt", padding=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]  # (B, T), left-padded
    b, t = ids.shape
    pad = (t - mask.sum(1)).numpy()  # (B,)
    plen = mask.sum(1).numpy()  # (B,)
    names = [f"r{i}" for i in range(b)]
    for name, row, p in zip(names, rows, plen):
        ops = []
        for st in row:
            steerer = get_steerer(st.artifact.method)
            site_ops = steerer.site_ops(lm, st.artifact, steerer.parse_options(st.options))
            assert site_ops is not None
            ops += [(op, float(st.strength)) for op in site_ops]
        planner.join(name, ops, int(p))
    token_req = np.repeat(np.arange(b), t)
    positions = (np.arange(t)[None, :] - pad[:, None]).reshape(-1)  # padding: negative, never attended
    planner.fill(StepTokens(tuple(names), token_req, positions, b * t))
    out = []
    with torch.no_grad():
        res = lm.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                       use_cache=True)
        for step in range(n):
            nxt = res.logits[:, -1].argmax(-1)  # (B,)
            out.append(nxt)
            mask = torch.cat([mask, torch.ones(b, 1, dtype=mask.dtype)], dim=1)
            pos = torch.from_numpy(plen + step)  # (B,) each row's next position
            planner.fill(StepTokens(tuple(names), np.arange(b), (plen + step).astype(np.int64), b))
            res = lm.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos[:, None],
                           past_key_values=res.past_key_values, use_cache=True)
    return torch.stack(out, 1).tolist(), planner


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
def test_graph_tables_equal_the_hooks_for_every_vector_option(arch: str, tiny_tokenizer: Any) -> None:
    hooked = make_tiny(arch, tiny_tokenizer)
    a, b, m = _vec(hooked, 2), _vec(hooked, 3, layers=(0, 3)), _vec(hooked, 4, layers=(1, 2), site="mlp")
    at = _vec(hooked, 5, layers=(2,), site="attn")
    rows: list[tuple[Steer, ...]] = [
        (Steer(a, 2.0), Steer(b, 1.5, {"layers": [3], "positions": "generated"}), Steer(m, 1.0, {"positions": 2})),
        (),
        (Steer(a, 1.0, {"operator": "ablate", "positions": "prompt"}), Steer(at, 2.0)),
        (Steer(b, 1.0, {"operator": "clamp", "layers": [0]}), Steer(a, -2.0, {"positions": 3}),
         Steer(m, 0.7, {"operator": "clamp", "clamp_value": 0.5})),
    ]
    n = 6
    want = [steerlab.generate(hooked, [p], steering=r or None, max_new_tokens=n, progress=False,
                              ignore_eos=True)[0] for p, r in zip(PROMPTS, rows)]
    graphed = make_tiny(arch, tiny_tokenizer)  # the same weights; its site modules get table ops
    got, planner = _graph_generate(graphed, rows, n, Capacity(requests=4, tokens=256))
    texts = [graphed.tokenizer.decode(x, skip_special_tokens=True) for x in got]
    assert texts == want
    assert len(set(texts)) == len(texts)  # the rows really differ
    for name in list(planner.live()):
        planner.leave(name)
    assert sorted(planner._free) == list(range(4))  # every row block returned


def test_unsteered_tokens_pass_through_bit_for_bit(tiny_tokenizer: Any) -> None:
    plain = make_tiny("llama", tiny_tokenizer)
    graphed = make_tiny("llama", tiny_tokenizer)
    tables = SteeringTables(graphed.num_layers, graphed.hidden_size, Capacity(requests=2, tokens=256), torch.float32,
                         torch.device("cpu"))
    wrap_sites(tables, graphed.site_module, graphed.num_layers)
    enc = plain.tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(plain.model(**enc).logits, graphed.model(**enc).logits)


def test_capacity_limits_refuse_with_the_setting_to_change(tiny_llama: Any) -> None:
    vec = _vec(tiny_llama, 1, layers=(1,))
    steerer = get_steerer("vectors")

    def ops(opts: dict[str, Any]) -> list[Any]:
        return steerer.site_ops(tiny_llama, vec, steerer.parse_options(opts)) or []

    cap = Capacity(projections=1, segments=3, sites=("block",))
    check_program(ops({"positions": 3}) + ops({"positions": "generated"}), cap)
    with pytest.raises(SteerlabError, match="STEERLAB_VLLM_GRAPH_SEGMENTS"):
        check_program(ops({"positions": 3}) + ops({"positions": 5}) + ops({"positions": "prompt"}), cap)
    with pytest.raises(SteerlabError, match="STEERLAB_VLLM_GRAPH_PROJECTIONS"):
        check_program(ops({"operator": "ablate"}) + ops({"operator": "clamp"}), cap)
    mlp = _vec(tiny_llama, 2, layers=(1,), site="mlp")
    with pytest.raises(SteerlabError, match="STEERLAB_VLLM_GRAPH_SITES"):
        check_program(steerer.site_ops(tiny_llama, mlp, steerer.parse_options({})) or [], cap)


def test_any_number_of_artifacts_in_flight_fit_the_tables(tiny_tokenizer: Any) -> None:
    """Rows hold their own vectors: more distinct artifacts than requests, all joined at once, each
    row equal to its own direction times strength; a request that leaves gives its rows back."""
    lm = make_tiny("llama", tiny_tokenizer)
    tables = SteeringTables(lm.num_layers, lm.hidden_size, Capacity(requests=3, tokens=16, sites=("block",)),
                            torch.float32, torch.device("cpu"))
    wrap_sites(tables, lm.site_module, lm.num_layers)
    planner = RowPlanner(tables)
    steerer = get_steerer("vectors")
    for round_ in range(4):  # 12 distinct artifacts through 3 request places
        vecs = [_vec(lm, 10 * round_ + i, layers=(1,)) for i in range(3)]
        for i, vec in enumerate(vecs):
            ops = steerer.site_ops(lm, vec, steerer.parse_options({})) or []
            planner.join(f"r{round_}-{i}", [(op, 2.0) for op in ops], 4)
        for i, vec in enumerate(vecs):
            first = planner._joined[f"r{round_}-{i}"].first_row
            assert torch.equal(tables.table("block", "add")[1, first], 2.0 * vec.directions[1])
        for i in range(3):
            planner.leave(f"r{round_}-{i}")
    assert sorted(planner._free) == [0, 1, 2]
