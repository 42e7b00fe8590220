"""The CLI: verbs work on artifacts, and bad input is one line on stderr with a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import steerlab
from steerlab.cli.common import parse_layers
from tests.helpers import ADAPTER, PAIRS, VALUE_MODEL, run


def test_parse_layers() -> None:
    assert parse_layers("8-10") == [8, 9, 10]
    assert parse_layers("1,3, 5") == [1, 3, 5]
    assert parse_layers("-1") == [-1]
    assert parse_layers("") is None
    with pytest.raises(steerlab.SteerlabError):
        parse_layers("a-b")


def test_models_lists_packaged(capsys) -> None:
    code, out, _ = run(["models", "--json"], capsys)
    assert code == 0 and "smollm2-135m" in out and "qwen2.5-0.5b" in out


@pytest.mark.parametrize("argv,match", [
    (["generate", "--model", "no-such-model", "-p", "hi"], "unknown model"),
    (["inspect", "/nonexistent/artifact"], "not an artifact directory"),
    (["generate", "-p", "hi", "--vector", "/nonexistent"], "not an artifact directory"),
    (["extract", "--data", "/nonexistent.jsonl", "--out", "/tmp/x"], "no such file"),
    (["import-gguf", "/nonexistent.gguf", "/tmp/x"], "no such file"),
    (["steerlm", "sft", "--data", "/nonexistent.jsonl", "--out", "/tmp/x"], "no such records file"),
    (["steerlm", "sft", "--data", "/nonexistent.jsonl", "--out", "/tmp/x", "--placement", "system"],
     "placement must be one of"),
    (["steerlm", "sft", "--data", "/nonexistent.jsonl", "--out", "/tmp/x", "--contrast-gap", "-1"],
     "--contrast-gap must be >= 0"),
    (["steerlm", "annotate", "--value-model", "/nonexistent", "--out", "/tmp/x"], "not a value model directory"),
    (["steerlm", "eval", "--adapter", "/nonexistent", "--value-model", "/nonexistent"], "not a value model"),
    (["steerlm", "eval", "--value-model", str(VALUE_MODEL)], "give at least one --adapter"),
    (["dglm", "train-decoder", "--diffusion", "/nonexistent", "--out", "/tmp/x"], "not a DGLM diffusion model"),
    (["dglm", "build-pairs", "--source", "gossip"], "unknown DGLM corpus"),
    (["dglm", "train-decoder", "--diffusion", "/nonexistent", "--out", "/tmp/x", "--probe", "toxicity:clean=/p"],
     "--probe takes NAME=DIR or NAME:LOW,HIGH=DIR"),
    (["steerlm", "eval", "--value-model", str(VALUE_MODEL), "--rescore", "/nonexistent.json"],
     "no such sweep file"),
    (["steerlm", "eval", "--adapter", str(ADAPTER), "--value-model", str(VALUE_MODEL),
      "--samples", "0"], "must be >= 1"),
])
def test_bad_input_is_one_line(capsys, argv, match) -> None:
    code, _, err = run(argv, capsys)
    assert code != 0
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], err


def test_sft_contrast_gap_without_pairs_is_refused_before_loading(tmp_path: Path, capsys) -> None:
    from steerlab.methods.steerlm import DEFAULT_SCHEMA, Example, write_records

    data = tmp_path / "v2t.jsonl"
    pair = [Example("hi", "hello", DEFAULT_SCHEMA.resolve({"toxicity": 0})),
            Example("hi", "hey", DEFAULT_SCHEMA.resolve({"toxicity": 1}))]  # 1 level apart only
    write_records(data, pair, DEFAULT_SCHEMA, "VALUE_TO_TEXT")
    code, _, err = run(["steerlm", "sft", "--data", str(data), "--out", str(tmp_path / "a"), "--contrast-gap", "2",
                        "--model", "no-such-model"], capsys)
    assert code != 0 and "no prompt has responses 2 levels apart" in err and not (tmp_path / "a").exists()


def test_inspect_and_export(tiny_llama, tmp_path: Path, capsys) -> None:
    vec = steerlab.extract(tiny_llama, PAIRS, layers=[1, 2])
    path = vec.save(tmp_path / "v")
    code, out, _ = run(["inspect", str(path)], capsys)
    assert code == 0 and "vectors" in out and "separation" in out
    code, _, _ = run(["export-gguf", str(path), str(tmp_path / "v.gguf")], capsys)
    assert code == 0 and (tmp_path / "v.gguf").is_file()


def test_parse_opts() -> None:
    from steerlab.cli.common import parse_opts

    assert parse_opts(["steer=0", "values=[1, 0.5]", "positions=generated"]) == {
        "steer": 0, "values": [1, 0.5], "positions": "generated"}
    with pytest.raises(steerlab.SteerlabError, match="key=value"):
        parse_opts(["oops"])


def test_explain_refuses_a_vector(tiny_llama, tmp_path: Path, capsys) -> None:
    path = steerlab.extract(tiny_llama, PAIRS, layers=[1]).save(tmp_path / "v")
    code, _, err = run(["explain", str(path), "--text", "hi"], capsys)
    assert code == 2 and "lm_steer" in err


def test_rescore_refuses_attributes_the_value_model_lacks(tmp_path: Path, capsys) -> None:
    import json

    sweep = tmp_path / "controllability.json"
    sweep.write_text(json.dumps({"outputs": [{"system": "s", "attribute": "formality", "level": 0, "prompt": "hi",
                                              "output": "hello"}]}))
    code, _, err = run(["steerlm", "eval", "--value-model", str(VALUE_MODEL), "--rescore", str(sweep),
                        "--out", str(tmp_path / "o")], capsys)
    assert code != 0 and "formality" in err and not (tmp_path / "o").exists()


def test_sft_init_continues_an_adapter(tiny_llama, tmp_path: Path, capsys) -> None:
    from steerlab.methods.steerlm import DEFAULT_SCHEMA, Example, train_sft, write_records

    tiny_llama.model.save_pretrained(tmp_path / "m")
    tiny_llama.tokenizer.save_pretrained(tmp_path / "m")
    lm = steerlab.load_model(str(tmp_path / "m"))
    data = tmp_path / "v2t.jsonl"
    write_records(data, [Example("hi", "hello there.", DEFAULT_SCHEMA.resolve({"humor": 0})),
                         Example("hi", "ha ha, a joke.", DEFAULT_SCHEMA.resolve({"humor": 4}))],
                  DEFAULT_SCHEMA, "VALUE_TO_TEXT")
    first = train_sft(lm, data, r=4, target_modules=["q_proj", "v_proj"], n_steps=1, batch_size=2,
                      max_length=400, progress=False)
    first.save(tmp_path / "a")
    code, _, err = run(["steerlm", "sft", "--data", str(data), "--out", str(tmp_path / "b"), "--init",
                        str(tmp_path / "a"), "--n-steps", "1", "--batch-size", "2", "--max-length", "400",
                        "--model", str(tmp_path / "m")], capsys)
    assert code == 0, err
    second = steerlab.load_artifact(tmp_path / "b")
    assert second.meta["training"]["rounds"] == 2
    assert set(second.lora) == set(first.lora) and second.rank == 4  # the adapter fixed modules and rank
    assert not all(bool((second.lora[k][1] == first.lora[k][1]).all()) for k in first.lora)  # it trained


def test_relabel_rescores_records_and_keeps_given_labels(tmp_path: Path, capsys) -> None:
    from steerlab.methods.steerlm import DEFAULT_SCHEMA, Example, read_records, write_records

    data = tmp_path / "v2t.jsonl"
    rows = [Example("Tell me a joke", "Why did the chicken cross the road? To get to the other side.",
                    DEFAULT_SCHEMA.resolve({"humor": 0, "verbosity": 0}), "mallard:joke", given={"humor": 1}),
            Example("What is AI?", "Artificial intelligence is the study of machines that think and learn.",
                    DEFAULT_SCHEMA.resolve({"verbosity": 4}), "chat")]
    write_records(data, rows, DEFAULT_SCHEMA, "VALUE_TO_TEXT")
    out = tmp_path / "relabelled.jsonl"
    code, _, err = run(["steerlm", "relabel", "-d", str(data), "--value-model", str(VALUE_MODEL),
                        "-o", str(out)], capsys)
    assert code == 0, err
    back = read_records(out, DEFAULT_SCHEMA)
    assert back[0].given == {"humor": 1} and back[0].attributes["humor"] == 1
    # 11 words: the value model's level, not the stale 4
    assert back[1].attributes["verbosity"] == round(back[1].scores["verbosity"]) <= 2
    assert set(back[1].scores) == set(DEFAULT_SCHEMA.names)
    code, _, err = run(["steerlm", "relabel", "-d", str(data), "--value-model", str(VALUE_MODEL),
                        "-o", str(data)], capsys)
    assert code != 0 and "is one of the inputs" in err


def test_bootstrap_refuses_unknown_focus_before_loading(tmp_path: Path, capsys) -> None:
    code, _, err = run(["steerlm", "bootstrap", "--adapter", str(ADAPTER), "--value-model",
                        str(VALUE_MODEL), "-o", str(tmp_path / "b"), "--focus", "humour"], capsys)
    assert code != 0 and "unknown attribute 'humour'" in err and "'humor'" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_digits_tells_an_adapter_that_reads_the_humour_digit(tmp_path: Path, capsys) -> None:
    """Likelihood check on 16 plain and 16 funny Mallard replies (~45 s): the shipped adapter
    (``steerlm-smollm2``, trained over rounds on Mallard + re-labelled data) against the same
    adapter with its B factors zeroed (the base model reading the same attribute string). Measured:
    shipped +0.306 nats/token, funny replies favoured by ``humor:4`` 81%; zeroed +0.002 (56%)."""
    import torch

    import steerlab

    zeroed = steerlab.load_artifact(ADAPTER)
    zeroed.lora = {n: (a, torch.zeros_like(b)) for n, (a, b) in zeroed.lora.items()}
    zeroed.save(tmp_path / "zeroed")
    figures = tmp_path / "digits.json"
    code, text, err = run(["steerlm", "digits", "--adapter", "steerlm-smollm2", "--adapter",
                           str(tmp_path / "zeroed"), "--limit", "16", "--json", str(figures)], capsys)
    assert code == 0, err
    got = json.loads(figures.read_text())
    shipped, base = got["steerlm-smollm2"], got[str(tmp_path / "zeroed")]
    assert shipped["n_high"] == shipped["n_low"] == 16 and "effect" in text
    assert shipped["effect"] > 0.15 and shipped["high_favoured"] > 0.7, shipped
    assert shipped["effect"] > base["effect"] + 0.15 and abs(base["effect"]) < 0.05, (shipped, base)
    code, _, err = run(["steerlm", "digits", "--adapter", "steerlm-smollm2", "--attribute", "quality"], capsys)
    assert code != 0 and "give --data" in err

@pytest.mark.parametrize("argv", [["train", "lm-steer", "--restart", "--overwrite"], ["steerlm", "sft", "--overwrite"]])
def test_boolean_flags_of_training_verbs_take_no_value(argv: list[str], tmp_path: Path, capsys) -> None:
    code, _, err = run([*argv, "--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "requires an argument" not in err and "missing.jsonl" in err, err


@pytest.mark.slow
def test_eval_batch_size_reaches_the_protocol(tmp_path: Path, capsys) -> None:
    # baselines only on the packaged model; the report (and so the card) records the batch size
    code, out, err = run(["eval", "--task", "sentiment-positive", "--model", "smollm2-135m", "--n-prompts", "2",
                          "--samples", "2", "--max-new-tokens", "4", "--reference", "self", "--batch-size", "3",
                          "--out", str(tmp_path), "--json"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "sentiment-positive.json").read_text())
    assert report["protocol"]["batch_size"] == 3 and report["protocol"]["n_prompts"] == 2
