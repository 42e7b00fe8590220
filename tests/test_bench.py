"""The benchmark's mechanics on a tiny model: every case runs, ratios are paired per repeat and
carry a verdict (speed itself is measured by `steerlab bench`, never asserted in tests)."""

from __future__ import annotations

import steerlab
from steerlab.bench import RATIOS, bench_steering, per_row_vectors
from tests.helpers import PAIRS


def test_bench_runs_every_case_and_pairs_ratios(tiny_llama) -> None:
    vec = steerlab.extract(tiny_llama, PAIRS, layers=[1, 2, 3])
    r = bench_steering(tiny_llama, vec, new_tokens=3, batch=4, repeats=2)
    # no chat template here, no DGLM artifact
    assert set(r["ratios"]) == {k for k in RATIOS if not k.startswith(("steerlm_", "dglm_"))}
    for v in r["ratios"].values():
        assert len(v["paired"]) == 2 and v["min"] <= v["median"] <= v["max"]
        assert v["verdict"] in ("pass", "fail", "noise")


def test_per_row_case_is_hard(tiny_llama) -> None:
    vec = steerlab.extract(tiny_llama, PAIRS, layers=[1, 2, 3])
    steers = per_row_vectors(tiny_llama, vec, 8)
    layers = {s.artifact.layers[0] for s in steers}
    rules = {s.options["positions"] for s in steers}
    assert len(layers) == 3 and len(rules) == 4 and len({id(s.artifact) for s in steers}) == 8


def test_bench_dglm_cases_pair_each_length(tiny_llama) -> None:
    from tests.conformance.factories import tiny_dglm

    vec = steerlab.extract(tiny_llama, PAIRS, layers=[1, 2, 3])
    r = bench_steering(tiny_llama, vec, new_tokens=2, batch=2, repeats=1, dglm=tiny_dglm(tiny_llama).artifact)
    assert {k for k in r["ratios"] if k.startswith("dglm_")} == {"dglm_vs_unsteered_32", "dglm_vs_unsteered_64",
                                                                 "dglm_vs_unsteered_128"}
    assert r["tokens_per_s"]["b1_dglm_64"] > 0
