"""What the tests share, imported by name (fixtures stay in ``conftest.py``): tiny random models
and their tokenizer, contrast pairs, SteerLM examples, hook counting, logits, the CLI runner, a
live server, and deadline waits (never a bare sleep)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("STEERLAB_QUIET", "1")

import torch  # noqa: E402

import steerlab  # noqa: E402
from steerlab.artifacts import shipped_path  # noqa: E402
from steerlab.methods.steerlm.records import Example  # noqa: E402
from steerlab.models.loading import LoadedModel  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]  # the checkout

# The shipped SteerLM adapter and its value model (``steerlab artifacts``), used as real files.
ADAPTER = Path(shipped_path("steerlm-smollm2") or "missing:steerlm-smollm2")
VALUE_MODEL = Path(shipped_path("steerlm-smollm2-value-model")
                   or "missing:steerlm-smollm2-value-model")

CORPUS = [
    "The movie was wonderful and I loved it.", "The movie was terrible and I hated it.",
    "Could you please send me the report?", "hey send me the report asap",
    "The weather this morning was cold and grey.", "I walked into the room and sat down.",
    "Numbers like 1 2 3 4 5 6 7 8 9 0 appear here.", "A quick brown fox jumps over the lazy dog.",
] * 4

ARCHS = ("llama", "gpt2", "qwen2", "gemma3")


def build_tokenizer() -> Any:
    """A 320-token byte-level BPE trained on :data:`CORPUS` (no hub)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<unk>", "<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>",
                                   eos_token="<eos>")


def make_tiny(arch: str, tokenizer) -> LoadedModel:
    """A 4-layer random model of ``arch`` with peaked logits (so greedy decoding is stable)."""
    import transformers as tf

    v = len(tokenizer)
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
           "bos_token_id": tokenizer.eos_token_id}
    common = {"vocab_size": v, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
              "initializer_range": 0.3, **ids}
    torch.manual_seed(0)
    if arch == "llama":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(**common))
    elif arch == "qwen2":
        model = tf.Qwen2ForCausalLM(tf.Qwen2Config(**common))
    elif arch == "gemma3":
        model = tf.Gemma3ForCausalLM(tf.Gemma3TextConfig(**common, head_dim=8, sliding_window=16))
    elif arch == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=v, n_embd=32, n_layer=4, n_head=4,
                                                 n_positions=128, initializer_range=0.3, **ids))
    else:
        raise ValueError(arch)
    model.eval()
    return steerlab.wrap_model(model, tokenizer, name=f"tiny-{arch}")


PAIRS = [("The movie was wonderful and I loved it.", "The movie was terrible and I hated it."),
         ("Could you please send me the report?", "hey send me the report asap"),
         ("A quick brown fox jumps over the lazy dog.", "The weather this morning was cold and grey."),
         ("I walked into the room and sat down.", "Numbers like 1 2 3 appear here.")]


def hook_count(model: torch.nn.Module) -> int:
    """Every forward hook and pre-hook on every module."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def logits(lm: LoadedModel, texts=("The movie was", "hey send me the report asap")) -> torch.Tensor:
    enc = lm.tokenizer(list(texts), return_tensors="pt", padding=True)
    with torch.no_grad():
        return lm.model(**enc).logits


EXAMPLES = [
    Example("Tell me a joke", "Why did the chicken cross the road? To get to the other side.", {"humor": 4}),
    Example("Tell me a joke", "I do not know any jokes.", {"humor": 0, "quality": 1}),
    Example("How are you?", "I am fine, thank you.", {"sentiment": 3, "verbosity": 1}),
    Example("How are you?", "Terrible. Everything is awful today and I hate it.", {"sentiment": 0}),
]


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "the condition") -> None:
    """Poll ``condition`` until it holds; fail the test (never hang) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


def run(argv: list[str], capsys: Any) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    from steerlab.cli.app import main

    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


KEY = "test-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Live:
    """A uvicorn server in a thread, and an httpx client for it."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: bool(self.server.started), 10, "the server to start")
        import httpx

        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)

    def close(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(30)


