"""What the steering table op costs inside a CUDA graph, with torch alone (no vLLM).

vLLM's CUDA build cannot be installed on a machine without network (its wheel pins its own torch),
but the question the vLLM plugin's op raises needs only torch: how much does one decode step slow
down when every decoder layer ends with steerlab's table op, and which form is cheaper?

- ``none``: the decoder as it is;
- ``factored``: the plugin's earlier op — per token a row of D artifact strengths, ``coef @ dirs``
  ((T, D) x (D, H)), then P projections by artifact index;
- ``lean``: the op the plugin runs now (``steerlab.vllm.tables.SteeringTables.steer``) — per token a
  row's own summed add vector, ``h + add[layer][token_row]``, then P projections.

Random-weight decoders of real shapes are built from transformers configs (Qwen2.5-1.5B,
Llama-3-8B; bf16), one decode step of T tokens (T sequences of one token each, no KV history: the
step's attention is cheaper than a real one's, so the op's share is over-estimated, never under) is
captured in a CUDA graph per variant and replayed; ratios against ``none``, at T = 1, 32, 256::

    python benchmarks/gpu_graph_op.py --out results/gpu_graph_op.json      # one GPU, ~5 minutes
    python benchmarks/gpu_graph_op.py --tiny                                 # CPU: a tiny model, no graph

The tiny mode runs in the test suite (``tests/test_vllm_safety.py``): the ``lean`` op here equals
the plugin's own, and ``factored`` and ``lean`` give the same hidden states on the same steering.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

SHAPES: dict[str, dict[str, Any]] = {
    "qwen2.5-1.5b": {"model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960,
                     "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
                     "vocab_size": 151936, "tie_word_embeddings": True},
    "llama-3-8b": {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
                   "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                   "vocab_size": 128256, "rope_theta": 500000.0},
    "tiny": {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300},
}


class Ops:
    """Both forms' tables for ``rows`` rows (row 0 unsteered), filled with the same steering:
    row r adds sum_d coef[r, d] * dirs[d] and projects onto one artifact's unit direction."""

    def __init__(self, layers: int, hidden: int, rows: int, tokens: int, artifacts: int, projections: int,
                 dtype: torch.dtype, device: torch.device, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        L, V, D, P, H = layers, rows, artifacts, projections, hidden  # noqa: N806
        self.P = P
        dirs = torch.randn(L, D, H, generator=g)
        units = dirs / dirs.norm(dim=-1, keepdim=True)
        coef = torch.randn(L, V, D, generator=g) * (torch.rand(L, V, D, generator=g) < 0.1)  # few artifacts a row
        pidx = torch.randint(0, D, (L, V, P), generator=g)
        ps = torch.rand(L, V, P, generator=g)
        pc = torch.randn(L, V, P, generator=g)
        coef[:, 0], ps[:, 0] = 0, 0  # row 0: unsteered
        self.token_row = torch.randint(0, V, (tokens,), generator=g).to(device)
        put = {"dtype": dtype, "device": device}
        self.f = {"coef": coef.to(**put), "dirs": dirs.to(**put), "units": units.to(**put), "pidx": pidx.to(device),
                  "ps": ps.to(**put), "pc": pc.to(**put)}
        add = torch.einsum("lvd,ldh->lvh", coef, dirs)  # (L, V, H): each row's summed add vector, in float32
        proj_unit = units[torch.arange(L)[:, None, None], pidx]  # (L, V, P, H)
        self.lean_t = {"add": add.to(**put), "proj_unit": proj_unit.to(**put), "proj_strength": ps.to(**put),
                       "proj_target": pc.to(**put)}

    def factored(self, layer: int, h: Tensor) -> Tensor:
        v = self.token_row[: h.shape[0]]
        h = h + self.f["coef"][layer][v] @ self.f["dirs"][layer]  # (T, D) @ (D, H)
        pidx, ps, pc = (self.f[k][layer][v] for k in ("pidx", "ps", "pc"))
        for j in range(self.P):
            u = self.f["units"][layer][pidx[:, j]]
            dot = (h * u).sum(-1, keepdim=True)
            h = h + ps[:, j:j + 1] * (pc[:, j:j + 1] - dot) * u
        return h

    def lean(self, layer: int, h: Tensor) -> Tensor:
        """The plugin's op (``SteeringTables.steer``), on these tables."""
        rows = self.token_row[: h.shape[0]]
        h = h + self.lean_t["add"][layer][rows]
        units = self.lean_t["proj_unit"][layer][rows]
        strength = self.lean_t["proj_strength"][layer][rows]
        target = self.lean_t["proj_target"][layer][rows]
        for j in range(self.P):
            u = units[:, j]
            dot = (h * u).sum(-1, keepdim=True)
            h = h + strength[:, j:j + 1] * (target[:, j:j + 1] - dot) * u
        return h


def build(shape: str, dtype: torch.dtype, device: torch.device) -> Any:
    """A random-weight causal LM of ``shape``'s sizes."""
    import transformers as tf

    spec = dict(SHAPES[shape])
    config = tf.AutoConfig.for_model(spec.pop("model_type"), **spec)
    with torch.device(device):
        model = tf.AutoModelForCausalLM.from_config(config, torch_dtype=dtype)
    return model.eval()


def wrap(model: Any, op: Any) -> None:
    """Every decoder layer ends with ``op(layer, hidden)`` on its (T, H) output (``op`` None: as is)."""
    for i, layer in enumerate(model.model.layers):
        inner = layer.forward

        def forward(*args: Any, _inner: Any = inner, _i: int = i, **kwargs: Any) -> Any:
            out = _inner(*args, **kwargs)
            if op is None:
                return out
            h = out[0] if isinstance(out, tuple) else out  # (B, 1, H)
            new = op(_i, h.reshape(-1, h.shape[-1])).view(h.shape)
            return (new, *out[1:]) if isinstance(out, tuple) else new

        layer.forward = forward


def step_time(model: Any, tokens: int, device: torch.device, graph: bool, iters: int) -> float:
    """Median seconds of one decode step of ``tokens`` sequences (CUDA graph replay where ``graph``)."""
    ids = torch.randint(0, model.config.vocab_size, (tokens, 1), device=device)

    def run() -> Any:
        return model(input_ids=ids, use_cache=False).logits

    with torch.no_grad():
        for _ in range(3):
            run()
        call = run
        if graph:
            torch.cuda.synchronize()
            g = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(g):
                    run()
                call = g.replay  # type: ignore[assignment]
            except RuntimeError as e:  # a model whose forward cannot be captured: timed eagerly, said so
                print(f"capture failed, timing eagerly: {e}")
                torch.cuda.synchronize()
        times = []
        for _ in range(iters):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                call()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                call()
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(shape: str, token_counts: list[int], iters: int, device: torch.device, dtype: torch.dtype,
            artifacts: int = 32, projections: int = 1, requests: int = 256, segments: int = 4) -> dict[str, Any]:
    """Seconds per step per variant and token count, and the ratios to ``none``."""
    model = build(shape, dtype, device)
    layers, hidden = model.config.num_hidden_layers, model.config.hidden_size
    ops = Ops(layers, hidden, 1 + requests * segments, max(token_counts), artifacts, projections, dtype, device)
    variants = {"none": None, "factored": ops.factored, "lean": ops.lean}
    current: dict[str, Any] = {"op": None}
    wrap(model, lambda i, h: current["op"](i, h) if current["op"] is not None else h)
    out: dict[str, Any] = {"shape": shape, "seconds": {}, "ratio_to_none": {}}
    graph = device.type == "cuda"
    for t in token_counts:
        secs = {}
        for name, op in variants.items():
            current["op"] = op
            secs[name] = step_time(model, t, device, graph, iters)
        out["seconds"][str(t)] = secs
        out["ratio_to_none"][str(t)] = {k: round(secs["none"] / v, 4) for k, v in secs.items()}  # throughput ratio
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny model on the CPU, no graph (the suite's mode)")
    parser.add_argument("--shapes", default="qwen2.5-1.5b,llama-3-8b")
    parser.add_argument("--tokens", default="1,32,256")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.tiny:
        results = [measure("tiny", [1, 8], 3, torch.device("cpu"), torch.float32, requests=4)]
    else:
        if not torch.cuda.is_available():
            raise SystemExit("needs a CUDA GPU (or --tiny)")
        device = torch.device("cuda")
        results = []
        for shape in args.shapes.split(","):
            results.append(measure(shape, [int(x) for x in args.tokens.split(",")], args.iters, device,
                                   torch.bfloat16))
            torch.cuda.empty_cache()
    report = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() and not args.tiny else "cpu",
              "torch": torch.__version__, "results": results}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
