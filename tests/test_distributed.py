"""Training on two processes (torch.distributed, gloo on this machine's loopback) equals one
process, for LM-Steer (accelerate) and SteerLM SFT (TRL's SFTTrainer): the same global batch is
split between the processes, gradients are all-reduced and the loss is a mean over the global
batch's tokens."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _flat(norms: dict) -> dict:
    return {f"{k}.{i}": x for k, v in norms.items() for i, x in enumerate(v if isinstance(v, list) else [v])}


@pytest.mark.slow
@pytest.mark.parametrize("script", ["dist_lm_steer.py", "dist_sft.py"])
def test_two_processes_train_like_one(tmp_path: Path, script: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    script = str(ROOT / "tests" / script)
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    subprocess.run([sys.executable, script, str(one), "6"], env=env, check=True, timeout=600, capture_output=True)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port())]
    done = subprocess.run([*torchrun, script, str(two), "6"], env=env, timeout=600, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert a["processes"] == 1 and b["processes"] == 2
    assert all(abs(x - y) < 1e-3 for x, y in zip(a["history"], b["history"])), (a["history"], b["history"])
    norms_a, norms_b = _flat(a["norms"]), _flat(b["norms"])
    assert norms_a.keys() == norms_b.keys()
    for k, v in norms_a.items():
        assert abs(v - norms_b[k]) <= 1e-4 * v, (k, v, norms_b[k])
