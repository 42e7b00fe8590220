"""DGLM mechanics: pair cutting and caching, the diffusion schedule and parameterisation (exact
math), samplers (an oracle denoiser is recovered exactly), training that learns the condition,
classifier-free and probe guidance."""

from __future__ import annotations

import math

import pytest
import torch

from steerlab.errors import DataError, SteerlabError
from steerlab.generation.decoding import Decoding
from steerlab.methods.dglm.data import Pair, PairSet, cut_pairs, load_pairs, save_pairs
from steerlab.methods.dglm.diffusion import (
    Denoiser,
    DiffusionConfig,
    ProbeGuide,
    alpha_sigma,
    diffusion_loss,
    sample,
)
from tests.helpers import CORPUS


def test_schedule_is_variance_preserving_and_spans_signal_to_noise() -> None:
    t = torch.linspace(0, 1, 101)
    a, s = alpha_sigma(t)
    torch.testing.assert_close(a ** 2 + s ** 2, torch.ones_like(t))
    assert a[0] > 0.999 and a[-1] < 0.002 and bool((a[1:] <= a[:-1]).all())


def test_v_parameterisation_recovers_x_and_eps_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    x, eps, t = torch.randn(5, 16, generator=g), torch.randn(5, 16, generator=g), torch.rand(5, generator=g)
    a, s = alpha_sigma(t)
    z = a[:, None] * x + s[:, None] * eps
    v = a[:, None] * eps - s[:, None] * x
    torch.testing.assert_close(a[:, None] * z - s[:, None] * v, x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s[:, None] * z + a[:, None] * v, eps, atol=1e-5, rtol=1e-5)


class Oracle(Denoiser):
    """The exact v for a data distribution that is a single point ``target``."""

    def __init__(self, config: DiffusionConfig, target: torch.Tensor) -> None:
        super().__init__(config)
        self.target = target

    def forward(self, z, t, cond, drop=None):  # type: ignore[override]
        a, s = alpha_sigma(t, self.config.schedule_offset)
        eps = (z - a[:, None] * self.target) / s[:, None]
        return a[:, None] * eps - s[:, None] * self.target


@pytest.mark.parametrize("sampler,steps", [("ddim", 5), ("ddim", 50), ("ddpm", 50)])
def test_samplers_recover_the_point_an_oracle_denoises_towards(sampler: str, steps: int) -> None:
    config = DiffusionConfig(dim=16, n_tokens=4, width=32, layers=1, heads=2)
    target = torch.randn(1, 16, generator=torch.Generator().manual_seed(1))
    out = sample(Oracle(config, target), torch.ones(3, 16), steps=steps, sampler=sampler,
                 generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(out, target.expand(3, -1) / 4.0, atol=1e-4, rtol=1e-4)  # back from the √D space


def test_ddim_is_deterministic_and_bad_settings_are_refused() -> None:
    config = DiffusionConfig(dim=16, n_tokens=4, width=32, layers=1, heads=2)
    model = Denoiser(config)
    cond = torch.randn(2, 16)
    a = sample(model, cond, steps=4, generator=torch.Generator().manual_seed(0))
    b = sample(model, cond, steps=4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    with pytest.raises(SteerlabError, match="sampler"):
        sample(model, cond, sampler="euler")
    with pytest.raises(SteerlabError, match="split"):
        DiffusionConfig(dim=10, n_tokens=4)


def _toy(n: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuations that are a fixed rotation of their prefix: learnable only from the condition."""
    g = torch.Generator().manual_seed(seed)
    cond = torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=-1)
    return cond, torch.roll(cond, 3, dims=1)


def test_training_learns_the_condition_and_guidance_scales_it() -> None:
    torch.manual_seed(0)
    config = DiffusionConfig(dim=16, n_tokens=4, width=64, layers=2, heads=4, cond_dropout=0.1)
    model = Denoiser(config)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    cond, x = _toy(2048, 16, 0)
    first = None
    for _step in range(600):
        idx = torch.randint(0, len(x), (128,), generator=g)
        loss = diffusion_loss(model, x[idx], cond[idx], generator=g)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.6 * first
    model.eval()
    test_cond, test_x = _toy(64, 16, 1)
    cos = {}
    for scale in (0.0, 1.0, 2.0):
        out = sample(model, test_cond, steps=20, cfg_scale=scale, generator=torch.Generator().manual_seed(3))
        cos[scale] = float(torch.nn.functional.cosine_similarity(out, test_x, dim=-1).mean())
    assert cos[1.0] > cos[0.0] + 0.3, cos  # the prefix matters
    assert cos[2.0] >= cos[1.0] - 0.05, cos


def _toy_cov(dim: int, seed: int = 8) -> torch.Tensor:
    m = torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed))
    return m @ m.T / dim + 0.1 * torch.eye(dim)  # (D, D), positive definite


@pytest.mark.parametrize("step", ["diagonal", "covariance", "gradient"])
def test_probe_guidance_moves_the_probe_with_its_weight(step: str) -> None:
    config = DiffusionConfig(dim=16, n_tokens=4, width=32, layers=1, heads=2)
    model = Denoiser(config)
    coef = torch.nn.functional.normalize(torch.randn(16, generator=torch.Generator().manual_seed(5)), dim=0)
    cond = torch.randn(32, 16, generator=torch.Generator().manual_seed(6))
    cov = _toy_cov(16)

    def probe_logit(out: torch.Tensor) -> float:
        unit = torch.nn.functional.normalize(out, dim=-1)
        return float((unit @ coef).mean())

    got = {}
    for target, weight in ((1.0, 0.0), (1.0, 1.0), (1.0, 4.0), (-1.0, 4.0)):
        guide = ProbeGuide(coef, 0.0, torch.zeros(16), torch.ones(16), target=target, weight=weight, step=step,
                           cov=cov)
        out = sample(model, cond, steps=10, guides=[guide], generator=torch.Generator().manual_seed(7))
        got[(target, weight)] = probe_logit(out)
    assert got[(1.0, 0.0)] < got[(1.0, 1.0)] < got[(1.0, 4.0)], got
    assert got[(-1.0, 4.0)] < got[(1.0, 0.0)], got
    assert math.isfinite(got[(1.0, 4.0)])


def test_guidance_steps_take_their_documented_directions_exactly() -> None:
    """One guided x̂: ``x̂ − GUIDE_STEP · |w| · ‖x̂‖ · d̂`` with d̂ the normalised preconditioned
    loss gradient: raw, × std², or × Σ."""
    from steerlab.methods.dglm.diffusion import GUIDE_STEP, _guided_x0

    g = torch.Generator().manual_seed(3)
    coef, mean, x0 = torch.randn(16, generator=g), torch.randn(16, generator=g) * 0.1, torch.randn(4, 16, generator=g)
    std = torch.rand(16, generator=g) + 0.5
    cov = _toy_cov(16)
    x = x0.clone().requires_grad_(True)
    unit = x / x.norm(dim=-1, keepdim=True)
    logit = ((unit - mean) / std) @ coef + 0.3
    (grad,) = torch.autograd.grad((-2.0 * torch.nn.functional.logsigmoid(-logit)).sum(), x)  # target −1, weight 2
    for step, direction in (("gradient", grad), ("diagonal", grad * std ** 2), ("covariance", grad @ cov)):
        guide = ProbeGuide(coef, 0.3, mean, std, target=-1.0, weight=2.0, step=step, cov=cov)
        torch.testing.assert_close(guide.precondition(grad), direction)
        want = x0 - GUIDE_STEP * 2.0 * x0.norm(dim=-1, keepdim=True) * torch.nn.functional.normalize(direction, dim=-1)
        torch.testing.assert_close(_guided_x0(x0, [guide]), want)
        assert float(guide.loss(torch.nn.functional.normalize(want, dim=-1)).mean()) < float(
            guide.loss(torch.nn.functional.normalize(x0, dim=-1)).mean())
    with pytest.raises(SteerlabError, match="needs the embedding covariance"):
        ProbeGuide(coef, 0.0, mean, std, step="covariance")
    with pytest.raises(SteerlabError, match="guidance step must be one of"):
        ProbeGuide(coef, 0.0, mean, std, step="natural")


def test_guidance_covariance_is_the_unit_train_continuations_covariance() -> None:
    import numpy as np

    data = _toy_pairs(200)
    train = data.split("train").continuation.double().numpy()
    unit = train / np.linalg.norm(train, axis=1, keepdims=True)
    np.testing.assert_allclose(data.guidance_covariance().numpy(), np.cov(unit, rowvar=False), atol=1e-7)


def test_pairs_are_cut_split_by_document_and_cached(tiny_tokenizer, tmp_path) -> None:
    from steerlab.data.corpora import Doc

    docs = [Doc(text, "x", f"doc{i}") for i, text in enumerate(CORPUS)] + [Doc(" ".join(CORPUS), "x", "long")]
    pairs = cut_pairs(tiny_tokenizer, docs, "toy", prefix_tokens=8, continuation_tokens=8, min_tokens=6)
    assert pairs and all(p.prefix and p.continuation for p in pairs)
    long = cut_pairs(tiny_tokenizer, docs[-1:], "toy", prefix_tokens=8, continuation_tokens=8)
    assert len(long) > 3 and len({p.split for p in long}) == 1  # one document: windows, one split
    data = PairSet(pairs, torch.randn(len(pairs), 8), torch.randn(len(pairs), 8), {"pairs": len(pairs)})
    save_pairs(data, tmp_path / "cache")
    back = load_pairs(tmp_path / "cache")
    assert back.pairs == pairs and torch.allclose(back.prefix, data.prefix, atol=1e-2)
    (tmp_path / "cache" / "pairs.jsonl").write_text("")
    with pytest.raises(DataError, match="do not match"):
        load_pairs(tmp_path / "cache")
    with pytest.raises(SteerlabError):
        cut_pairs(tiny_tokenizer, docs, "toy", prefix_tokens=0)
    assert isinstance(pairs[0], Pair)


def _toy_pairs(n: int = 1200) -> PairSet:
    cond, x = _toy(n, 16, 0)
    splits = ["validation" if i % 10 == 0 else "train" for i in range(n)]
    pairs = [Pair(f"p{i}", f"c{i}", "toy", s) for i, s in enumerate(splits)]
    return PairSet(pairs, cond, x, {"digest": "toy", "pairs": n})


def test_train_diffusion_resumes_exactly_and_round_trips(tmp_path, monkeypatch) -> None:
    import steerlab.methods.dglm.train as tr
    from steerlab.errors import Interrupted
    from steerlab.methods.dglm.train import DiffusionModel, train_diffusion

    data = _toy_pairs()
    config = DiffusionConfig(dim=16, n_tokens=4, width=32, layers=1, heads=2)
    kw = dict(batch_size=64, lr=2e-3, warmup=5, progress=False)
    straight = train_diffusion(data, config, n_steps=30, **kw)
    calls = {"n": 0}
    real = tr.diffusion_loss

    def interrupted(*a, **k):  # Ctrl-C during step 16
        calls["n"] += 1
        if calls["n"] == 16:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(tr, "diffusion_loss", interrupted)
    with pytest.raises(Interrupted, match="step 15/30"):
        train_diffusion(data, config, n_steps=30, checkpoint_dir=tmp_path / "ckpt", **kw)
    monkeypatch.setattr(tr, "diffusion_loss", real)
    resumed = train_diffusion(data, config, n_steps=30, checkpoint_dir=tmp_path / "ckpt", **kw)
    assert resumed.meta["training"]["resumed_from_step"] == 15
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    v = straight.meta["validation"]
    assert set(v) >= {"v_loss", "cos_conditional", "cos_unconditional", "cos_other_continuation"}
    straight.save(tmp_path / "dm")
    back = DiffusionModel.load(tmp_path / "dm")
    cond = data.prefix[:4]
    g = torch.Generator().manual_seed(0)
    want = sample(straight.model.eval(), cond, steps=3, generator=g)
    got = sample(back.model, cond, steps=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(got, want)
    other = DiffusionConfig(dim=16, n_tokens=4, width=64, layers=1, heads=2)
    from steerlab.errors import CheckpointMismatchError

    with pytest.raises(CheckpointMismatchError, match="width"):
        train_diffusion(data, other, n_steps=30, checkpoint_dir=tmp_path / "ckpt", **kw)


def test_train_decoder_leaves_the_model_as_it_was(tiny_llama) -> None:
    from steerlab.methods.dglm.decoder import PromptGenerator, PromptGeneratorConfig, noised, train_decoder
    from tests.helpers import logits

    texts = CORPUS * 3
    pairs = [Pair(t[: len(t) // 2], t[len(t) // 2:], "toy", "train" if i % 5 else "validation")
             for i, t in enumerate(texts)]
    g = torch.Generator().manual_seed(0)
    data = PairSet(pairs, torch.randn(len(pairs), 16, generator=g), torch.randn(len(pairs), 16, generator=g), {})
    before = {k: v.clone() for k, v in tiny_llama.model.state_dict().items()}
    base = logits(tiny_llama)
    config = PromptGeneratorConfig(dim=16, hidden=tiny_llama.hidden_size, k=2, width=32, noise_features=8)
    gen, factors, record = train_decoder(tiny_llama, data, config, n_steps=4, batch_size=4, lr=1e-2, r=2,
                                         prefix_drop=0.5, progress=False)
    with pytest.raises(SteerlabError, match="prefix_drop"):
        train_decoder(tiny_llama, data, config, n_steps=1, prefix_drop=1.5, progress=False)
    after = tiny_llama.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and torch.equal(logits(tiny_llama), base)
    assert factors and all(a.shape[0] == 2 and b.shape[1] == 2 for a, b in factors.values())
    assert len(record["history"]) == 4 and all(0 <= s <= 1 for s, _ in record["history"])
    assert isinstance(gen, PromptGenerator)
    soft = gen(noised(data.continuation[:3], torch.full((3,), 0.05)), torch.full((3,), 0.05))
    assert soft.shape == (3, 2, tiny_llama.hidden_size)
    # a shared prompt plus each row's own content: different embeddings give different prompts
    own = (soft - gen.base.detach()[None]).flatten(1)  # (3, k * H)
    assert float(torch.nn.functional.cosine_similarity(own[0], own[1], dim=0)) < 0.99


def test_train_decoder_warm_starts_from_trained_parts_exactly(tiny_llama) -> None:
    """A warm start begins at the given generator and LoRA (at learning rate 0 it ends there, bit
    for bit), then trains on; shapes it cannot take are refused."""
    from steerlab.methods.dglm.decoder import PromptGeneratorConfig, train_decoder

    pairs = [Pair(t[: len(t) // 2], t[len(t) // 2:], "toy", "train") for t in CORPUS * 2]
    g = torch.Generator().manual_seed(0)
    data = PairSet(pairs, torch.randn(len(pairs), 16, generator=g), torch.randn(len(pairs), 16, generator=g), {})
    config = PromptGeneratorConfig(dim=16, hidden=tiny_llama.hidden_size, k=2, width=32, noise_features=8)
    kw = {"batch_size": 2, "r": 2, "progress": False}
    gen, factors, _ = train_decoder(tiny_llama, data, config, n_steps=3, lr=1e-2, **kw)
    same_gen, same_factors, record = train_decoder(tiny_llama, data, None, n_steps=1, lr=0.0, lora_lr=0.0,
                                                   init=(gen, factors), **kw)
    assert record["warm_start"]
    assert all(torch.equal(v, same_gen.state_dict()[k]) for k, v in gen.state_dict().items())
    assert all(torch.equal(factors[n][i], same_factors[n][i]) for n in factors for i in (0, 1))
    fresh, _, _ = train_decoder(tiny_llama, data, config, n_steps=1, lr=0.0, lora_lr=0.0, **kw)
    assert not torch.equal(fresh.base, gen.base)  # without init the run starts elsewhere
    moved, _, _ = train_decoder(tiny_llama, data, None, n_steps=2, lr=1e-2, init=(gen, factors), **kw)
    assert not torch.equal(moved.base, gen.base)
    with pytest.raises(SteerlabError, match="rank 2; asked for r=4"):
        train_decoder(tiny_llama, data, None, n_steps=1, init=(gen, factors), **{**kw, "r": 4})
    with pytest.raises(SteerlabError, match="prompt generator is"):
        train_decoder(tiny_llama, data, PromptGeneratorConfig(dim=16, hidden=tiny_llama.hidden_size, k=3),
                      n_steps=1, init=(gen, factors), **kw)
    with pytest.raises(SteerlabError, match="other modules"):
        train_decoder(tiny_llama, data, None, n_steps=1, init=(gen, dict(list(factors.items())[1:])), **kw)


def test_dglm_rows_mix_with_other_rows_and_match_their_solo_runs(tiny_llama) -> None:
    import dataclasses

    import steerlab
    from steerlab.core.steerer import Steer
    from steerlab.generation.engine import Engine, Job
    from steerlab.generation.rows import build_rows
    from tests.conformance.factories import tiny_dglm

    lm = tiny_llama
    steer = tiny_dglm(lm)
    vec = steerlab.extract(lm, [("The movie was wonderful", "The movie was awful")], layers=[2])
    prompts = ["The movie was", "A quick brown fox", "I walked into the room"]
    rows = [(steer,), (Steer(vec, 4.0),), (dataclasses.replace(steer, options={"guide": "sentiment:negative",
                                                                               "steps": 2}),)]
    batch = steerlab.generate(lm, prompts, rows, max_new_tokens=5, progress=False)
    solo = [steerlab.generate(lm, [p], r, max_new_tokens=5, progress=False)[0] for p, r in zip(prompts, rows)]
    assert batch == solo
    plain = steerlab.generate(lm, prompts[:1], max_new_tokens=5, progress=False)[0]
    assert batch[0] != plain
    engine = Engine(lm).start()
    try:
        ready = [pair.row for pair in build_rows(lm, prompts, list(rows))]
        got = [engine.submit(Job(r.text, r.steering, soft_prompt=r.soft_prompt, decoding=Decoding(max_new_tokens=5)))
               .result(timeout=60)[0] for r in ready]
    finally:
        engine.stop()
    assert got == solo
    with pytest.raises(SteerlabError, match="steers through the prompt"):
        with steerlab.apply(lm, steer):
            pass
    with pytest.raises(SteerlabError, match="unknown DGLM probe 'sentimnt'.*Did you mean 'sentiment'"):
        steerlab.generate(lm, prompts[:1], (dataclasses.replace(steer, options={"guide": "sentimnt:positive"}),),
                          max_new_tokens=2, progress=False)


def test_assemble_swaps_the_diffusion_model_and_edits_probes(tiny_llama, tmp_path, capsys) -> None:
    """`steerlab dglm assemble`: a diffusion model trained elsewhere replaces the artifact's, a new
    probe is added with its own label names, one is dropped; the decoder side is kept exactly."""
    import numpy as np

    from steerlab.core.artifact import load_artifact
    from steerlab.methods.dglm.train import DiffusionModel
    from steerlab.scoring.linear import LinearHead
    from steerlab.scoring.probes import EmbeddingProbe
    from tests.conformance.factories import tiny_dglm
    from tests.helpers import run

    art = tiny_dglm(tiny_llama).artifact
    art.save(tmp_path / "base")
    torch.manual_seed(1)
    other = Denoiser(DiffusionConfig(dim=384, n_tokens=8, width=32, layers=1, heads=2))
    DiffusionModel(other, {"data": {"encoder": "all-minilm-l6-v2"}}).save(tmp_path / "diff")
    rng = np.random.default_rng(0)
    EmbeddingProbe("all-minilm-l6-v2", LinearHead(rng.normal(size=384), 0.5, np.zeros(384), np.ones(384))
                   ).save(tmp_path / "tox")
    code, _, err = run(["dglm", "assemble", "--from", str(tmp_path / "base"), "--out", str(tmp_path / "new"),
                        "--diffusion", str(tmp_path / "diff"), "--probe", f"toxicity:clean,toxic={tmp_path / 'tox'}",
                        "--drop-probe", "sentiment"], capsys)
    assert code == 0, err
    new = load_artifact(tmp_path / "new")
    assert set(new.probes) == {"toxicity"} and new.probes["toxicity"].labels == ("clean", "toxic")
    for k, v in other.state_dict().items():
        torch.testing.assert_close(new.diffusion.state_dict()[k], v.half().float())
    for k, v in art.generator.state_dict().items():
        assert torch.equal(new.generator.state_dict()[k], v)
    assert all(torch.equal(new.lora[n][0], art.lora[n][0]) for n in art.lora)
    code, _, err = run(["dglm", "assemble", "--from", str(tmp_path / "base"), "--out", str(tmp_path / "bad"),
                        "--drop-probe", "humour"], capsys)
    assert code != 0 and "no probe named 'humour'" in err and not (tmp_path / "bad").exists()


def test_documents_opening_with_an_eval_prompt_are_held_out(tiny_tokenizer) -> None:
    from steerlab.data.corpora import Doc
    from steerlab.methods.dglm.data import _opening, eval_openings

    held = frozenset({_opening(CORPUS[0])})
    kw = {"prefix_tokens": 4, "continuation_tokens": 4, "min_tokens": 4}
    for i, text in enumerate(CORPUS[:6]):
        doc = [Doc(text, "x", f"doc{i}")]
        plain = cut_pairs(tiny_tokenizer, doc, "toy", **kw)
        got = cut_pairs(tiny_tokenizer, doc, "toy", held_out=held, **kw)
        assert [p.prefix for p in got] == [p.prefix for p in plain]
        want = ["test"] * len(plain) if i == 0 else [p.split for p in plain]
        assert [p.split for p in got] == want
    assert len(eval_openings()) > 500  # the shipped evaluation prompt sets


def test_training_records_survive_save_and_load(tiny_llama, tmp_path) -> None:
    from steerlab.core.artifact import load_artifact
    from tests.conformance.factories import tiny_dglm

    art = tiny_dglm(tiny_llama).artifact
    art.meta["training"] = {"decoder": {"n_steps": 3, "history": [[0.5, 4.0]]}}
    art.meta["diffusion_validation"] = {"cos_conditional": 0.27}
    art.save(tmp_path / "a")
    back = load_artifact(tmp_path / "a")
    assert back.meta["training"]["decoder"]["history"] == [[0.5, 4.0]]
    assert back.meta["diffusion_validation"] == {"cos_conditional": 0.27}


def test_train_decoder_resumes_a_checkpoint_exactly(tiny_llama, tmp_path, monkeypatch) -> None:
    """4 steps straight == stopped by Ctrl-C during step 3 (a checkpoint at step 2 is kept), then
    the same call again: same draws, same optimiser moments, same weights."""
    from steerlab.errors import Interrupted
    from steerlab.methods.dglm import decoder as D

    pairs = [Pair(t[: len(t) // 2], t[len(t) // 2:], "toy", "train") for t in CORPUS * 2]
    g = torch.Generator().manual_seed(0)
    data = PairSet(pairs, torch.randn(len(pairs), 16, generator=g), torch.randn(len(pairs), 16, generator=g),
                   {"digest": "toy"})
    config = D.PromptGeneratorConfig(dim=16, hidden=tiny_llama.hidden_size, k=2, width=32, noise_features=8)
    kw = {"n_steps": 4, "batch_size": 3, "lr": 1e-2, "r": 2, "progress": False}
    gen_a, fac_a, rec_a = D.train_decoder(tiny_llama, data, config, **kw)

    real, calls = D.batch_inputs, []

    def stop_at_third(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(D, "batch_inputs", stop_at_third)
    with pytest.raises(Interrupted, match="resume"):
        D.train_decoder(tiny_llama, data, config, checkpoint_dir=tmp_path / "ck", **kw)
    monkeypatch.setattr(D, "batch_inputs", real)
    gen_b, fac_b, rec_b = D.train_decoder(tiny_llama, data, config, checkpoint_dir=tmp_path / "ck", **kw)
    assert rec_b["resumed_from_step"] == 2 and len(rec_b["history"]) == 4
    assert rec_b["history"] == rec_a["history"]
    for k, v in gen_a.state_dict().items():
        torch.testing.assert_close(gen_b.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    for n, (a, b) in fac_a.items():
        torch.testing.assert_close(fac_b[n][0], a, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(fac_b[n][1], b, rtol=1e-5, atol=1e-6)
    with pytest.raises(SteerlabError, match="another run"):
        D.train_decoder(tiny_llama, data, config, checkpoint_dir=tmp_path / "ck", **{**kw, "lr": 5e-3})


def test_the_guidance_covariance_travels_with_the_artifact_and_picks_the_step(tiny_llama, tmp_path) -> None:
    """Σ is saved and reloaded exactly (scaled by a power of two, float16), makes ``auto`` the
    covariance step, and is refused when it is not a (D, D) covariance; an artifact without it
    steps diagonally and refuses ``step=covariance`` with a clear error."""
    import dataclasses

    import steerlab
    from steerlab.core.artifact import load_artifact
    from steerlab.errors import ArtifactError
    from steerlab.methods.dglm import DGLMOptions, DGLMSteerer
    from tests.conformance.factories import tiny_dglm

    steer = tiny_dglm(tiny_llama)
    art, st = steer.artifact, DGLMSteerer()
    assert [g.step for g in st.guides(art, DGLMOptions(guide="sentiment:positive"), 1.0)] == ["diagonal"]
    with pytest.raises(SteerlabError, match="carries no embedding covariance"):
        steerlab.generate(tiny_llama, ["Hi"], (dataclasses.replace(steer, options={**steer.options,
                                                                                   "step": "covariance"}),),
                          max_new_tokens=1, progress=False)
    cov = _toy_cov(384) * 0.003
    with_cov = dataclasses.replace(art, guide_cov=cov)
    scale = 2.0 ** round(math.log2(float(torch.diagonal(cov).mean())))
    torch.testing.assert_close(with_cov.guide_cov * scale, cov, rtol=1e-3, atol=1e-7)  # float16 of cov / scale
    with_cov.save(tmp_path / "a")
    back = load_artifact(tmp_path / "a")
    assert torch.equal(back.guide_cov, with_cov.guide_cov)
    guides = st.guides(back, DGLMOptions(guide="sentiment:positive"), 1.0)
    assert [g.step for g in guides] == ["covariance"] and torch.equal(guides[0].cov, back.guide_cov)
    assert [g.step for g in st.guides(back, DGLMOptions(guide="sentiment:positive", step="diagonal"), 1.0)] == [
        "diagonal"]
    for bad, msg in ((torch.eye(16), "must be \\(384, 384\\)"), (-torch.eye(384), "not a covariance"),
                     (torch.eye(384) + torch.triu(torch.ones(384, 384), 1), "not a covariance"),
                     (torch.diag(torch.linspace(-1, 3, 384)), "not positive semi-definite"),
                     (torch.full((384, 384), float("nan")), "non-finite")):
        with pytest.raises(ArtifactError, match=msg):
            dataclasses.replace(art, guide_cov=bad)
    with pytest.raises(SteerlabError, match="step must be one of"):
        DGLMOptions(step="natural")


def test_assemble_computes_the_guidance_covariance_from_the_pairs(tiny_llama, tmp_path, capsys,
                                                                  monkeypatch) -> None:
    import steerlab.methods.dglm.data as data_mod
    from steerlab.core.artifact import load_artifact
    from tests.conformance.factories import tiny_dglm
    from tests.helpers import run

    g = torch.Generator().manual_seed(0)
    pairs = PairSet([Pair(f"p{i}", f"c{i}", "toy", "train") for i in range(500)],
                    torch.randn(500, 384, generator=g), torch.randn(500, 384, generator=g), {})
    monkeypatch.setattr(data_mod, "build_pairs", lambda *a, **k: pairs)
    monkeypatch.setattr("steerlab.cli.dglm.load", lambda name: tiny_llama)
    tiny_dglm(tiny_llama).artifact.save(tmp_path / "base")
    code, stdout, err = run(["dglm", "assemble", "--from", str(tmp_path / "base"), "--out", str(tmp_path / "new"),
                             "--covariance"], capsys)
    assert code == 0, err
    cov = load_artifact(tmp_path / "new").guide_cov
    want = pairs.guidance_covariance()
    torch.testing.assert_close(cov / float(torch.diagonal(cov).mean()), want / float(torch.diagonal(want).mean()),
                               rtol=2e-3, atol=2e-3)
    code, _, err = run(["dglm", "assemble", "--from", str(tmp_path / "new"), "--out", str(tmp_path / "kept")],
                       capsys)
    assert code == 0, err
    assert torch.equal(load_artifact(tmp_path / "kept").guide_cov, cov)


def test_train_decoder_cli_continues_an_artifact(tiny_llama, tmp_path, capsys, monkeypatch) -> None:
    """`train-decoder --init-from ART`: the new artifact starts from ART's generator and LoRA (at
    learning rate 0 it is ART's decoder side exactly) and records where it came from."""
    import steerlab.methods.dglm.data as data_mod
    from steerlab.core.artifact import load_artifact
    from steerlab.methods.dglm.train import DiffusionModel
    from tests.conformance.factories import tiny_dglm
    from tests.helpers import run

    g = torch.Generator().manual_seed(0)
    pairs = [Pair(t[: len(t) // 2], t[len(t) // 2:], "toy", "train") for t in CORPUS * 2]
    data = PairSet(pairs, torch.randn(len(pairs), 384, generator=g), torch.randn(len(pairs), 384, generator=g),
                   {"digest": "toy"})
    monkeypatch.setattr(data_mod, "build_pairs", lambda *a, **k: data)
    monkeypatch.setattr("steerlab.cli.dglm.load", lambda name: tiny_llama)
    art = tiny_dglm(tiny_llama).artifact
    art.lora_scaling = 2.0
    art.save(tmp_path / "base")
    DiffusionModel(art.diffusion, {"data": {"encoder": "all-minilm-l6-v2"}}).save(tmp_path / "diff")
    probe = tmp_path / "probe"
    from steerlab.scoring.linear import LinearHead
    from steerlab.scoring.probes import EmbeddingProbe

    EmbeddingProbe("all-minilm-l6-v2", LinearHead(torch.randn(384), 0.0, torch.zeros(384), torch.ones(384))
                   ).save(probe)
    code, _, err = run(["dglm", "train-decoder", "--diffusion", str(tmp_path / "diff"), "--out", str(tmp_path / "new"),
                        "--init-from", str(tmp_path / "base"), "--n-steps", "1", "--batch-size", "2", "--lr", "0",
                        "--probe", f"sentiment={probe}"], capsys)
    assert code == 0, err
    new = load_artifact(tmp_path / "new")
    assert all(torch.equal(v, new.generator.state_dict()[k]) for k, v in art.generator.state_dict().items())
    assert all(torch.equal(art.lora[n][i], new.lora[n][i]) for n in art.lora for i in (0, 1))
    assert new.meta["training"]["decoder"]["init_from"]["artifact"] == "tiny-dglm"
    assert new.guide_cov is not None  # train-decoder stores the pairs' covariance
    code, _, err = run(["dglm", "train-decoder", "--diffusion", str(tmp_path / "diff"), "--out", str(tmp_path / "x"),
                        "--init-from", str(tmp_path / "diff"), "--probe", f"sentiment={probe}"], capsys)
    assert code != 0 and "is not an artifact directory" in err and not (tmp_path / "x").exists()


def test_short_prefix_rows_keep_only_the_prefix_end(tiny_llama, monkeypatch) -> None:
    from steerlab.methods.dglm import decoder as D

    texts = [" ".join(["word"] * 40 + ["end"]) + " and then the continuation follows here"] * 4
    pairs = [Pair(t[: t.index(" and then")], t[t.index(" and then"):], "toy", "train") for t in texts]
    g = torch.Generator().manual_seed(0)
    data = PairSet(pairs, torch.randn(4, 16, generator=g), torch.randn(4, 16, generator=g), {})
    config = D.PromptGeneratorConfig(dim=16, hidden=tiny_llama.hidden_size, k=2, width=32, noise_features=8)
    seen: list[list[int]] = []
    real = D.batch_inputs

    def spy(lm, soft, prefixes, continuations):  # type: ignore[no-untyped-def]
        seen.extend(prefixes)
        return real(lm, soft, prefixes, continuations)

    monkeypatch.setattr(D, "batch_inputs", spy)
    end = tiny_llama.tokenizer(" end", add_special_tokens=False)["input_ids"]
    for share, short in ((0.0, False), (1.0, True)):
        seen.clear()
        D.train_decoder(tiny_llama, data, config, n_steps=3, batch_size=4, r=2, short_prefix=share, progress=False)
        assert all(4 <= len(p) <= 16 for p in seen) == short and all(p[-len(end):] == end for p in seen)
    with pytest.raises(SteerlabError, match="short_prefix"):
        D.train_decoder(tiny_llama, data, config, n_steps=1, short_prefix=1.5, progress=False)
