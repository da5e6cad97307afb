import os

import pytest
import torch
from hypothesis import settings

torch.set_num_threads(int(os.environ.get("PADIS3D_TEST_THREADS", "1")))
settings.register_profile("default", deadline=None, max_examples=40, derandomize=True)
settings.load_profile("default")


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
