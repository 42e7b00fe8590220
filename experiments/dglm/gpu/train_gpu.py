"""Train DGLM diffusion models on a lent GPU from int8-packed pair embeddings (see pack.py), with a
wall-clock budget: each configuration times 50 steps, then trains as many as its budget allows
(``steerlab.methods.dglm.train.train_diffusion``, the library's own loop), and is measured on the
held-out split. Several configurations run as parallel processes on the one GPU.

    python experiments/dglm/gpu/train_gpu.py OUT BUDGET_S DATA_DIR [DATA_DIR ...]

Writes OUT/<config>/diffusion_config.json and diffusion_weights.fp16.safetensors (float16, to
come back under the tool's per-file limit), OUT/<config>.json (figures) and OUT/log.txt.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

DEV = "cuda" if torch.cuda.is_available() else "cpu"
CONFIGS = {
    "w256l4": dict(width=256, layers=4, heads=4, n_tokens=8, dropout=0.1, batch=512, lr=5e-4),
    "w256l8t16": dict(width=256, layers=8, heads=4, n_tokens=16, dropout=0.1, batch=512, lr=4e-4),
}


if "DGLM_CONFIGS" in __import__("os").environ:  # a second round: {"name": {...}, ...}
    CONFIGS = json.loads(__import__("os").environ["DGLM_CONFIGS"])


def _sync() -> None:
    if DEV == "cuda":
        torch.cuda.synchronize()


def load(dirs: list[str]):  # -> PairSet
    from steerlab.methods.dglm.data import Pair, PairSet

    pre, cont, split, prov = [], [], [], {}
    for d in dirs:
        f = Path(d) / "chunk.safetensors"
        if not f.is_file():
            print(f"missing {f}; training on the rest", flush=True)
            continue
        t = load_file(str(f))
        pre.append(t["prefix_q"].float() * t["prefix_s"][:, None])
        cont.append(t["continuation_q"].float() * t["continuation_s"][:, None])
        split.append(t["split"])
        prov = json.loads((Path(d) / "provenance.json").read_text())
    s = torch.cat(split).tolist()
    pairs = [Pair("", "", "", "train" if x == 0 else "validation") for x in s]
    prov = {**prov, "carried": "int8 per-vector scale", "pairs_used": len(pairs)}
    return PairSet(pairs, torch.cat(pre), torch.cat(cont), prov)


def run(name: str, out: str, budget: float, dirs: list[str]) -> None:
    from steerlab.methods.dglm.diffusion import Denoiser, DiffusionConfig, diffusion_loss, sample
    from steerlab.methods.dglm.train import train_diffusion

    t_start = time.time()
    spec = dict(CONFIGS[name])
    batch, lr = spec.pop("batch"), spec.pop("lr")
    config = DiffusionConfig(dim=384, **spec)
    data = load(dirs)
    train = data.split("train")
    # time 50 steps of the same work
    m = Denoiser(config).to(DEV)
    opt = torch.optim.AdamW(m.parameters(), lr=lr)
    x, c = train.continuation[:batch].to(DEV), train.prefix[:batch].to(DEV)
    for i in range(60):
        if i == 10:
            _sync()
            t0 = time.time()
        loss = diffusion_loss(m, x, c)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _sync()
    per_step = (time.time() - t0) / 50 * 1.15  # the library loop adds a little
    left = budget - (time.time() - t_start) - 40  # keep time for the held-out figures
    n_steps = max(int(__import__("os").environ.get("MIN_STEPS", 500)), int(left / per_step))
    print(f"{name}: {per_step * 1000:.2f} ms/step -> {n_steps} steps", flush=True)
    del m, opt
    t1 = time.time()
    dm = train_diffusion(data, config, n_steps=n_steps, batch_size=batch, lr=lr, warmup=min(1000, n_steps // 10),
                         device=DEV, progress=False)
    train_s = time.time() - t1
    # more held-out figures: steps, cfg, sampler
    val = data.split("validation")
    model = dm.model.to(DEV).eval()
    g = torch.Generator(device=DEV).manual_seed(0)
    k = min(int(__import__("os").environ.get("EVAL_K", 1024)), len(val.pairs))
    xv, cv = val.continuation[:k].to(DEV), val.prefix[:k].to(DEV)
    cos = torch.nn.functional.cosine_similarity
    extra = {}
    for steps, cfg, sampler in ((10, 1.0, "ddim"), (25, 1.0, "ddim"), (50, 1.0, "ddim"), (25, 2.0, "ddim"),
                                (25, 3.0, "ddim"), (250, 1.0, "ddpm")):
        s = sample(model, cv, steps=steps, cfg_scale=cfg, sampler=sampler, generator=g.manual_seed(0))
        extra[f"cos_{sampler}{steps}_cfg{cfg:g}"] = round(float(cos(s, xv, dim=-1).mean()), 4)
        extra[f"norm_{sampler}{steps}_cfg{cfg:g}"] = round(float(s.norm(dim=-1).mean()), 4)
    dm.meta["validation_more"] = extra
    dm.meta["training"]["device"] = (torch.cuda.get_device_name() if DEV == "cuda" else "cpu")
    dm.meta["training"]["train_seconds"] = round(train_s, 1)
    target = Path(out) / name
    dm.save(target)
    w = target / "diffusion_weights.safetensors"
    save_file({k2: v.half() for k2, v in load_file(str(w)).items()}, str(target / "diffusion_weights.fp16.safetensors"))
    w.unlink()
    (Path(out) / f"{name}.json").write_text(json.dumps(dm.meta["validation"] | extra | {
        "n_steps": n_steps, "ms_per_step": per_step * 1000, "train_seconds": train_s,
        "loss_last_100": dm.meta["training"]["loss_last_100"]}, indent=1))
    print(name, json.dumps(dm.meta["validation"]), json.dumps(extra), flush=True)


def main() -> None:
    out, budget, dirs = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    names = [n for n in CONFIGS if not CONFIGS[n].get("skip")]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=run, args=(n, out, budget, dirs)) for n in names]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    print("exit codes", [p.exitcode for p in procs], flush=True)


if __name__ == "__main__":
    main()
