"""The method registry is open: a method from outside the package registers and works everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import steerlab
from steerlab.core.methods import MethodSpec, get_method
from steerlab.errors import SteerlabError
from tests import toy_method
from tests.helpers import run


def test_built_ins_come_from_entry_points() -> None:
    assert {"vectors", "lm_steer", "steerlm"} <= set(steerlab.METHODS.names())
    spec = get_method("lm_steer")
    assert spec.artifact_cls.method == "lm_steer" and spec.steerer_cls.name == "lm_steer"
    with pytest.raises(SteerlabError, match="Did you mean 'vectors'"):
        get_method("vector")


def test_spec_refuses_inconsistent_classes() -> None:
    with pytest.raises(SteerlabError, match="method must be"):
        MethodSpec("other", toy_method.LogitBias, toy_method.BiasSteerer)


def test_toy_method_generates_and_round_trips(tiny_llama, tmp_path: Path) -> None:
    art = toy_method.BiasSteerer().fit(tiny_llama, ["The movie was wonderful"])
    path = art.save(tmp_path / "bias")
    back = steerlab.load_artifact(path)
    assert isinstance(back, toy_method.LogitBias)
    base = steerlab.generate(tiny_llama, ["hey send me"], max_new_tokens=6, progress=False)
    rows = steerlab.generate(tiny_llama, ["hey send me"] * 2, [steerlab.Steer(back, 50.0), None],
                             max_new_tokens=6, progress=False)
    assert rows[1] == base[0] and rows[0] != base[0]


def test_toy_method_in_the_cli(tiny_llama, tmp_path: Path, monkeypatch, capsys) -> None:
    import steerlab.cli.generate as gen

    path = toy_method.BiasSteerer().fit(tiny_llama, ["The movie was wonderful"]).save(tmp_path / "bias")
    monkeypatch.setattr(gen, "load", lambda name: tiny_llama)
    code, out, err = run(["generate", "-p", "hey send me", "--steer", str(path), "-s", "50", "-m", "tiny",
                          "--opt", "temperature=2", "--max-new-tokens", "4", "--json"], capsys)
    assert code == 0, err
    code, _, err = run(["inspect", str(path)], capsys)
    assert code == 0, err


def test_a_plugin_registers_through_the_entry_point_group(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist = site / "toy_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[steerlab.methods]\ntoy_bias = tests.toy_method:METHOD\n")
    code = textwrap.dedent("""
        import steerlab
        assert "toy_bias" in steerlab.METHODS.names(), steerlab.METHODS.names()
        assert steerlab.get_steerer("toy_bias").name == "toy_bias"
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(Path.cwd())])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_cli_options_go_to_the_methods_that_have_them(tiny_llama, tmp_path: Path, monkeypatch, capsys) -> None:
    import steerlab.cli.generate as gen
    from steerlab.methods.lm_steer import train
    from tests.helpers import PAIRS

    vec = steerlab.extract(tiny_llama, PAIRS, layers=[1, 2]).save(tmp_path / "v")
    ls = train(tiny_llama, PAIRS, rank=4, n_steps=1, batch_size=4, progress=False).save(tmp_path / "ls")
    monkeypatch.setattr(gen, "load", lambda name: tiny_llama)
    code, _, err = run(["generate", "-p", "hi", "-m", "tiny", "--steer", str(vec), "--steer", str(ls),
                        "--layers", "1", "--opt", "steer=0", "--max-new-tokens", "2"], capsys)
    assert code == 0, err
    code, _, err = run(["generate", "-p", "hi", "-m", "tiny", "--steer", str(vec), "--steer", str(ls),
                        "--opt", "layer=1"], capsys)
    assert code == 2 and "Did you mean 'layers'" in err


def test_train_options_are_built_from_the_config_dataclasses(capsys) -> None:
    import dataclasses

    from steerlab.methods.lm_steer import LMSteerTrainConfig
    from steerlab.methods.steerlm import SFTConfig

    for config_cls, argv in ((LMSteerTrainConfig, ["train", "lm-steer", "--help"]),
                             (SFTConfig, ["steerlm", "sft", "--help"])):
        assert dataclasses.is_dataclass(config_cls)
        code, out, err = run(argv, capsys)
        assert code == 0, err
        for f in dataclasses.fields(config_cls):
            assert f.metadata.get("help"), f"{config_cls.__name__}.{f.name} has no help text"
            assert f"--{f.name.replace('_', '-')}" in out, f.name
