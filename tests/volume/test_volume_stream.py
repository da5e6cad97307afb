"""The out-of-core pieces of the volume command: the noise stream equals one big draw, the
band-wise NIfTI writer writes what nibabel writes, the streamed metrics equal volume_metrics,
and a volume streamed from a .nii on disk reconstructs exactly as the in-memory path does."""

import gzip
import json

import nibabel as nib
import numpy as np
import pytest
import torch
import zarr
from skimage.transform import resize

from padis3d import cli, load_prior
from padis3d.errors import PadisError
from padis3d.io.volume_stream import open_volume, write_volume_bands
from padis3d.metrics import volume_metrics, volume_metrics_banded
from padis3d.priors.factory import volume_prior_from
from padis3d.volume.runner import VolumeRun, VolumeSettings
from padis3d.volume.tasks import IdentitySlices
from padis3d.volume.pipeline import NormalStream
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture


@pytest.mark.parametrize("total, pieces", [(7, [3, 4]), (16, [16]), (37, [5, 11, 21]), (1003, [992, 11]),
                                           (5000, [1, 17, 256, 4000, 726]), (100_000, [33_333] * 3 + [1])])
def test_noise_stream_is_one_big_draw(total, pieces):
    whole = torch.randn(total, generator=torch.Generator().manual_seed(5))
    stream = NormalStream(torch.Generator().manual_seed(5), total, chunk=48)
    assert torch.equal(torch.cat([stream.take(n) for n in pieces]), whole)
    with pytest.raises(PadisError, match="noise stream"):
        stream.take(1)


@pytest.fixture
def nifti_volume(tmp_path):
    rng = np.random.default_rng(1)
    data = (rng.standard_normal((20, 20, 11)) * 300).astype(np.float32)  # (i, j, k) = (x, y, z)
    affine = np.diag([0.7, 0.9, 2.5, 1.0])
    affine[:3, 3] = [-5, 12, -40]
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    for name in ("vol.nii", "vol.nii.gz"):
        nib.save(img, tmp_path / name)
    return tmp_path, data


def canonical(data: np.ndarray) -> np.ndarray:
    """The fixture's ``(i, j, k)`` voxels (a positive diagonal affine: toward R, A, S) in the
    canonical ``(z, y, x)`` orientation S, P, L (padis3d.io.orientation)."""
    return np.ascontiguousarray(data.transpose(2, 1, 0)[:, ::-1, ::-1])


@pytest.mark.parametrize("zoom", [1.0, 2.0])
def test_band_writer_matches_nibabel(nifti_volume, zoom):
    root, data = nifti_volume
    zyx = canonical(data) + 1
    for name in ("vol.nii", "vol.nii.gz"):
        src = open_volume(root / name)
        assert src.shape == zyx.shape and np.array_equal(src.read(2, 7), canonical(data)[2:7])
        out = write_volume_bands(root / "out" / "rec", src, zyx.shape, lambda a, b: zyx[a:b], rows=3, zoom_yx=zoom)
        assert out.name == "rec" + name[3:]
        # what the whole-array writer of padis3d.io.volume_file (nibabel) gives
        affine = src.affine.copy()
        affine[:3, 3] += affine[:3, :2] @ np.full(2, (zoom - 1) / 2)
        affine[:3, :2] *= zoom
        header = src.header.copy()
        header.set_data_dtype(np.float32)
        ref = nib.Nifti1Image(zyx[:, ::-1, ::-1].transpose(2, 1, 0), affine, header)  # back in the file's order
        zooms = src.header.get_zooms()
        ref.header.set_zooms((zooms[0] * zoom, zooms[1] * zoom, zooms[2]))
        nib.save(ref, root / "ref.nii")
        written = gzip.open(out).read() if name.endswith(".gz") else out.read_bytes()
        assert written == (root / "ref.nii").read_bytes()
    npy = write_volume_bands(root / "out" / "rec", open_volume(_npy(root, zyx)), zyx.shape, lambda a, b: zyx[a:b], 4)
    assert np.array_equal(np.load(npy), zyx)


def _npy(root, arr):
    np.save(root / "v.npy", arr)
    return root / "v.npy"


def test_streamed_metrics_equal_volume_metrics():
    rng = np.random.default_rng(0)
    truth = rng.random((19, 15, 12))
    pred = np.clip(truth + 0.1 * rng.standard_normal(truth.shape), -0.2, 1.2).astype(np.float32)
    ref = volume_metrics(pred, truth)
    for rows in (1, 4, 19):
        got = volume_metrics_banded(zarr.array(pred, chunks=(3, 15, 12)), truth, rows)
        assert got.keys() == ref.keys() and all(np.isclose(got[k], ref[k], rtol=1e-12, atol=0) for k in ref)


def test_streamed_nii_equals_in_memory_and_npy(files, nifti_volume, tmp_path, monkeypatch):  # noqa: F811
    """The CLI on a .nii streamed in bands of 2 slices (budget 1 MiB, half of it per slice), the
    same volume as .npy, and the former in-memory path (whole arrays, one randn, numpy
    measurements) agree exactly."""
    import padis3d.volume.pipeline

    monkeypatch.setattr(padis3d.volume.pipeline, "prep_bytes_per_row", lambda *_: 2 ** 19)
    root, data = nifti_volume
    zyx = canonical(data)
    common = ["reconstruct", "--task", "denoise", "--denoiser", "dds", "--checkpoint", str(files / "tiny.pt"), "--size", "12", "--steps",
              "3", "--band", "4", "--window", "-500", "500", "--noise", "0.1", "--seed", "3", "--no-progress",
              "--precision", "fp32"]  # the reference below loads the prior in fp32, load_prior's default
    assert cli.main([*common, "--input", str(root / "vol.nii"), "--memory-budget-mb", "1",
                     "--out", str(tmp_path / "nii")]) == 0
    assert cli.main([*common, "--input", str(_npy(root, zyx)), "--out", str(tmp_path / "npy")]) == 0
    report = json.loads((tmp_path / "nii" / "report.json").read_text())
    assert report["memory"]["band_rows"]["prepare"] < zyx.shape[0]  # really streamed in several bands
    streamed = canonical(np.asarray(nib.load(tmp_path / "nii" / "reconstruction.nii").dataobj))
    assert np.array_equal(streamed, np.load(tmp_path / "npy" / "reconstruction.npy"))

    # the in-memory reference, written as volume_cli did before it streamed
    lo, hi = -500.0, 500.0
    truth = np.clip((zyx - lo) / (hi - lo), 0, 1).astype(np.float32)
    truth = resize(truth, (truth.shape[0], 12, 12), anti_aliasing=True, preserve_range=True, order=1).astype(np.float32)
    y = torch.from_numpy(truth) + 0.1 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(4))
    prior = volume_prior_from(load_prior(files / "tiny.pt"), truth.shape)
    settings = VolumeSettings(steps=3, seed=3, band=4)
    result = zarr.create_array(store=zarr.storage.MemoryStore(), shape=truth.shape, chunks=(4, 12, 12), dtype="f4")
    VolumeRun(prior, IdentitySlices((12, 12)), y.numpy(), tmp_path / "mem", settings).run(result)
    expected = np.clip(result[:], 0, 1) * (hi - lo) + lo
    assert np.array_equal(streamed, expected)
    assert report["metrics"]["noisy"] == pytest.approx(volume_metrics(y.clamp(0, 1).numpy(), truth), rel=1e-12)
