"""Readers: every format gives (n, C, size, size) in [0, 1]; bad input names the file."""

from __future__ import annotations

import numpy as np
import pytest

from padis3d.errors import PadisError
from padis3d.io import load_training_images, nifti_slices, read_dicom, read_nifti
from padis3d.io.normalize import hu_window, min_max


def volume(shape=(6, 20, 24)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(-1200, 1500, shape).astype(np.float32)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_slices_along_an_axis(tmp_path, suffix):
    import nibabel as nib

    vol = volume()
    path = tmp_path / f"v{suffix}"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
    lazy = read_nifti(path)
    assert isinstance(lazy, np.ndarray) == (suffix == ".nii.gz")  # .nii stays memory-mapped
    # identity affine: voxel (i, j, k) runs toward R, A, S; the canonical (z, y, x) runs S, P, L
    canonical = vol.transpose(2, 1, 0)[:, ::-1, ::-1]
    np.testing.assert_allclose(nifti_slices(path), canonical, rtol=1e-6)  # axial by default
    coronal = canonical.transpose(1, 0, 2)[:, ::-1, :]  # slices anterior -> posterior, superior at the top
    np.testing.assert_allclose(nifti_slices(path, axis=1), coronal, rtol=1e-6)
    sagittal = canonical.transpose(2, 0, 1)[:, ::-1, :]  # slices right -> left, superior at the top
    np.testing.assert_allclose(nifti_slices(path, axis=2, indices=[3]), sagittal[[3]], rtol=1e-6)
    imgs, info = load_training_images(path, size=16, axis=2, window=(-1000, 1000))
    assert load_training_images(path, size=None)[0].shape == (24, 1, 20, 6)  # default: axial, canonical
    assert info["orientation"] == {"stored": "SAR", "from": "affine", "plane": "sagittal", "canonical": "SPL"}
    assert imgs.shape == (6, 1, 16, 16) and imgs.min() >= 0 and imgs.max() <= 1
    assert info["normalisation"] == {"kind": "hu_window", "window": [-1000, 1000]}
    with pytest.raises(PadisError, match="outside"):
        nifti_slices(path, axis=2, indices=[6])


def test_zarr_npy_and_image_folder(tmp_path):
    import zarr
    from skimage.io import imsave

    vol = volume((4, 16, 16))
    z = zarr.open(str(tmp_path / "v.zarr"), mode="w", shape=vol.shape, dtype="f4")
    z[...] = vol
    np.save(tmp_path / "v.npy", vol)
    a, _ = load_training_images(tmp_path / "v.zarr", size=None)
    b, _ = load_training_images(tmp_path / "v.npy", size=None)
    np.testing.assert_allclose(a, (vol[:, None] - vol.min()) / (vol.max() - vol.min()), atol=1e-6)
    np.testing.assert_allclose(a, b)
    folder = tmp_path / "rgb"
    folder.mkdir()
    for i in range(3):
        imsave(folder / f"{i}.png", (np.random.default_rng(i).uniform(0, 255, (20, 20, 3))).astype(np.uint8))
    imgs, info = load_training_images(folder, size=8)
    assert imgs.shape == (3, 3, 8, 8) and info["format"] == "images"


def test_dicom_series_sorted_by_position_and_rescaled(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = tmp_path / "series"
    folder.mkdir()
    for name, z in [("a.dcm", 5.0), ("b.dcm", -5.0), ("c.dcm", 0.0)]:
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = ds.file_meta.MediaStorageSOPClassUID, generate_uid(), "CT"
        ds.Rows = ds.Columns = 4
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.ImagePositionPatient = [0.0, 0.0, z]
        ds.RescaleSlope, ds.RescaleIntercept = 2, -1024
        ds.PixelData = np.full((4, 4), int(z + 10), np.uint16).tobytes()
        pydicom.dcmwrite(folder / name, ds, enforce_file_format=True)
    hu = read_dicom(folder)
    np.testing.assert_allclose(hu[:, 0, 0], [2 * 5 - 1024, 2 * 10 - 1024, 2 * 15 - 1024])
    np.testing.assert_array_equal(read_dicom([folder / "c.dcm", folder / "a.dcm"])[:, 0, 0], [2 * 10 - 1024, 2 * 15 - 1024])
    imgs, info = load_training_images(folder, size=None)
    assert info["normalisation"]["window"] == [-1000, 1000] and imgs.shape == (3, 1, 4, 4)
    ds = pydicom.dcmread(folder / "a.dcm")
    del ds.RescaleSlope
    ds.save_as(folder / "a.dcm")
    with pytest.raises(PadisError, match="a.dcm lacks RescaleSlope"):
        read_dicom(folder)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # imageio probes its legacy DICOM plugin on garbage
def test_bad_inputs_name_the_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PadisError, match="empty"):
        load_training_images(tmp_path / "empty")
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(PadisError, match="broken.nii.gz"):
        load_training_images(bad)
    np.save(tmp_path / "four.npy", np.zeros((2, 2, 2, 2)))
    with pytest.raises(PadisError, match="four.npy has shape"):
        load_training_images(tmp_path / "four.npy")
    np.save(tmp_path / "flat.npy", np.ones((3, 8, 8)))
    with pytest.raises(PadisError, match="flat.npy is constant"):
        load_training_images(tmp_path / "flat.npy")
    folder = tmp_path / "pngs"
    folder.mkdir()
    (folder / "x.png").write_bytes(b"garbage")
    with pytest.raises(PadisError, match="x.png"):
        load_training_images(folder)
    with pytest.raises(PadisError, match="does not exist"):
        load_training_images(tmp_path / "missing.nii")


def test_normalisations():
    np.testing.assert_allclose(hu_window(np.array([-2000.0, -1000, 0, 1000, 3000])), [0, 0, 0.5, 1, 1])
    np.testing.assert_allclose(min_max(np.array([2.0, 4.0, 3.0])), [0, 1, 0.5])
    with pytest.raises(PadisError, match="lo < hi"):
        hu_window(np.zeros(3), (1.0, 1.0))
    with pytest.raises(PadisError, match="NaN"):
        min_max(np.array([0.0, np.nan]))


def test_training_on_a_nifti_uses_the_hu_window_reconstruct_reads_it_with(tmp_path):
    """A prior trained on a NIfTI must see the intensities ``padis3d reconstruct`` gives it: the HU window
    [-1000, 1000] (min-max per volume would map air to 0 only when the volume holds air, bone to 1)."""
    import nibabel as nib

    from padis3d.io import HU_WINDOW
    from padis3d.io.reference import read_reference_slice

    vol = np.linspace(-1200, 2500, 16 * 16 * 4, dtype=np.float32).reshape(16, 16, 4)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "ct.nii.gz")
    images, info = load_training_images(tmp_path / "ct.nii.gz", size=None)
    assert info["normalisation"] == {"kind": "hu_window", "window": list(HU_WINDOW)}
    ref = read_reference_slice(str(tmp_path / "ct.nii.gz"), 2, None, None)
    np.testing.assert_allclose(images[2, 0], ref.image, atol=1e-6)
    windowed, _ = load_training_images(tmp_path / "ct.nii.gz", size=None, window=(0.0, 2500.0))
    assert windowed.min() == 0 and windowed.max() == 1 and not np.allclose(windowed, images)
