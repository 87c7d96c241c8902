"""Shared test settings: one torch thread (small networks, a 2-core CI machine) and fixed seeds."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fixed_torch_seed():
    torch.manual_seed(0)
    yield
