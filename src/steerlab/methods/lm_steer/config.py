"""LM-Steer's training settings: one typed field per knob of the official code, with help text.

The CLI's ``steerlab train lm-steer`` options are built from these fields, and the method's
:class:`~steerlab.core.methods.MethodSpec` names this class as its training config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LMSteerTrainConfig:
    """How to train an LM-Steer artifact (defaults: a 135M model on 2 CPU cores)."""

    adaptor_class: str = field(default="multiply", metadata={"help": "multiply (the paper's), add or offset."})
    num_steers: int = field(default=2, metadata={"help": "Number of steers (one trained, one dummy by default)."})
    dummy_steer: int = field(default=1, metadata={"help": "Steer set to 1 on every example (absorbs the domain); "
                                                          "-1 for none."})
    training_steer: int = field(default=0, metadata={"help": "Steer whose value is the label (+1 / -1)."})
    rank: int = field(default=256, metadata={"help": "Rank of each steer's projectors."})
    epsilon: float = field(default=1e-3, metadata={"help": "Scale of the steer's contribution (the paper's epsilon)."})
    init_var: float = field(default=1e-2, metadata={"help": "Standard deviation of the initial projectors."})
    regularization_weight: float = field(default=0.0, metadata={"help": "Weight of the squared-parameter penalty."})
    lr: float = field(default=1e-2, metadata={"help": "Adam learning rate."})
    n_steps: int = field(default=300, metadata={"help": "Optimiser steps (raising it resumes and extends a run)."})
    batch_size: int = field(default=16, metadata={"help": "Texts per step."})
    max_length: int = field(default=64, metadata={"help": "Tokens per text."})
    seed: int = field(default=0, metadata={"help": "Initialisation and data-order seed."})
    checkpoint_every: int = field(default=100, metadata={"help": "Steps between checkpoints."})
    max_examples: int = field(default=0, metadata={"help": "Train on this many examples (half per label), "
                                                           "revisited each epoch; 0: all."})
    cache_states: bool = field(default=False, metadata={"help": "Keep each text's frozen final hidden states "
                                                                "after its first visit (large models: later "
                                                                "epochs cost only the head)."})

    def train_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`steerlab.methods.lm_steer.train` (``dummy_steer=-1`` → None)."""
        out = asdict(self)
        out["dummy_steer"] = None if self.dummy_steer < 0 else self.dummy_steer
        return out
