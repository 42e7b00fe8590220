"""Progress when stderr is not a terminal: a line per interval with counts, info, rate and time
left; nothing for short loops, with STEERLAB_QUIET, or with the interval at 0."""

from __future__ import annotations

import pytest

from steerlab import progress
from steerlab.progress import _LogLines, maybe_bar


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_line_per_interval_with_count_info_rate_and_time_left(capsys) -> None:
    clock = FakeClock()
    lines = _LogLines(100, "training", 60.0, clock)
    for step in range(1, 101):
        clock.now = 2.0 * step  # 2 s a step: a line at steps 30, 60, 90
        lines.advance(1, f"loss {5 - step / 100:.2f}")
    lines.close()
    out = capsys.readouterr().err.splitlines()
    assert out[:3] == ["training: 30/100 (30%) · loss 4.70 · 2.00 s/it · ~2:20 left",
                       "training: 60/100 (60%) · loss 4.40 · 2.00 s/it · ~1:20 left",
                       "training: 90/100 (90%) · loss 4.10 · 2.00 s/it · ~0:20 left"]
    assert out[3] == "training: done: 100/100 in 3:20 · loss 4.00"
    assert len(out) == 4


def test_a_short_loop_writes_nothing(capsys) -> None:
    clock = FakeClock()
    lines = _LogLines(10, "generating", 60.0, clock)
    for step in range(10):
        clock.now = float(step)
        lines.advance(1)
    lines.close()
    assert capsys.readouterr().err == ""


def test_a_stopped_loop_says_where_it_stopped(monkeypatch, capsys) -> None:
    monkeypatch.delenv("STEERLAB_QUIET", raising=False)
    monkeypatch.setenv("STEERLAB_PROGRESS_INTERVAL", "1e-9")
    with pytest.raises(KeyboardInterrupt), maybe_bar(True, 5, "embedding") as advance:
        advance(2)
        raise KeyboardInterrupt
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("embedding: 2/5 (40%)")
    assert err[-1].startswith("embedding: stopped at 2/5 in ")


@pytest.mark.parametrize("env", [{"STEERLAB_QUIET": "1"}, {"STEERLAB_PROGRESS_INTERVAL": "0"}])
def test_quiet_or_interval_zero_writes_nothing(monkeypatch, capsys, env) -> None:
    monkeypatch.delenv("STEERLAB_QUIET", raising=False)
    monkeypatch.setenv("STEERLAB_PROGRESS_INTERVAL", "1e-9")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with maybe_bar(True, 3, "generating") as advance:
        for _ in range(3):
            advance(1, "x")
    with maybe_bar(False, 3, "off") as advance:  # progress=False never writes
        advance(3)
    assert capsys.readouterr().err == ""


def test_the_interval_reads_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("STEERLAB_PROGRESS_INTERVAL", raising=False)
    assert progress.log_interval() == 60.0
    monkeypatch.setenv("STEERLAB_PROGRESS_INTERVAL", "5")
    assert progress.log_interval() == 5.0
    monkeypatch.setenv("STEERLAB_PROGRESS_INTERVAL", "soon")
    with pytest.warns(UserWarning, match="not a number of seconds"):
        assert progress.log_interval() == 60.0  # unreadable: the default, said, not a crash mid-run
    monkeypatch.setenv("STEERLAB_PROGRESS_INTERVAL", "-3")
    assert progress.log_interval() == 0.0
