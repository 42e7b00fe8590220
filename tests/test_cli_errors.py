"""Every user error in the CLI is one ``error:`` line and exit code 2, never a traceback: the
malformed artifacts, options, data and GGUF files users have actually hit."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import steerlab
from tests.helpers import ADAPTER, PAIRS, VALUE_MODEL, run


@pytest.fixture
def vec_dir(tiny_llama, tmp_path: Path) -> Path:
    return steerlab.extract(tiny_llama, PAIRS, layers=[1, 2]).save(tmp_path / "v")


def _edit(path: Path, fn: Callable[[dict], None]) -> Path:
    doc = json.loads((path / "steer_config.json").read_text())
    fn(doc)
    (path / "steer_config.json").write_text(json.dumps(doc))
    return path


def one_error_line(code: int, err: str, match: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], err


@pytest.mark.parametrize("edit,match", [
    (lambda d: d.update(method=None), "'method' must be a method name"),
    (lambda d: d.update(method="vectorz"), "Did you mean 'vectors'"),
    (lambda d: d.update(model="smollm2-135m"), "model fingerprint"),
    (lambda d: d["model"].pop("hidden_size"), "lacks hidden_size"),
    (lambda d: d["model"].update(num_layers="4"), "num_layers"),
    (lambda d: d["config"]["stats"]["1"].update(pos_proj="high"), "stats[1].pos_proj"),
    (lambda d: d["config"].update(stats={"1": {"pos_proj": 1.0}}), "must hold exactly"),
    (lambda d: d["config"].update(stats=[1, 2]), "'stats' must map"),
    (lambda d: d["config"].update(layers="1,2"), "'layers' must be a list"),
    (lambda d: d.update(format_version=-1), "format_version must be a positive integer"),
    (lambda d: d.update(format_version=True), "format_version"),
    (lambda d: d.update(config=[]), "'config' must be an object"),
    (lambda d: d.update(provenance="x"), "'provenance' must be an object"),
])
def test_malformed_artifact_configs(vec_dir: Path, capsys, edit, match: str) -> None:
    _edit(vec_dir, edit)
    code, _, err = run(["inspect", str(vec_dir)], capsys)
    one_error_line(code, err, match)


def test_option_errors_come_before_the_model_loads(tiny_llama, vec_dir: Path, monkeypatch, capsys) -> None:
    import steerlab.cli.generate as gen

    monkeypatch.setattr(gen, "load", lambda name: tiny_llama)
    for opts, match in [
        (["--opt", "layers=abc"], "layers must be"),
        (["--opt", "clamp_value=abc", "--operator", "clamp"], "clamp_value must be a number"),
        (["--strength", "1e38"], "too large"),
        (["--attr", "humor"], "name=value"),
        (["--temperature", "nan"], "temperature"),
        (["--max-new-tokens", "0"], "max_new_tokens"),
    ]:
        code, _, err = run(["generate", "-p", "hi", "--steer", str(vec_dir), "-m", "tiny", *opts], capsys)
        one_error_line(code, err, match)
    code, _, err = run(["generate", "-p", "", "--steer", str(vec_dir), "-m", "tiny", "--no-chat"], capsys)
    one_error_line(code, err, "empty")
    code, out, err = run(["generate", "-p", "hi", "--steer", str(vec_dir), "-m", "tiny", "--opt", "layers=1",
                          "--max-new-tokens", "2", "--json"], capsys)
    assert code == 0, err  # a single layer index is a valid layer list


def test_mismatch_error_names_the_cli_flag(tiny_tokenizer, vec_dir: Path, monkeypatch, capsys) -> None:
    import steerlab.cli.generate as gen
    from tests.helpers import make_tiny

    other = make_tiny("qwen2", tiny_tokenizer)
    monkeypatch.setattr(gen, "load", lambda name: other)
    code, _, err = run(["generate", "-p", "hi", "--steer", str(vec_dir), "-m", "tiny"], capsys)
    one_error_line(code, err, "--allow-mismatch")
    code, _, err = run(["generate", "-p", "hi", "--steer", str(vec_dir), "-m", "tiny", "--allow-mismatch",
                        "--max-new-tokens", "2"], capsys)
    assert code == 0, err


def test_non_utf8_jsonl(tmp_path: Path, capsys) -> None:
    f = tmp_path / "d.jsonl"
    f.write_bytes(b'{"positive": "caf\xe9", "negative": "b"}\n')
    code, _, err = run(["extract", "--data", str(f), "--out", str(tmp_path / "v")], capsys)
    one_error_line(code, err, "not UTF-8")


def test_batch_size_zero(tmp_path: Path, capsys) -> None:
    code, _, err = run(["extract", "--data", "sentiment", "--out", str(tmp_path / "v"), "--batch-size", "0"], capsys)
    one_error_line(code, err, "--batch-size")


def test_export_gguf_into_a_folder_and_nan_strength(vec_dir: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run(["export-gguf", str(vec_dir), str(tmp_path)], capsys)
    one_error_line(code, err, "is a folder")
    code, _, err = run(["export-gguf", str(vec_dir), str(tmp_path / "v.gguf"), "--strength", "nan"], capsys)
    one_error_line(code, err, "finite")
    assert not (tmp_path / "v.gguf").exists()


def test_swapped_lora_factors_are_refused(tmp_path: Path, capsys) -> None:
    from safetensors.torch import load_file, save_file

    src = ADAPTER
    dst = tmp_path / "ad"
    dst.mkdir()
    (dst / "steer_config.json").write_text((src / "steer_config.json").read_text())
    tensors = load_file(str(src / "steer_weights.safetensors"))
    swapped = {}  # A and B under each other's names: A' (out, r), B' (r, in)
    for key, t in tensors.items():
        other = key.replace("lora_A", "lora_B") if key.endswith("lora_A") else key.replace("lora_B", "lora_A")
        swapped[other] = t
    save_file(swapped, str(dst / "steer_weights.safetensors"))
    code, _, err = run(["inspect", str(dst)], capsys)
    one_error_line(code, err, "LoRA factors")


def test_truncated_value_model(tmp_path: Path, capsys) -> None:
    src = VALUE_MODEL
    dst = tmp_path / "vm"
    dst.mkdir()
    (dst / "value_config.json").write_text((src / "value_config.json").read_text())
    data = (src / "value_weights.safetensors").read_bytes()
    (dst / "value_weights.safetensors").write_bytes(data[: len(data) // 3])
    code, _, err = run(["steerlm", "eval", "--adapter", str(ADAPTER), "--value-model", str(dst),
                        "--out", str(tmp_path / "o")], capsys)
    one_error_line(code, err, "malformed value model")


def _gguf(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    import gguf

    w = gguf.GGUFWriter(str(path), "controlvector")
    w.add_string("controlvector.model_hint", "llama")
    w.add_uint32("controlvector.layer_count", len(tensors))
    for name, t in tensors.items():
        w.add_tensor(name, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("tensors,match", [
    ({"direction.-1": np.ones(32, np.float32)}, "not a direction.N tensor"),
    ({"direction.0": np.ones(32, np.float32)}, "direction.0 has no slot"),
    ({"direction.1": np.ones(32, np.float16)}, "must be F32"),
    ({"direction.1": np.ones((2, 16), np.float32)}, "must be 1-D"),
    ({"direction.1": np.ones(32, np.float32), "direction.2": np.ones(16, np.float32)}, "differ in size"),
    ({"direction.1": np.ones(32, np.float32), "token_embd": np.ones(32, np.float32)}, "not a direction.N"),
    ({"direction.1": np.full(32, 1e38, np.float32)}, "too large"),
])
def test_import_gguf_accepts_only_what_llama_cpp_accepts(tmp_path: Path, capsys, tensors, match: str) -> None:
    path = _gguf(tmp_path / "c.gguf", tensors)
    code, _, err = run(["import-gguf", str(path), str(tmp_path / "out")], capsys)
    one_error_line(code, err, match)
    assert not (tmp_path / "out").exists()


def test_import_gguf_keeps_a_trailing_unit_dimension(tmp_path: Path) -> None:
    from steerlab.methods.vectors import import_gguf

    vec = import_gguf(_gguf(tmp_path / "c.gguf", {"direction.3": np.ones((1, 32), np.float32)}))
    assert vec.layers == [3] and vec.hidden_size == 32


def test_reprs_are_short(tiny_llama) -> None:
    from steerlab.methods.lm_steer import train

    ls = train(tiny_llama, PAIRS, rank=4, n_steps=1, batch_size=4, progress=False)
    adapter = steerlab.load_artifact(ADAPTER)
    for art in (ls, adapter):
        assert len(repr(art)) < 300 and "\n" not in repr(art), repr(art)
