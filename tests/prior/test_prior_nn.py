"""The EDM-preconditioned denoiser: shapes for every variant, positions matter, clear errors."""

from __future__ import annotations

import pytest
import torch

from padis3d.errors import PadisError
from padis3d.priors.network import PAPER_GPU_CONFIG, EDMDenoiser, PriorConfig, paper_parameter_count
from tests.prior.prior_helpers import perturbed, tiny_config


@pytest.mark.parametrize("kw,x_shape,pos_channels", [
    ({}, (2, 1, 16, 16), 2),                                           # 2D CT
    ({"channels": 3}, (2, 3, 8, 24), 2),                               # 2D RGB, non-square
    ({"spatial_dims": 3, "position_axes": (0, 1, 2)}, (2, 1, 8, 8, 8), 3),  # 3D cubes
    ({"channels": 3, "position_axes": (0, 1, 2)}, (2, 3, 16, 16), 3),  # slab of 3 slices
    ({"position_axes": ()}, (2, 1, 16, 16), 0),                        # no positions
])
def test_variants_share_one_code_path(kw, x_shape, pos_channels):
    torch.manual_seed(0)
    model = perturbed(EDMDenoiser(tiny_config(**kw))).eval()
    x = torch.rand(x_shape)
    pos = torch.rand(x_shape[0], pos_channels, *x_shape[2:]) if pos_channels else None
    with torch.no_grad():
        out = model(x, torch.tensor([0.1, 1.0]), pos)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_positions_change_the_output_and_tile_size_is_free():
    torch.manual_seed(0)
    model = perturbed(EDMDenoiser(tiny_config())).eval()
    x = torch.rand(1, 1, 16, 16)
    p1 = torch.linspace(-1, 0, 16).expand(1, 2, 16, 16)
    with torch.no_grad():
        a, b = model(x, 0.5, p1), model(x, 0.5, p1 + 0.5)
        assert (a - b).abs().max() > 1e-4
        assert model(torch.rand(3, 1, 32, 8), 0.5, torch.rand(3, 2, 32, 8)).shape == (3, 1, 32, 8)


def test_slab_positions_use_the_requested_channels():
    torch.manual_seed(0)
    model = perturbed(EDMDenoiser(tiny_config(channels=3, position_axes=(0, 1, 2)))).eval()
    x, pos = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    moved = pos.clone()
    moved[:, 0] += 0.3  # the slab's centre z
    with torch.no_grad():
        assert (model(x, 0.3, pos) - model(x, 0.3, moved)).abs().max() > 1e-5


def test_preconditioning_limits():
    """sigma -> 0: D(x) -> x (c_skip -> 1, c_out -> 0)."""
    torch.manual_seed(0)
    model = perturbed(EDMDenoiser(tiny_config())).eval()
    x, pos = torch.rand(2, 1, 8, 8), torch.rand(2, 2, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x, 1e-6, pos), x, atol=1e-5, rtol=0)


def test_bad_inputs_raise_clear_errors():
    model = EDMDenoiser(tiny_config())
    with pytest.raises(PadisError, match="divisible by 2"):
        model(torch.rand(1, 1, 15, 16), 0.1, torch.rand(1, 2, 15, 16))
    with pytest.raises(PadisError, match="trained with positions"):
        model(torch.rand(1, 1, 16, 16), 0.1, None)
    with pytest.raises(PadisError, match="expects x"):
        model(torch.rand(1, 3, 16, 16), 0.1, torch.rand(1, 2, 16, 16))
    with pytest.raises(PadisError, match="do not fit"):
        model(torch.rand(1, 1, 16, 16), 0.1, torch.rand(1, 1, 16, 16))
    with pytest.raises(PadisError, match="sigma has 3 values"):
        model(torch.rand(2, 1, 16, 16), torch.ones(3), torch.rand(2, 2, 16, 16))
    with pytest.raises(PadisError, match="attention_levels"):
        PriorConfig(features=(16, 32), attention_levels=(False,))


def test_configs_roundtrip_and_paper_size():
    cfg = tiny_config(channels=3, position_axes=(0, 1, 2))
    assert PriorConfig.from_dict(cfg.to_dict()) == cfg
    assert 50e6 < paper_parameter_count() < 70e6  # "~60M parameters"
    assert PAPER_GPU_CONFIG.multiple == 8 and 56 % PAPER_GPU_CONFIG.multiple == 0
    with pytest.raises(PadisError, match="unknown prior config"):
        PriorConfig.from_dict({**cfg.to_dict(), "bogus": 1})
