"""Each formula of the prior pinned where it is written (issue 19): the EDM preconditioning with a
stub network, the EDM loss weight, checkpoint loading that refuses added or dropped modules, and an
atomic writer that keeps the old file when a write fails half-way."""

from __future__ import annotations

import math

import pytest
import torch

from padis3d.atomic import atomic_path
from padis3d.errors import PadisError
from padis3d.priors.checkpoint import FORMAT_PRIOR, atomic_save, load_prior
from padis3d.priors.network import EDMDenoiser, edm_loss
from tests.prior.prior_helpers import tiny_config


class StubNet(torch.nn.Module):
    """Records its input and timesteps; returns ``F = 3 * first channel + 0.25``."""

    def forward(self, inp: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        self.inp, self.timesteps = inp, timesteps
        return 3 * inp[:, :1] + 0.25


@pytest.mark.parametrize("sigma", [0.002, 0.5, 80.0])
def test_edm_preconditioning_by_hand(sigma):
    model = EDMDenoiser(tiny_config())
    model.net = StubNet()
    g = torch.Generator().manual_seed(0)
    x = torch.randn((2, 1, 8, 8), generator=g)
    pos = torch.randn((2, 2, 8, 8), generator=g)
    d = model(x, sigma, pos)
    sd = 0.5
    c_skip, c_out, c_in = sd ** 2 / (sigma ** 2 + sd ** 2), sigma * sd / math.sqrt(sigma ** 2 + sd ** 2), \
        1 / math.sqrt(sigma ** 2 + sd ** 2)
    assert torch.allclose(model.net.inp, torch.cat([c_in * x, pos], 1), atol=1e-6)  # positions are not scaled
    assert torch.allclose(model.net.timesteps, torch.full((2,), 1000 * math.log(sigma) / 4), rtol=1e-6)
    expected = c_skip * x + c_out * (3 * c_in * x + 0.25)
    assert torch.allclose(d, expected, rtol=1e-5, atol=1e-6)


def test_edm_loss_weight_by_hand():
    model = EDMDenoiser(tiny_config())
    model.net = StubNet()
    g = torch.Generator().manual_seed(1)
    clean, noise = torch.rand((2, 1, 8, 8), generator=g), torch.randn((2, 1, 8, 8), generator=g)
    sigma, pos = torch.tensor([0.1, 2.0]), torch.zeros((2, 2, 8, 8))
    weight = (sigma ** 2 + 0.25) / (sigma * 0.5) ** 2
    d = model(clean + sigma.view(-1, 1, 1, 1) * noise, sigma, pos)
    expected = (weight.view(-1, 1, 1, 1) * (d - clean) ** 2).mean()
    assert torch.allclose(edm_loss(model, clean, pos, sigma, noise), expected, rtol=1e-6)


@pytest.mark.parametrize("stored, loaded", [({"num_res_blocks": 2}, {"num_res_blocks": 1}),   # drops modules
                                            ({"num_res_blocks": 1}, {"num_res_blocks": 2})])  # adds modules
def test_checkpoint_whose_modules_differ_is_refused(tmp_path, stored, loaded):
    weights = EDMDenoiser(tiny_config(**stored)).state_dict()
    atomic_save({"format": FORMAT_PRIOR, "format_version": 1, "config": tiny_config(**loaded).to_dict(),
                 "ema": weights, "meta": {}}, tmp_path / "p.pt")
    with pytest.raises(PadisError, match="another architecture"):
        load_prior(tmp_path / "p.pt")


def test_checkpoint_with_an_extra_tensor_is_refused(tmp_path):
    weights = dict(EDMDenoiser(tiny_config()).state_dict(), **{"net.extra.weight": torch.zeros(1)})
    atomic_save({"format": FORMAT_PRIOR, "format_version": 1, "config": tiny_config().to_dict(), "ema": weights,
                 "meta": {}}, tmp_path / "p.pt")
    with pytest.raises(PadisError, match="another architecture"):
        load_prior(tmp_path / "p.pt")


def test_atomic_writer_keeps_the_old_file_when_a_write_fails_half_way(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old, complete")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write("new, half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old, complete"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary left behind
    with atomic_path(target) as tmp:
        tmp.write_text("new, complete")
    assert target.read_text() == "new, complete"
