"""The out-of-core volume run: deterministic, scheduler-independent, resumable; with slab tiles
(k slices folded into a 2D network's channels) and with true 3D cube tiles (issue 17)."""

import numpy as np
import pytest
import torch
import zarr

from padis3d.errors import PadisError
from padis3d.operators import ParallelBeam2D
from padis3d.priors.patch import PatchPrior
from padis3d.volume.runner import VolumeRun, VolumeSettings
from tests.solvers.test_patch_prior import TinyDenoiser

SHAPE = (10, 16, 16)


@pytest.fixture(scope="module", params=["slab", "cube"])
def problem(request):
    torch.manual_seed(0)
    if request.param == "slab":
        net = TinyDenoiser(channels=3).float()
        prior = PatchPrior(lambda x, s, p: 0.5 * net(x, s, p[:, 1:]), SHAPE, (3, 8, 8), fold_axes=(0,))
    else:  # 4 x 8 x 8 cubes through a 3D network: tiles straddle the bands of 4 slices
        net = TinyDenoiser(channels=1, ndim=3).float()
        prior = PatchPrior(lambda x, s, p: 0.5 * net(x, s, p), SHAPE, (4, 8, 8))
    op = ParallelBeam2D(16, views=8)
    truth = np.zeros(SHAPE, np.float32)
    truth[2:8, 4:12, 5:11] = 0.8
    y = op(torch.from_numpy(truth)[:, None])[:, 0].numpy()
    return prior, op, y


def run(problem, work, scheduler=None, callback=None, restart=False, **kw):
    prior, op, y = problem
    settings = VolumeSettings(steps=3, sigma_max=1.0, sigma_min=0.05, band=4, rho=0.1, cg_iters=5, **kw)
    out = zarr.create_array(store=zarr.storage.MemoryStore(), shape=SHAPE, chunks=(3, 16, 16), dtype="f4")
    VolumeRun(prior, op, y, work, settings, scheduler=scheduler, restart=restart).run(out, callback=callback)
    return out[:]


def test_result_is_deterministic_and_scheduler_independent(problem, tmp_path):
    a = run(problem, tmp_path / "a")
    b = run(problem, tmp_path / "b", scheduler="sync")
    c = run(problem, tmp_path / "c", seed=1)
    assert np.isfinite(a).all() and np.array_equal(a, b) and not np.array_equal(a, c)


def test_interrupted_run_resumes_to_the_same_result(problem, tmp_path):
    full = run(problem, tmp_path / "full")

    def stop_after_first(info):
        if info["i"] == 0:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run(problem, tmp_path / "cut", callback=stop_after_first)
    assert '"step": 1' in (tmp_path / "cut" / "progress.json").read_text()
    assert np.array_equal(run(problem, tmp_path / "cut"), full)


def test_changed_settings_are_refused_unless_restart(problem, tmp_path):
    """A work folder with another run's progress is never overwritten silently (issue 13):
    other settings are refused, ``restart`` starts over on it, the same settings resume."""
    run(problem, tmp_path / "w")
    with pytest.raises(PadisError, match=r"other settings \(eta 0.85 -> 0.5\)"):
        run(problem, tmp_path / "w", eta=0.5)
    steps = []
    run(problem, tmp_path / "w", callback=lambda info: steps.append(info["i"]), eta=0.5, restart=True)
    assert steps == [0, 1, 2]
    resumed = []
    run(problem, tmp_path / "w", callback=lambda info: resumed.append(info["i"]), eta=0.5)
    assert resumed == []  # finished: nothing left to run


def test_mismatched_measurements_fail_clearly(problem, tmp_path):
    prior, op, y = problem
    with pytest.raises(PadisError, match="do not match the volume"):
        VolumeRun(prior, op, y[:-1], tmp_path, VolumeSettings())
    with pytest.raises(PadisError, match="slice operator"):
        VolumeRun(prior, ParallelBeam2D(12, views=8), y[:, :, :24], tmp_path, VolumeSettings())


@pytest.mark.slow
def test_local_cluster_gives_the_threaded_result(problem, tmp_path):
    """The band work scheduled on a dask.distributed LocalCluster with 2 workers."""
    from distributed import Client, LocalCluster

    threaded = run(problem, tmp_path / "threads")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        distributed = run(problem, tmp_path / "cluster", scheduler=client)
    assert np.array_equal(threaded, distributed)


def test_whole_volume_data_step_of_a_non_separable_operator_matches_the_slice_by_slice_one(problem, tmp_path):
    # ParallelBeam3D stands in for cone beam: one operator on the whole volume, y of its out_shape.
    # With CG run to convergence both data steps reach the same unique minimiser, so the runs
    # (same random streams) agree; the separable run solves each slice, the other the volume.
    from padis3d.operators import ParallelBeam3D

    prior, op, y = problem
    settings = VolumeSettings(steps=3, sigma_max=1.0, sigma_min=0.05, band=4, rho=0.1, cg_iters=200)
    outs = []
    for name, operator, meas, separable in (("slices", op, y, True),
                                           ("whole", ParallelBeam3D(SHAPE, views=8), y, False)):
        out = zarr.create_array(store=zarr.storage.MemoryStore(), shape=SHAPE, chunks=(3, 16, 16), dtype="f4")
        VolumeRun(prior, operator, meas, tmp_path / name, settings, separable=separable).run(out)
        outs.append(out[:])
    assert np.abs(outs[0] - outs[1]).max() < 1e-3
    assert np.abs(outs[0]).max() > 0.1


def test_non_separable_operator_checks_shapes_and_memory(problem, tmp_path):
    from padis3d.operators import ParallelBeam3D

    prior, _, y = problem
    with pytest.raises(PadisError, match="operator takes"):
        VolumeRun(prior, ParallelBeam3D((8, 16, 16), views=8), y[:8], tmp_path, VolumeSettings(), separable=False)
    with pytest.raises(PadisError, match="whole volume and its projections"):
        VolumeRun(prior, ParallelBeam3D(SHAPE, views=8), y, tmp_path, VolumeSettings(memory_budget=60_000),
                  separable=False)


def test_measurements_init_starts_the_state_at_the_noisy_slices(tmp_path):
    # a "denoiser" that halves its input: one level from the measurements, no data step, gives y / 2
    prior = PatchPrior(lambda x, s, p: 0.5 * x, SHAPE, (3, 8, 8), fold_axes=(0,))
    y = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    settings = VolumeSettings(steps=1, sigma_max=0.1, sigma_min=0.05, band=4, cg_iters=0, init="measurements")
    out = zarr.create_array(store=zarr.storage.MemoryStore(), shape=SHAPE, chunks=(3, 16, 16), dtype="f4")
    VolumeRun(prior, _Identity(), y, tmp_path, settings).run(out)
    assert np.allclose(out[:], 0.5 * y, atol=1e-6)
    with pytest.raises(PadisError, match="init 'measurements'"):
        VolumeRun(prior, ParallelBeam2D(16, views=8), np.zeros((10, 8, 32), np.float32), tmp_path / "ct", settings)


class _Identity:
    in_shape = out_shape = SHAPE[1:]

    def __call__(self, x):
        return x

    adjoint = __call__
