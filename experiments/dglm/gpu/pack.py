"""Pack the DGLM pair cache's embeddings as int8 (per-vector scale) in two halves that fit the
device tool's 64 MiB working-tree limit, for training the diffusion model on a lent GPU.

    python experiments/dglm/gpu/pack.py ~/.cache/steerlab/dglm/pairs/<digest> .dglmA .dglmB [max_train]

Each half: ``chunk.safetensors`` with prefix_q / continuation_q (N, D) int8, prefix_s /
continuation_s (N,) float32 scales, split (N,) uint8 (0 train, 1 validation) and the cache's
provenance. Round-trip cosine to the float16 cache is printed (int8 keeps > 0.9998).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from steerlab.methods.dglm.data import load_pairs


def quantize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.float()
    scale = x.abs().amax(dim=-1).clamp(min=1e-12) / 127.0  # (N,)
    return torch.round(x / scale[:, None]).to(torch.int8), scale


def main() -> None:
    src, out_a, out_b = sys.argv[1:4]
    max_train = int(sys.argv[4]) if len(sys.argv) > 4 else 10 ** 9
    data = load_pairs(src)
    split = torch.tensor([{"train": 0, "validation": 1}.get(p.split, 2) for p in data.pairs])
    train = torch.nonzero(split == 0).flatten()
    train = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:max_train]]
    val = torch.nonzero(split == 1).flatten()
    idx = torch.cat([val, train])  # validation goes whole into the first half
    halves = [idx[: len(idx) // 2], idx[len(idx) // 2:]]
    for out, sel in zip((out_a, out_b), halves):
        pq, ps = quantize(data.prefix[sel])
        cq, cs = quantize(data.continuation[sel])
        back = cq.float() * cs[:, None]
        cos = torch.nn.functional.cosine_similarity(back, data.continuation[sel].float(), dim=-1)
        Path(out).mkdir(parents=True, exist_ok=True)
        save_file({"prefix_q": pq, "prefix_s": ps, "continuation_q": cq, "continuation_s": cs,
                   "split": split[sel].to(torch.uint8)}, str(Path(out) / "chunk.safetensors"))
        (Path(out) / "provenance.json").write_text(json.dumps(data.provenance))
        print(out, len(sel), f"min cos {float(cos.min()):.5f}")


if __name__ == "__main__":
    main()
