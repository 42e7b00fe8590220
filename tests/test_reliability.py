"""Lose nothing, never mix callers, one clear error: saving, threads, checkpoints, Ctrl-C,
non-finite numbers and offline loading."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import steerlab
from steerlab.core.atomic import atomic_file
from steerlab.errors import (
    ArtifactError,
    CheckpointMismatchError,
    Interrupted,
    NonFiniteError,
    OutputError,
    SteerlabError,
)
from steerlab.methods.vectors import SteeringVector
from tests.helpers import ADAPTER, PAIRS, VALUE_MODEL, hook_count, run


@pytest.fixture
def vec(tiny_llama) -> SteeringVector:
    return steerlab.extract(tiny_llama, PAIRS, layers=[1, 2])


# -- saving never destroys what steerlab did not write ------------------------------------------

def test_save_refuses_a_folder_of_user_files(vec, tmp_path: Path) -> None:
    user = tmp_path / "v"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="did not write"):
            vec.save(user, overwrite=overwrite)
    assert (user / "notes.txt").read_text() == "mine" and sorted(os.listdir(user)) == ["notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["v"]  # no temporary leftovers


def test_save_refuses_an_artifact_with_extra_files(vec, tmp_path: Path) -> None:
    path = vec.save(tmp_path / "v")
    (path / "README.md").write_text("mine")
    with pytest.raises(OutputError, match="README.md"):
        vec.save(path, overwrite=True)
    assert (path / "README.md").read_text() == "mine"


def test_overwriting_an_artifact_needs_the_flag(vec, tmp_path: Path) -> None:
    path = vec.save(tmp_path / "v")
    with pytest.raises(OutputError, match="overwrite=True"):
        (2 * vec).save(path)
    assert steerlab.load_artifact(path) == vec
    (2 * vec).save(path, overwrite=True)
    assert steerlab.load_artifact(path) == 2 * vec
    assert sorted(os.listdir(tmp_path)) == ["v"]


def test_save_refuses_files_cwd_and_paths_under_a_file(vec, tmp_path: Path, monkeypatch) -> None:
    f = tmp_path / "f"
    f.write_text("mine")
    with pytest.raises(OutputError, match="not a folder"):
        vec.save(f, overwrite=True)
    with pytest.raises(OutputError, match="is a file"):
        vec.save(f / "sub")
    assert f.read_text() == "mine"
    monkeypatch.chdir(tmp_path)
    for target in (".", "..", str(tmp_path)):
        with pytest.raises(OutputError):
            vec.save(target, overwrite=True)
    assert f.read_text() == "mine"


def test_saved_files_follow_the_umask(vec, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = vec.save(tmp_path / "v")
        with atomic_file(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert stat.S_IMODE((path / "steer_config.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((path / "steer_weights.safetensors").stat().st_mode) == 0o644  # safetensors writes 0600
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644


def test_file_outputs_refuse_folders_and_existing_files(vec, tmp_path: Path) -> None:
    from steerlab.methods.vectors import export_gguf

    with pytest.raises(OutputError, match="is a folder"):
        export_gguf(vec.select([1]), tmp_path)
    out = tmp_path / "v.gguf"
    out.write_text("mine")
    with pytest.raises(OutputError, match="already exists"):
        export_gguf(vec.select([1]), out)
    assert out.read_text() == "mine"
    export_gguf(vec.select([1]), out, overwrite=True)
    assert out.stat().st_size > 4


def test_cli_extract_refuses_a_user_folder_before_loading_anything(tmp_path: Path, capsys) -> None:
    user = tmp_path / "v"
    user.mkdir()
    (user / "data.csv").write_text("mine")
    code, _, err = run(["extract", "--data", "sentiment", "--out", str(user), "--model", "no-such-model"], capsys)
    assert code == 2 and err.startswith("error:") and "did not write" in err
    assert (user / "data.csv").read_text() == "mine"
    f = tmp_path / "f"
    f.write_text("mine")
    code, _, err = run(["extract", "--data", "sentiment", "--out", str(f)], capsys)
    assert code == 2 and "not a folder" in err and f.read_text() == "mine"


def test_reports_leave_other_files_alone(tmp_path: Path) -> None:
    from steerlab.eval.controllability import save_results

    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "mine.txt").write_text("mine")
    save_results([], {"x": 1}, folder)
    with pytest.raises(OutputError, match="overwrite"):
        save_results([], {"x": 2}, folder)
    save_results([], {"x": 2}, folder, overwrite=True)
    assert (folder / "mine.txt").read_text() == "mine"
    assert json.loads((folder / "controllability.json").read_text())["x"] == 2


# -- a model shared between threads never mixes their steering ----------------------------------

def test_threads_with_mixed_specs_each_equal_their_solo_run(tiny_llama, vec) -> None:
    from steerlab.methods.lm_steer import train

    ls = train(tiny_llama, PAIRS, rank=4, n_steps=2, batch_size=4, progress=False)
    prompts = ["The movie was", "hey send me", "A quick brown fox jumps over", "I walked"]
    specs = [
        None,
        steerlab.Steer(vec, 8.0, {"layers": [1]}),
        [steerlab.Steer(vec, -6.0, {"positions": "generated"}), steerlab.Steer(ls, 40.0)],
        [steerlab.Steer(vec, 4.0, {"layers": [2]}), None, steerlab.Steer(ls, -30.0), None],  # per row
    ]

    def call(spec):  # noqa: ANN001, ANN202
        n = 4 if isinstance(spec, list) and len(spec) == 4 else 2
        steering = spec if n == 4 else (tuple(spec) if isinstance(spec, list) else spec)
        return steerlab.generate(tiny_llama, prompts[:n], steering, max_new_tokens=8, progress=False)

    solo = [call(s) for s in specs]
    assert len({tuple(x) for x in solo}) == len(specs)  # the specs really differ
    hooks = hook_count(tiny_llama.model)
    results: dict[tuple[int, int], list[str]] = {}
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for r in range(3):
                k = (t + r) % len(specs)
                results[(t, r)] = call(specs[k])
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for (t, r), out in results.items():
        assert out == solo[(t + r) % len(specs)], (t, r)
    assert hook_count(tiny_llama.model) == hooks


def test_an_apply_block_steers_only_its_own_thread(tiny_llama, vec) -> None:
    base = steerlab.generate(tiny_llama, ["The movie was"], max_new_tokens=8, progress=False)
    inside, seen = threading.Event(), threading.Event()
    out: dict[str, list[str]] = {}

    def steered() -> None:
        with steerlab.apply(tiny_llama, steerlab.Steer(vec, 8.0)):
            out["steered"] = steerlab.generate(tiny_llama, ["The movie was"], max_new_tokens=8, progress=False)
            inside.set()
            seen.wait(60)

    th = threading.Thread(target=steered)
    th.start()
    assert inside.wait(60)
    out["other"] = steerlab.generate(tiny_llama, ["The movie was"], max_new_tokens=8, progress=False)
    seen.set()
    th.join()
    assert out["other"] == base and out["steered"] != base


# -- training never resumes the wrong run -------------------------------------------------------

def test_checkpoint_of_other_data_or_settings_is_never_resumed(tiny_llama, tmp_path: Path) -> None:
    from steerlab.methods.lm_steer import train

    ckpt = tmp_path / "ck"
    kw = {"rank": 4, "batch_size": 4, "progress": False, "checkpoint_dir": ckpt}
    first = train(tiny_llama, PAIRS, n_steps=3, **kw)
    other = [(b, a) for a, b in PAIRS]
    with pytest.raises(CheckpointMismatchError, match="different data"):
        train(tiny_llama, other, n_steps=3, **kw)
    with pytest.raises(CheckpointMismatchError, match="rank 4 -> 2"):
        train(tiny_llama, PAIRS, n_steps=3, **{**kw, "rank": 2})
    with pytest.raises(CheckpointMismatchError, match="past n_steps"):
        train(tiny_llama, PAIRS, n_steps=2, **kw)
    again = train(tiny_llama, PAIRS, n_steps=3, **kw)  # same run: resumes at its end
    assert again.meta["training"]["resumed_from_step"] == 3
    assert all(torch.equal(again.params[k], first.params[k]) for k in first.params)
    fresh = train(tiny_llama, other, n_steps=3, restart=True, **kw)
    assert fresh.meta["training"]["resumed_from_step"] == 0
    longer = train(tiny_llama, other, n_steps=4, **kw)  # extending the same run resumes it
    assert longer.meta["training"]["resumed_from_step"] == 3


def test_checkpoint_folder_with_user_files_is_refused(tiny_llama, tmp_path: Path) -> None:
    from steerlab.methods.lm_steer import train

    ckpt = tmp_path / "ck"
    ckpt.mkdir()
    (ckpt / "mine.txt").write_text("mine")
    with pytest.raises(OutputError, match="did not write"):
        train(tiny_llama, PAIRS, rank=4, n_steps=1, batch_size=4, progress=False, checkpoint_dir=ckpt)
    assert (ckpt / "mine.txt").read_text() == "mine"


# -- Ctrl-C exits 130 and says what was kept ----------------------------------------------------

def test_interrupted_training_keeps_a_checkpoint(tiny_llama, tmp_path: Path, monkeypatch) -> None:
    import importlib

    tr = importlib.import_module("steerlab.methods.lm_steer.train")
    real = tr._logits
    calls = {"n": 0}

    def flaky(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(tr, "_logits", flaky)
    ckpt = tmp_path / "ck"
    with pytest.raises(Interrupted, match="step 2/5 kept in"):
        tr.train(tiny_llama, PAIRS, rank=4, n_steps=5, batch_size=4, progress=False, checkpoint_dir=ckpt)
    monkeypatch.setattr(tr, "_logits", real)
    resumed = tr.train(tiny_llama, PAIRS, rank=4, n_steps=5, batch_size=4, progress=False, checkpoint_dir=ckpt)
    assert resumed.meta["training"]["resumed_from_step"] == 2


def test_ctrl_c_in_the_cli_exits_130_with_one_line(capsys, monkeypatch, tmp_path: Path) -> None:
    import steerlab.data.pairs as pairs

    def interrupt(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(pairs, "as_contrast", interrupt)
    code, _, err = run(["extract", "--data", "sentiment", "--out", str(tmp_path / "v")], capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 130 and len(lines) == 1 and lines[0].startswith("interrupted:"), err

    def kept(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise Interrupted("checkpoint at step 2/5 kept in ck")

    monkeypatch.setattr(pairs, "as_contrast", kept)
    code, _, err = run(["extract", "--data", "sentiment", "--out", str(tmp_path / "v")], capsys)
    assert code == 130 and "kept in ck" in err


# -- non-finite and overflowing numbers are refused ---------------------------------------------

@pytest.mark.parametrize("strength", [float("nan"), float("inf"), 1e38, -1e7])
def test_extreme_strengths_are_refused(vec, strength: float) -> None:
    with pytest.raises(NonFiniteError):
        steerlab.Steer(vec, strength)


def test_extreme_vector_values_are_refused(vec, tiny_llama, tmp_path: Path) -> None:
    huge = SteeringVector({1: torch.full((tiny_llama.hidden_size,), 1e38)})
    with pytest.raises(ArtifactError, match="too large"):
        steerlab.patch(tiny_llama, huge)
    with pytest.raises(ArtifactError, match="too large"):
        huge.save(tmp_path / "h")
    assert not (tmp_path / "h").exists()


@pytest.mark.parametrize("options", [{"operator": "clamp", "clamp_value": float("nan")},
                                     {"operator": "clamp", "clamp_value": "abc"}])
def test_bad_clamp_values_are_refused(vec, tiny_llama, options) -> None:
    with pytest.raises(SteerlabError):
        steerlab.patch(tiny_llama, steerlab.Steer(vec, 1.0, options))


def test_nan_in_saved_configs_is_refused(tiny_llama, tmp_path: Path) -> None:
    from steerlab.methods.lm_steer import train

    path = train(tiny_llama, PAIRS, rank=4, n_steps=1, batch_size=4, progress=False).save(tmp_path / "ls")
    doc = json.loads((path / "steer_config.json").read_text())
    doc["config"]["epsilon"] = float("nan")
    (path / "steer_config.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="epsilon"):
        steerlab.load_artifact(path)
    adapter = ADAPTER
    doc = json.loads((adapter / "steer_config.json").read_text())
    doc["config"]["scaling"] = float("nan")
    copy = tmp_path / "ad"
    copy.mkdir()
    (copy / "steer_config.json").write_text(json.dumps(doc))
    (copy / "steer_weights.safetensors").write_bytes((adapter / "steer_weights.safetensors").read_bytes())
    with pytest.raises(ArtifactError, match="scaling"):
        steerlab.load_artifact(copy)


def test_export_gguf_refuses_a_nan_strength(vec, tmp_path: Path) -> None:
    from steerlab.methods.vectors import export_gguf

    with pytest.raises(NonFiniteError):
        export_gguf(vec.select([1]), tmp_path / "v.gguf", strength=float("nan"))
    assert not (tmp_path / "v.gguf").exists()


def test_generation_whose_logits_turn_nan_fails_clearly(tiny_llama) -> None:
    handle = tiny_llama.layers[1].register_forward_hook(lambda m, a, out: out * float("nan"))
    try:
        with pytest.raises(NonFiniteError, match="NaN"):
            steerlab.generate(tiny_llama, ["The movie was"], max_new_tokens=4, progress=False)
        with pytest.raises(NonFiniteError, match="NaN"):
            steerlab.generate(tiny_llama, ["The movie was"], max_new_tokens=4, progress=False, guidance=2.0)
    finally:
        handle.remove()


# -- offline by default; an artifact never chooses what to download -----------------------------

def test_cli_import_is_light_and_sets_offline_before_the_hub_loads() -> None:
    code = ("import os, sys; os.environ.pop('HF_HUB_OFFLINE', None); import steerlab.cli.app as a; "
            "assert 'huggingface_hub' not in sys.modules and 'torch' not in sys.modules, 'heavy import'; "
            "sys.argv = ['steerlab', 'models', '--json']; a.main(); "
            "import huggingface_hub.constants as c; assert c.HF_HUB_OFFLINE, 'hub online'")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_an_artifact_naming_a_hub_model_asks_for_model(vec, tmp_path: Path, capsys) -> None:
    path = vec.save(tmp_path / "v")
    doc = json.loads((path / "steer_config.json").read_text())
    doc["model"]["name"] = "someone/some-model"
    (path / "steer_config.json").write_text(json.dumps(doc))
    code, _, err = run(["generate", "-p", "hi", "--steer", str(path)], capsys)
    assert code == 2 and "--model someone/some-model" in err and len(err.strip().splitlines()) == 1


def test_a_value_model_naming_a_foreign_encoder_is_refused(tmp_path: Path) -> None:
    from steerlab.methods.steerlm.value_model import ValueModel

    src = VALUE_MODEL
    copy = tmp_path / "vm"
    copy.mkdir()
    for f in src.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    doc = json.loads((copy / "value_config.json").read_text())
    doc["encoder"] = "sentence-transformers/all-mpnet-base-v2"
    (copy / "value_config.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="not a packaged encoder"):
        ValueModel.load(copy)
    assert ValueModel.load(copy, encoder="all-minilm-l6-v2").encoder == "all-minilm-l6-v2"
