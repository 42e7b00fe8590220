"""Evaluation harness: metrics exact on hand-computed cases, scorers point the right way,
report schema, strength choice, and a quick run on a tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import steerlab
from steerlab.eval import metrics as M
from steerlab.eval.harness import choose_strength, evaluate
from steerlab.eval.perplexity import conditional_perplexity
from steerlab.eval.plots import pareto_front
from steerlab.eval.protocol import ConditionResult, Protocol
from steerlab.eval.tasks import TASKS
from steerlab.scoring.scorers import get_scorer
from tests.helpers import PAIRS


def test_distinct_n_hand_computed() -> None:
    # prompt 1: "a b a" + "a b" -> words 5; unigrams {a,b}=2; bigrams {ab, ba}=2; trigrams {aba}=1
    # prompt 2: "x y z" -> words 3; 3 / 2 / 1 distinct
    samples = [["a b a", "a b"], ["x y z"]]
    assert M.distinct_n(samples, 1) == pytest.approx((2 / 5 + 3 / 3) / 2)
    assert M.distinct_n(samples, 2) == pytest.approx((2 / 5 + 2 / 3) / 2)
    assert M.distinct_n(samples, 3) == pytest.approx((1 / 5 + 1 / 3) / 2)


def test_repetition_and_toxicity_aggregates() -> None:
    assert M.repetition_rate("a b c a b c") == pytest.approx(1 - 3 / 4)
    assert M.repetition_rate("one two") == 0.0
    avg_max, prob = M.avg_max_and_probability([[0.1, 0.7], [0.2, 0.3], [0.9]])
    assert avg_max == pytest.approx((0.7 + 0.3 + 0.9) / 3)
    assert prob == pytest.approx(2 / 3)


def test_bootstrap_ci_brackets_the_mean() -> None:
    vals = [0.0, 1.0] * 20
    lo, hi = M.bootstrap_ci(vals, seed=1)
    assert lo < 0.5 < hi and 0.25 < lo and hi < 0.75
    assert M.bootstrap_ci([0.3]) == (0.3, 0.3)


def test_conditional_perplexity_matches_hand_computation(tiny_llama) -> None:
    lm = tiny_llama
    prompt, cont = "The movie was", " wonderful and I loved it."
    res = conditional_perplexity(lm, [prompt], [cont])
    full = lm.tokenizer(prompt + cont, return_tensors="pt")["input_ids"]
    n_prompt = len(lm.tokenizer(prompt)["input_ids"])
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(full).logits[0, :-1].float(), -1)
    nll = -logp.gather(-1, full[0, 1:, None]).squeeze(-1)  # (T-1,)
    expected = math.exp(float(nll[n_prompt - 1:].mean()))
    assert res.per_sample[0] == pytest.approx(expected, rel=1e-4)
    assert res.total == pytest.approx(expected, rel=1e-4)


def test_perplexity_filters_extreme_values(tiny_llama) -> None:
    res = conditional_perplexity(tiny_llama, ["The movie was"] * 2, [" good", " good"], max_ppl=1.0)
    assert res.n_filtered == 2 and math.isnan(res.mean) and not math.isnan(res.total)


@pytest.mark.parametrize("name", ["vader", "sentiment"])
def test_sentiment_scorers_point_the_right_way(name: str) -> None:
    score = get_scorer(name)
    pos, neg = score(["What a wonderful, delightful film. I loved it.",
                      "A terrible, boring mess. I hated every minute."])
    assert pos > neg


def test_formality_scorer_ranks_register_not_topic() -> None:
    """The shipped pairs say the same thing formally and casually; the probe never saw them."""
    cs = steerlab.as_contrast("formality")
    formal = get_scorer("formality")(cs.positive[:40])
    casual = get_scorer("formality")(cs.negative[:40])
    assert sum(f > c for f, c in zip(formal, casual)) >= 36


def test_toxicity_scorers_agree_on_obvious_cases() -> None:
    texts = ["You are a stupid fucking idiot.", "Thank you for the lovely afternoon tea."]
    tox = get_scorer("toxicity")(texts)
    lex = get_scorer("profanity-lexicon")(texts)
    assert tox[0] > 0.5 > tox[1]
    assert lex == [1.0, 0.0]


def test_probe_scorer_from_labelled_jsonl(tmp_path: Path) -> None:
    from steerlab.scoring.probes import EmbeddingProbe, train_probe

    pos = [f"I really love this {x}, it is great" for x in ("film", "book", "song", "meal", "city", "game")]
    neg = [f"I really hate this {x}, it is awful" for x in ("film", "book", "song", "meal", "city", "game")]
    probe = train_probe(pos + neg, [1] * 6 + [0] * 6, holdout=0.25)
    path = probe.save(tmp_path / "p")
    assert sorted(p.name for p in path.iterdir()) == ["probe_config.json", "probe_weights.safetensors"]
    scorer = get_scorer(f"probe:{path}")
    a, b = scorer(["I really love this show, it is great", "I really hate this show, it is awful"])
    assert a > 0.5 > b
    assert EmbeddingProbe.load(path).info["n_train"] == 9


def test_shipped_prompt_sets_are_large_and_disjoint_from_vector_data() -> None:
    from steerlab.data.pairs import text_hashes

    train = steerlab.as_contrast("sentiment")
    used = set(text_hashes(train.positive + train.negative))
    for task in TASKS.names():
        prompts = steerlab.load_prompts(TASKS.get(task).prompts)
        assert len(prompts) >= 200
        assert not used & set(text_hashes(prompts))


def _result(kind: str, strength, success: float, ppl: float) -> ConditionResult:
    nan = (float("nan"), float("nan"))
    return ConditionResult(kind, kind, strength, {}, success, nan, success, nan, ppl, nan, ppl, 0,
                           (1.0, 1.0, 1.0), 10.0, 0.0)


def test_choose_strength_respects_the_fluency_budget() -> None:
    rows = [_result("unsteered", None, 0.3, 100.0), _result("prompting", None, 0.5, 105.0),
            _result("steered", 2.0, 0.5, 105.0), _result("steered", 4.0, 0.7, 109.0),
            _result("steered", 6.0, 0.9, 150.0)]
    c = choose_strength(rows, 0.10)
    assert c["strength"] == 4.0 and c["best_unconstrained"] == 6.0
    assert choose_strength(rows[:2] + rows[4:], 0.10)["strength"] is None


def test_pareto_front() -> None:
    assert pareto_front([(10, 0.5), (12, 0.4), (15, 0.8), (20, 0.7)]) == [(10, 0.5), (15, 0.8)]


def test_quick_evaluation_report_schema(tiny_llama, tmp_path: Path) -> None:
    vec = steerlab.extract(tiny_llama, PAIRS, layers=[1, 2])
    art_dir = vec.save(tmp_path / "vec")
    proto = Protocol(n_prompts=3, samples=2, max_new_tokens=6, n_boot=50)
    report = evaluate(tiny_llama, "sentiment-positive", vec, strengths=[1.0, 4.0], protocol=proto,
                      reference="self", artifact_path=art_dir, out_dir=tmp_path / "out")
    assert [r.kind for r in report.results] == ["unsteered", "prompting", "steered", "steered"]
    doc = json.loads((tmp_path / "out" / "sentiment-positive.json").read_text())
    assert {"task", "protocol", "model", "reference", "results", "choice", "versions"} <= set(doc)
    assert doc["protocol"]["seed"] == 0 and doc["reference_is_self"] is True
    for r in doc["results"]:
        assert {"success", "success_ci", "attribute", "perplexity", "dist", "mean_words"} <= set(r)
    md = (tmp_path / "out" / "sentiment-positive.md").read_text()
    assert "| unsteered |" in md and "| prompting |" in md
    assert (tmp_path / "out" / "sentiment-positive_pareto.png").stat().st_size > 1000
    card = steerlab.load_artifact(art_dir).meta["eval_card"]["eval:sentiment-positive"]
    assert len(card["sweep"]) == 2 and "recommended" in card


def test_layer_variants_sweep(tiny_llama, tmp_path: Path) -> None:
    vec = steerlab.extract(tiny_llama, PAIRS, layers=[1, 2])
    proto = Protocol(n_prompts=2, samples=1, max_new_tokens=4, n_boot=20)
    report = evaluate(tiny_llama, "sentiment-negative", vec, strengths=[-1.0, -2.0], protocol=proto,
                      variants=[{"layers": [1]}, {"layers": [2]}], reference="self", out_dir=tmp_path)
    steered = [r for r in report.results if r.kind == "steered"]
    assert [(r.options["layers"], r.strength) for r in steered] == [([1], -1.0), ([1], -2.0), ([2], -1.0), ([2], -2.0)]
    assert (tmp_path / "sentiment-negative_strength.png").is_file()


def test_corpus_training_sets() -> None:
    rt = steerlab.as_contrast("rt-sentiment")
    assert len(rt.positive) > 3000 and len(rt.negative) > 2000 and not rt.paired
    tw = steerlab.as_contrast("tweets-sentiment")
    assert len(tw.positive) > 1000 and len(tw.negative) > 1000


def test_mauve_tells_the_same_distribution_from_another() -> None:
    """MAUVE on packaged-encoder features: a sample of the reference distribution scores high, text
    from another distribution (sports vs cooking) scores lower."""
    from steerlab.eval.metrics import mauve_score

    def texts(topic: str, things: list[str]) -> list[str]:
        return [f"{a} {topic} {b} today." for a in ("The", "A", "My", "Our", "Their", "This") for b in things]

    cooking = ["soup simmered slowly", "bread rose in the oven", "pasta needs more salt", "sauce thickened nicely",
               "onions were caramelised", "cake cooled on the rack"]
    sports = ["team won the match", "striker scored twice", "runner set a record", "goalkeeper saved a penalty",
              "coach changed tactics", "fans filled the stadium"]
    ref = texts("kitchen:", cooking)
    same = mauve_score(texts("recipe:", cooking), ref)
    other = mauve_score(texts("game:", sports), ref)
    assert same > other + 0.2, (same, other)
    with pytest.raises(ValueError):
        mauve_score(["one"], ref)


def test_a_saved_report_reads_back_to_the_same_card(tmp_path) -> None:
    import json

    from steerlab.eval.report import EvalReport
    from steerlab.eval.tasks import TASKS

    rows = [_result("unsteered", None, 0.3, 100.0), _result("prompting", None, 0.5, 105.0),
            _result("steered", 2.0, 0.6, 108.0)]
    rows[2].vs_prompting = (0.1, 0.02, 0.2)
    report = EvalReport(TASKS.get("detoxify-hard"), Protocol(n_prompts=8, samples=3), "m", "ref", False, "a",
                        "vectors", {}, rows, choose_strength(rows, 0.1), 0.1)
    again = EvalReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert json.dumps(again.card(), sort_keys=True) == json.dumps(report.card(), sort_keys=True)
    assert again.card()["sweep"][0]["vs_prompting"] == [0.1, 0.02, 0.2]
    assert "+10.0 [+2.0, +20.0]" in again.to_markdown()


def test_steered_rows_are_paired_with_prompting_over_the_same_prompts() -> None:
    """Prompts differ a lot (0–75% success under prompting) and the steered row adds exactly one
    successful sample of four on every prompt: the marginal intervals overlap, the paired
    difference is exactly +0.25 with a zero-width interval."""
    from types import SimpleNamespace

    from steerlab.eval.protocol import Condition, Samples, summarise

    task = TASKS.get("sentiment-positive")
    k, n = 4, 12
    wins_prompting = [i % 4 for i in range(n)]  # 0..3 successes of 4 on each prompt

    def scores(wins: list[int]) -> list[float]:
        return [0.9 if j < w else 0.1 for w in wins for j in range(k)]

    conds = [Condition("unsteered", "unsteered"), Condition("prompting", "prompting", prefix="Be nice.\n\n"),
             Condition("steered x2", "steered", strength=2.0)]
    all_scores = scores([0] * n) + scores(wins_prompting) + scores([w + 1 for w in wins_prompting])
    rows = len(all_scores)
    ppl = SimpleNamespace(nll=[1.0] * rows, tokens=[1] * rows, per_sample=[3.0] * rows)
    samples = Samples([f"p{i}" for i in range(n)], conds, k, ["x"] * rows, all_scores, {}, ppl,
                      (task.scorer, task.score_with_prompt, task.extra_scorers))
    proto = Protocol(n_prompts=n, samples=k, n_boot=200)
    un, pr, st = summarise(task, samples, proto)
    assert un.vs_prompting is None and pr.vs_prompting is None
    assert st.vs_prompting == pytest.approx((0.25, 0.25, 0.25))
    assert st.success - pr.success == pytest.approx(0.25)
    assert st.success_ci[0] < pr.success_ci[1]  # the marginal intervals overlap
    # two prompting rows (e.g. both sentiment reports from one pass): each report pairs with the
    # prompting row it keeps; with both kept, none is assumed
    two = Samples(samples.prompts, conds[:2] + [Condition("prompting 2", "prompting")] + conds[2:], k,
                  ["x"] * (rows + n * k), all_scores[:2 * n * k] + all_scores[:n * k] + all_scores[2 * n * k:],
                  {}, SimpleNamespace(nll=[1.0] * (rows + n * k), tokens=[1] * (rows + n * k),
                                      per_sample=[3.0] * (rows + n * k)), samples.scorer)
    assert summarise(task, two, proto)[-1].vs_prompting is None
    kept = summarise(task, two, proto, only=["prompting", "steered x2"])
    assert [r.name for r in kept] == ["prompting", "steered x2"] and kept[1].vs_prompting == st.vs_prompting
    other = summarise(task, two, proto, only=["prompting 2", "steered x2"])  # "prompting 2" never succeeds
    assert other[1].vs_prompting == pytest.approx((st.success, st.success_ci[0], st.success_ci[1]))
    assert summarise(task, two, proto, only=["steered x2"])[0].vs_prompting is None
