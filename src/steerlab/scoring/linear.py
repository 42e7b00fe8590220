"""The standardised linear head every probe and value head here is: ``y = ((x − mean) / std) ·
coef + intercept`` on feature vectors x (D,). Embedding probes (scorers), DGLM's probes and their
guidance, and the SteerLM value model's attribute heads all hold one, fit it the same way and
store it the same way (float32 tensors + the intercept in the config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from steerlab.core.validate import check_tensor_values, finite
from steerlab.errors import SteerlabError

X = TypeVar("X", np.ndarray, Tensor)


@dataclass
class LinearHead:
    """``((x − mean) / std) · coef + intercept``; ``coef``, ``mean`` and ``std`` are (D,) float32."""

    coef: Tensor  # (D,)
    intercept: float
    mean: Tensor  # (D,)
    std: Tensor  # (D,) > 0

    def __post_init__(self) -> None:
        self.coef, self.mean, self.std = (torch.as_tensor(t, dtype=torch.float32).detach()
                                          for t in (self.coef, self.mean, self.std))
        if self.coef.dim() != 1 or self.coef.shape != self.mean.shape or self.coef.shape != self.std.shape:
            raise SteerlabError(f"a linear head's coef, mean and std must be 1-D of one size, got "
                                f"{tuple(self.coef.shape)}, {tuple(self.mean.shape)}, {tuple(self.std.shape)}")
        for name, t in (("coef", self.coef), ("mean", self.mean), ("std", self.std)):
            check_tensor_values(name, t)
        if bool((self.std <= 0).any()):
            raise SteerlabError("a linear head's std must be positive")
        self.intercept = finite("intercept", self.intercept)

    @property
    def dim(self) -> int:
        return int(self.coef.shape[0])

    def __call__(self, x: X) -> X:
        """(N, D) -> (N,): numpy in, numpy out (float32 weights); a tensor in, a tensor out
        (differentiable, on ``x``'s device and dtype)."""
        if isinstance(x, np.ndarray):
            return ((x - self.mean.numpy()) / self.std.numpy()) @ self.coef.numpy() + self.intercept
        return ((x - self.mean.to(x)) / self.std.to(x)) @ self.coef.to(x) + self.intercept

    @classmethod
    def fit(cls, estimator: Any, x: np.ndarray, y: np.ndarray, **fit_kwargs: Any) -> tuple[LinearHead, Any]:
        """Standardise ``x`` (N, D) by its own mean and std, fit a scikit-learn linear
        ``estimator`` (logistic or ridge regression) on it and return the head with the fitted
        estimator (for its held-out score, chosen alpha...)."""
        mean, std = x.mean(0), x.std(0) + 1e-6
        estimator.fit((x - mean) / std, y, **fit_kwargs)
        coef = np.asarray(estimator.coef_, dtype=np.float32).reshape(-1)
        intercept = float(np.ravel(estimator.intercept_)[0])
        return cls(torch.from_numpy(coef), intercept, torch.from_numpy(mean.astype(np.float32)),
                   torch.from_numpy(std.astype(np.float32))), estimator

    def tensors(self, prefix: str = "", std_name: str = "std") -> dict[str, Tensor]:
        """Its tensors for a safetensors file, under ``prefix`` (the intercept goes in the config)."""
        return {f"{prefix}coef": self.coef.contiguous(), f"{prefix}mean": self.mean.contiguous(),
                f"{prefix}{std_name}": self.std.contiguous()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], prefix: str, intercept: Any,
                     std_name: str = "std") -> LinearHead:
        """Read back what :meth:`tensors` wrote (raises ``KeyError`` for a missing tensor and
        :class:`SteerlabError` for bad values)."""
        return cls(tensors[f"{prefix}coef"], intercept, tensors[f"{prefix}mean"], tensors[f"{prefix}{std_name}"])
