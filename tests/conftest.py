"""Fixtures: tiny random models of four architectures (built here, no hub) and the real packaged
model for behaviour tests. Shared values and helpers live in :mod:`tests.helpers`."""

from __future__ import annotations

import pytest
import torch

import steerlab
from steerlab.defaults import DEFAULT_MODEL
from steerlab.models.loading import LoadedModel
from tests.helpers import ARCHS, build_tokenizer, make_tiny

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="session", params=ARCHS)
def tiny(request, tiny_tokenizer) -> LoadedModel:
    return make_tiny(request.param, tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_llama(tiny_tokenizer) -> LoadedModel:
    return make_tiny("llama", tiny_tokenizer)


@pytest.fixture(scope="session")
def real_lm() -> LoadedModel:
    """The default packaged model (SmolLM2-135M-Instruct); converted once, then cached."""
    return steerlab.load_model(DEFAULT_MODEL)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` skip, saying why, on a machine without CUDA."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (marked gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
