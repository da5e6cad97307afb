import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def chest128():
    """Two default test slices (110, 120) as (2, 1, 128, 128)."""
    from padis3d.io.sample_data import chest_ct_slices
    return torch.from_numpy(chest_ct_slices([110, 120], 128))[:, None]
