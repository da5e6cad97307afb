"""The out-of-core volume run with a two-scale prior: each level's denoiser, assembled band by band
(block sums of the state and of ``D_f`` per band, the coarse prior in memory, the upsampled correction
added as each band is read), is the in-memory ``TwoScalePrior.denoise`` for the same shifts, also on
10 slices (a partial last block of 2) and bands of 3 that straddle the blocks of 4; the run is
deterministic, resumable, and its identity includes the coarse prior."""

import numpy as np
import pytest
import torch
import zarr

from padis3d.errors import PadisError
from padis3d.operators import ParallelBeam2D
from padis3d.priors.coarse_weight import CoarseWeight
from padis3d.priors.patch import PatchPrior
from padis3d.priors.slice_jump import SliceJumpPrior
from padis3d.priors.two_scale import TwoScalePrior
from padis3d.volume.runner import COARSE_SHIFTS, SHIFTS, VolumeRun, VolumeSettings, _rng
from tests.solvers.test_patch_prior import TinyDenoiser

SHAPE = (10, 16, 16)


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    fine_net, coarse_net = TinyDenoiser(ndim=3).float(), TinyDenoiser(ndim=3).float()
    fine = PatchPrior(lambda x, s, p: 0.5 * fine_net(x, s, p), SHAPE, (4, 8, 8))
    coarse = PatchPrior(lambda x, s, p: 0.3 + 0.5 * coarse_net(x, s, p), (3, 4, 4), (2, 2, 2))
    op = ParallelBeam2D(16, views=8)
    truth = np.zeros(SHAPE, np.float32)
    truth[2:8, 4:12, 5:11] = 0.8
    y = op(torch.from_numpy(truth)[:, None])[:, 0].numpy()
    return TwoScalePrior(fine, coarse, 4), op, y


def settings(**kw):
    return VolumeSettings(**{**dict(steps=3, sigma_max=1.0, sigma_min=0.05, band=3, rho=0.1, cg_iters=5), **kw})


def run(prior, op, y, work, callback=None, **kw):
    out = zarr.create_array(store=zarr.storage.MemoryStore(), shape=SHAPE, chunks=(3, 16, 16), dtype="f4")
    VolumeRun(prior, op, y, work, settings(**kw)).run(out, callback=callback)
    return out[:]


@pytest.mark.parametrize("step", [0, 2])
def test_each_level_is_the_in_memory_two_scale_denoiser(problem, tmp_path, step):
    two, op, y = problem
    vr = VolumeRun(two, op, y, tmp_path / "w", settings())
    g = two.fine.grid
    x = torch.rand(1, 1, *g.canvas_shape, generator=torch.Generator().manual_seed(step)) * 0.7
    vr.states[0][...] = x[0, 0].numpy()
    vr._denoise_level(step, vr.states[0])
    sigma = float(vr.settings.sigmas()[step])
    expect = two.denoise(x, sigma, shift=g.random_shift(_rng(0, SHIFTS, step)),
                         coarse_generator=_rng(0, COARSE_SHIFTS, step))[0, 0]
    got = torch.from_numpy(vr.denoised[...]).double()
    got[(slice(g.pad[0], g.pad[0] + SHAPE[0]), *g.image_slices()[1:])] += vr._upsampled_correction(0, SHAPE[0])
    torch.testing.assert_close(got.float(), expect, rtol=1e-5, atol=1e-5)
    fine_only = two.fine.denoise(x, sigma, shift=g.random_shift(_rng(0, SHIFTS, step)))[0, 0]
    assert (expect - fine_only).abs().max() > 1e-2  # the coarse term is not negligible here
    for a, b in ((0, 1), (3, 7), (9, 10)):  # any range of slices: the same correction
        torch.testing.assert_close(vr._upsampled_correction(a, b), vr._upsampled_correction(0, 10)[a:b])


def test_two_scale_run_is_deterministic_resumable_and_not_the_fine_run(problem, tmp_path):
    two, op, y = problem
    full = run(two, op, y, tmp_path / "full")
    assert np.isfinite(full).all() and np.array_equal(full, run(two, op, y, tmp_path / "again"))
    assert not np.allclose(full, run(two.fine, op, y, tmp_path / "fine"), atol=1e-3)

    def stop_after_first(info):
        if info["i"] == 0:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run(two, op, y, tmp_path / "cut", callback=stop_after_first)
    assert np.array_equal(run(two, op, y, tmp_path / "cut"), full)
    # the same folder with the fine prior alone is another run: refused
    with pytest.raises(PadisError, match="other input, geometry, prior or precision"):
        run(two.fine, op, y, tmp_path / "cut")


def test_a_two_scale_prior_must_stream_a_plain_patch_prior(problem, tmp_path):
    two, op, y = problem
    jump = SliceJumpPrior(lambda x, s, p: x, SHAPE, (3, 8, 8), fold_axes=(0,))
    with pytest.raises(PadisError, match="fine prior as a plain PatchPrior"):
        VolumeRun(TwoScalePrior(jump, two.coarse, 4), op, y, tmp_path / "w", settings())
    assert not (tmp_path / "w").exists()


def test_a_weighted_level_is_the_in_memory_weighted_denoiser_and_another_run(problem, tmp_path):
    two, op, y = problem
    weighted = TwoScalePrior(two.fine, two.coarse, 4, coarse_weight=CoarseWeight((0.05, 1.0), (0.2, 0.6)))
    vr = VolumeRun(weighted, op, y, tmp_path / "w", settings())
    g, step = two.fine.grid, 1
    x = torch.rand(1, 1, *g.canvas_shape, generator=torch.Generator().manual_seed(3)) * 0.7
    vr.states[0][...] = x[0, 0].numpy()
    vr._denoise_level(step, vr.states[0])
    sigma = float(vr.settings.sigmas()[step])
    assert 0.2 < weighted.weight(sigma) < 0.6
    expect = weighted.denoise(x, sigma, shift=g.random_shift(_rng(0, SHIFTS, step)),
                              coarse_generator=_rng(0, COARSE_SHIFTS, step))[0, 0]
    got = torch.from_numpy(vr.denoised[...]).double()
    got[(slice(g.pad[0], g.pad[0] + SHAPE[0]), *g.image_slices()[1:])] += vr._upsampled_correction(0, SHAPE[0])
    torch.testing.assert_close(got.float(), expect, rtol=1e-5, atol=1e-5)
    run(two, op, y, tmp_path / "one")  # weight 1 in this folder: a weighted run there is another run
    with pytest.raises(PadisError, match="other input, geometry, prior or precision"):
        run(weighted, op, y, tmp_path / "one")
