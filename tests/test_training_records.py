"""Training records: the learning curve and cost each trained artifact carries, as ``inspect`` and
the comparison page show them."""

from __future__ import annotations

from pathlib import Path

import pytest

from steerlab.artifacts import training
from steerlab.methods.lm_steer import train
from tests.helpers import PAIRS, run


def test_window_means_and_the_last_quarter_are_exact() -> None:
    doc = {"config": {"training": {"n_steps": 8, "seconds_this_run": 12.0, "loss_first": 8.0,
                                   "loss_last_50": 2.5, "loss_history": [8, 6, 4, 4, 3, 3, 3, 2]}}}
    (curve,) = training.curves(doc)
    assert curve.stage == "" and curve.steps == 8 and curve.every == 1 and curve.seconds == 12.0
    assert curve.window_means(4) == [7.0, 4.0, 3.0, 2.5]
    assert curve.last_quarter_change() == pytest.approx((2.5 - 3.0) / 3.0)
    assert curve.window_means(100) == [8, 6, 4, 4, 3, 3, 3, 2]  # never more windows than points
    line = training.describe(curve, width=4)
    assert "8 steps in 12 s" in line and "-16.7%" in line and "2 steps a bar" in line


def test_stages_histories_every_50_and_records_without_history() -> None:
    doc = {"config": {"training": {
        "decoder": {"n_steps": 10, "seconds": 5, "loss_first": 5.0, "loss_last_20": 3.0},
        "diffusion": {"n_steps": 200, "loss_first": 1.0, "loss_last_100": 0.7,
                      "loss_history_every_50": [1.0, 0.9, 0.8, 0.7]}}}}
    decoder, diffusion = training.curves(doc)
    assert decoder.stage == "decoder" and decoder.losses == () and decoder.last == 3.0
    assert decoder.last_quarter_change() is None and "no history stored" in training.describe(decoder)
    assert diffusion.stage == "diffusion" and diffusion.every == 50 and diffusion.steps == 200
    assert training.sparkline(diffusion.window_means(4)) == "█▆▃▁"
    assert training.curves({"config": {"layers": [1, 2]}}) == [] and training.section([("v", {})]) == ""
    page = training.section([("d", doc)])
    assert "| `d` | decoder | 10 | 5 s | 5.000 -> 3.000 | not stored | — |" in page
    assert "| `d` | diffusion | 200 | ? | 1.000 -> 0.700 | █▆▃▁" in page


def test_a_decoder_history_of_noise_and_loss_and_a_continued_run() -> None:
    earlier = {"n_steps": 1500, "loss_first": 5.0, "loss_last_20": 3.3}
    doc = {"config": {"training": {"decoder": {
        "n_steps": 4, "seconds": 8.0, "loss_first": 4.0, "loss_last_20": 3.0,
        "history": [[0.5, 4.0], [0.1, 3.5], [0.9, 3.0], [0.3, 2.5]],
        "init_from": {"artifact": "dglm", "decoder": earlier}}}}}
    (decoder,) = training.curves(doc)  # the earlier run's record is not a curve of its own
    assert decoder.losses == (4.0, 3.5, 3.0, 2.5) and decoder.every == 1 and decoder.before == 1500
    assert "4 steps (after 1,500 earlier) in 8 s, loss 4.000 -> 2.500" in training.describe(decoder, width=4)
    assert "| `d` | decoder | 4 (after 1,500 earlier) | 8 s | 4.000 -> 3.000 | █▆▃▁ |" in training.section(
        [("d", doc)])
    doc["config"]["training"]["decoder"]["history"][1] = [0.1, "x"]  # a bad point: no curve, not a crash
    (decoder,) = training.curves(doc)
    assert decoder.losses == () and "no history stored" in training.describe(decoder)


def test_a_plateau_reads_as_a_plateau() -> None:
    falling = {"config": {"training": {"loss_first": 4.0, "loss_history": [4 - 0.01 * i for i in range(100)]}}}
    flat = {"config": {"training": {"loss_first": 4.0, "loss_history": [4.0 + 1.0 * (i < 10) for i in range(100)]}}}
    (f,), (p,) = training.curves(falling), training.curves(flat)
    assert f.last_quarter_change() == pytest.approx(-0.25 / (4 - 0.01 * 62), rel=1e-6)
    assert p.last_quarter_change() == 0.0


def test_inspect_shows_a_trained_steer_s_learning_curve(tiny_llama, tmp_path: Path, capsys) -> None:
    art = train(tiny_llama, PAIRS, rank=3, n_steps=4, batch_size=3, epsilon=0.5, init_var=0.2, progress=False)
    path = art.save(tmp_path / "lms")
    code, out, _ = run(["inspect", str(path)], capsys)
    history = art.meta["training"]["loss_history"]
    assert code == 0 and "training: 4 steps in" in out and f"loss {history[0]:.3f} ->" in out


def test_a_history_with_non_numbers_is_not_drawn() -> None:
    doc = {"config": {"training": {"loss_first": float("nan"), "loss_history": [1.0, float("inf"), "x"]}}}
    (curve,) = training.curves(doc)
    assert curve.losses == () and curve.first is None and "no history stored" in training.describe(curve)
