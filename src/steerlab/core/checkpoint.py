"""Training checkpoints that resume only their own run: parameters and Adam moments as
safetensors, and a JSON record of the run (data digest, settings, model) that must match exactly.

Used by every steerlab trainer with a loop of its own (LM-Steer, DGLM). Never pickle: a
checkpoint is tensors and JSON, so loading one cannot run code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from steerlab.core.atomic import atomic_dir
from steerlab.errors import CheckpointMismatchError, Interrupted

CHECKPOINT_FILES = frozenset({"checkpoint.safetensors", "state.json"})


def save_checkpoint(path: Path, params: Mapping[str, torch.Tensor], opt: torch.optim.Optimizer, step: int,
                    history: list[float], run: dict[str, Any], what: str = "checkpoint") -> None:
    """Write the parameters, Adam moments, step, loss history and run record atomically."""
    tensors = {f"param.{n}": p.detach().clone() for n, p in params.items()}
    for i, p in enumerate(params.values()):
        st = opt.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in st:
                tensors[f"adam.{i}.{key}"] = st[key].detach().clone()
        if "step" in st:
            tensors[f"adam.{i}.step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1)
    with atomic_dir(path, CHECKPOINT_FILES, overwrite=True, what=what) as tmp:
        save_file(tensors, str(tmp / "checkpoint.safetensors"))
        (tmp / "state.json").write_text(json.dumps({"step": step, "history": history, "run": run}) + "\n")


def load_checkpoint(path: Path, params: Mapping[str, torch.Tensor], opt: torch.optim.Optimizer, run: dict[str, Any],
                    n_steps: int) -> tuple[int, list[float]]:
    """Restore a checkpoint made by the same run (data, settings, model); refuse any other."""
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        tensors = load_file(str(path / "checkpoint.safetensors"))
    except (OSError, ValueError, SafetensorError) as e:
        raise CheckpointMismatchError(f"{path} holds an unreadable checkpoint ({type(e).__name__}: {e}); "
                                      "pass restart=True (CLI: --restart) to train from scratch") from None
    old = state.get("run") if isinstance(state, dict) else None
    if old != run:
        diffs = differences(old, run)
        raise CheckpointMismatchError(f"{path} holds a checkpoint of another run ({diffs}); pass restart=True "
                                      "(CLI: --restart) to train from scratch, or another checkpoint directory")
    step = state.get("step")
    if not isinstance(step, int) or step > n_steps:
        raise CheckpointMismatchError(f"{path} is at step {step!r}, past n_steps={n_steps}; raise n_steps or pass "
                                      "restart=True (CLI: --restart)")
    expected = {f"param.{n}": tuple(p.shape) for n, p in params.items()}
    if {k: tuple(tensors[k].shape) for k in expected if k in tensors} != expected:
        raise CheckpointMismatchError(f"{path}: checkpoint tensors do not fit this run; pass restart=True")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(tensors[f"param.{n}"])
    for i, p in enumerate(params.values()):
        if f"adam.{i}.exp_avg" in tensors:
            opt.state[p] = {"step": tensors[f"adam.{i}.step"].reshape(()),
                            "exp_avg": tensors[f"adam.{i}.exp_avg"], "exp_avg_sq": tensors[f"adam.{i}.exp_avg_sq"]}
    return step, [float(x) for x in state.get("history", [])]


def differences(old: Any, new: dict[str, Any]) -> str:
    """What differs between a checkpoint's run record and this run, for the error message."""
    if not isinstance(old, dict):
        return "made before checkpoints recorded their data and settings"
    out: list[str] = []
    if old.get("data") != new["data"]:
        out.append("different data")
    if old.get("model") != new["model"]:
        out.append("a different model")
    config = old.get("config")
    was: dict[str, Any] = config if isinstance(config, dict) else {}
    for key, value in new["config"].items():
        if was.get(key) != value:
            out.append(f"{key} {was.get(key)!r} -> {value!r}")
    return ", ".join(out) or "different settings"


def interrupted(ckpt: Path | None, done: int, start: int, n_steps: int, save: Callable[[Path], None],
                is_main: bool = True) -> Interrupted:
    """What a trainer raises on Ctrl-C: saves a checkpoint at the last finished step (main process
    only; ``save(path)`` writes it) and says what was kept."""
    if ckpt is None:
        return Interrupted(f"training stopped at step {done}/{n_steps}; no checkpoint directory, nothing was kept")
    if done > start and is_main:
        save(ckpt)
    kept = (f"checkpoint at step {done}/{n_steps} kept in {ckpt}" if done > start
            else f"no step finished; {ckpt} is as it was")
    return Interrupted(f"training stopped; {kept}; run the same command to resume")
