"""load_prior: round trip, device, and clear errors for missing/corrupt/foreign/other-architecture files."""

from __future__ import annotations

import pytest
import torch

import padis3d
from padis3d.priors.checkpoint import FORMAT_PRIOR, atomic_save, load_prior
from padis3d.errors import PadisError
from padis3d.priors.network import CPU_CONFIG, EDMDenoiser, count_parameters
from tests.prior.prior_helpers import perturbed, tiny_config


def write_prior(path, config):
    model = perturbed(EDMDenoiser(config))
    atomic_save({"format": FORMAT_PRIOR, "format_version": 1, "config": config.to_dict(),
                 "ema": model.state_dict(), "meta": {"steps": 7}}, path)
    return model.eval()


def test_round_trip_gives_the_same_denoiser(tmp_path):
    cfg = tiny_config(channels=3, position_axes=(0, 1, 2))
    model = write_prior(tmp_path / "p.pt", cfg)
    prior = padis3d.load_prior(tmp_path / "p.pt", device="cpu")
    assert prior.config == cfg and prior.meta["steps"] == 7 and not prior.model.training
    assert not any(p.requires_grad for p in prior.model.parameters())
    x, pos = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(prior(x, 0.2, pos), model(x, 0.2, pos), rtol=0, atol=0)
    x64 = x.double().requires_grad_(True)  # solvers may work in float64 and need d D / d x
    out = prior(x64, torch.tensor(0.2, dtype=torch.float64), pos.double())
    assert out.dtype == torch.float64
    out.sum().backward()
    assert x64.grad is not None and x64.grad.abs().sum() > 0


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(PadisError, match="does not exist"):
        load_prior(tmp_path / "nope.pt")
    write_prior(tmp_path / "p.pt", tiny_config())
    data = (tmp_path / "p.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(PadisError, match="corrupt"):
        load_prior(tmp_path / "cut.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(PadisError, match="not a padis3d checkpoint"):
        load_prior(tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(PadisError, match="corrupt"):
        load_prior(tmp_path / "text.pt")


def test_wrong_architecture_fails_clearly(tmp_path):
    write_prior(tmp_path / "p.pt", tiny_config())
    with pytest.raises(PadisError, match="another architecture"):
        load_prior(tmp_path / "p.pt", config=tiny_config(features=(16, 16)))
    with pytest.raises(PadisError, match="another architecture"):
        load_prior(tmp_path / "p.pt", config=tiny_config(position_axes=()))


def test_cpu_default_prior_fits_the_15_mb_limit():
    with torch.device("meta"):
        n = count_parameters(EDMDenoiser(CPU_CONFIG))
    assert n * 4 < 14e6
