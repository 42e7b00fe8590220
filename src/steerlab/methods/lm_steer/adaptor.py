"""The LM-Steer transform of the final hidden state (Han et al., ACL 2024, "Word Embeddings Are
Steers for Language Models"; official code ``lm_steer/models/steers.py``).

Logits are ``h · Eᵀ``. With steer values ``v`` (one per steer k):

``multiply`` (the paper's):  h ← h + ε · Σ_k v_k · (h P1_k) P2_kᵀ      P1_k, P2_k: (H, rank)
``add``:                     h ← h + ε · Σ_k v_k · a_k                  a_k: (H,)
``offset``:             logits ← logits + ε · Σ_k v_k · o_k             o_k: (V,)

equivalently ``E`` becomes ``E (I + ε Σ_k v_k P2_k P1_kᵀ)`` for ``multiply``: a linear map of the
output word embeddings. Every form is the identity when all steer values are 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from steerlab.errors import SteerlabError

ADAPTOR_CLASSES = ("multiply", "add", "offset")


def init_params(adaptor_class: str, num_steers: int, hidden: int, vocab: int, rank: int,
                init_var: float, generator: torch.Generator) -> dict[str, Tensor]:
    """Fresh trainable parameters, initialised like the official code."""
    if adaptor_class == "multiply":
        return {"projector1": torch.randn(num_steers, hidden, rank, generator=generator) * init_var,
                "projector2": torch.randn(num_steers, hidden, rank, generator=generator) * init_var}
    if adaptor_class == "add":
        return {"add_vec": torch.randn(num_steers, hidden, generator=generator) * init_var}
    if adaptor_class == "offset":
        return {"offset_vec": torch.randn(num_steers, vocab, generator=generator) * init_var}
    raise SteerlabError(f"unknown adaptor_class {adaptor_class!r}; known: {', '.join(ADAPTOR_CLASSES)}")


def hidden_delta(adaptor_class: str, params: dict[str, Tensor], h: Tensor, values: Tensor,
                 epsilon: float) -> Tensor | None:
    """ε·Σ_k v_k·f_k(h) for the hidden-state adaptors, or None for ``offset``.

    h: (B, T, H); values: (B|1, K) steer values per row.
    """
    if adaptor_class == "multiply":
        p1, p2 = params["projector1"], params["projector2"]  # (K, H, r)
        low = torch.einsum("bth,khr->bktr", h, p1)  # (B, K, T, r)
        low = low * values[:, :, None, None]
        return epsilon * torch.einsum("bktr,khr->bth", low, p2)  # (B, T, H)
    if adaptor_class == "add":
        return epsilon * (values @ params["add_vec"])[:, None, :]  # (B|1, 1, H)
    return None


def logit_offset(params: dict[str, Tensor], values: Tensor, epsilon: float) -> Tensor:
    """ε·Σ_k v_k·o_k for ``offset``: (B|1, 1, V)."""
    return epsilon * (values @ params["offset_vec"])[:, None, :]


def regularization(params: dict[str, Tensor]) -> Tensor:
    """Sum of squared parameters (the official ``regularization_term``)."""
    return sum(p.pow(2).sum() for p in params.values())  # type: ignore[return-value]


def dense_transform(params: dict[str, Tensor], steer: int) -> Tensor:
    """W_k = P1_k P2_kᵀ (H, H) of the multiply adaptor: h ← h + ε v h W_k."""
    return params["projector1"][steer] @ params["projector2"][steer].T
