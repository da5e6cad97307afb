"""The prior sees the orientation it was trained in (issue 27, class 1), and one acquisition per
run (class 4). The same anatomy stored as LAS, LPS and RAS NIfTI and as DICOM series (in the
canonical order, and upside down with its slices stored superior -> inferior) reaches the prior
as the very slice the shipped priors were trained on, reconstructs to the same result, and
comes back in each file's own voxel order and geometry. Checkpoints record the orientation of
their training data; one that does not match, or cannot say, is refused."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

from padis3d.errors import PadisError
from padis3d.io.sample_data import chest_ct_path, chest_ct_slices, chest_ct_volume_hu
from tests.reliability.helpers import assert_clean_failure, dicom_slice, run_cli
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture

Z0, Z1 = 116, 124  # chest CT slices of the fixture (test slices, never trained on)
NIFTI_CODES = [("L", "A", "S"), ("L", "P", "S"), ("R", "A", "S")]


def as_codes(img: nib.Nifti1Image, codes) -> nib.Nifti1Image:
    return img.as_reoriented(ornt_transform(io_orientation(img.affine), axcodes2ornt(codes)))


def write_series(folder, hu_zyx: np.ndarray, upside_down: bool = False, uid: str = "1.2.3.4",
                 description: str = "chest", names=None) -> None:
    """A canonical ``(z, y, x)`` HU block as an axial DICOM series (one file per slice, written in a
    scrambled order). ``upside_down``: rows run anterior-ward (column cosine -y) and the slice
    normal points inferior, so the stored order is flipped in rows and slices."""
    folder.mkdir(parents=True, exist_ok=True)
    iop = [1, 0, 0, 0, -1, 0] if upside_down else [1, 0, 0, 0, 1, 0]
    order = np.random.default_rng(0).permutation(len(hu_zyx))
    for n, k in enumerate(order):
        pixels = hu_zyx[k][::-1] if upside_down else hu_zyx[k]
        name = names(n) if names else f"f{n:03d}.dcm"
        dicom_slice(folder / name, np.round(pixels + 1024).astype(np.uint16), z=2.5 * float(k),
                    ImageOrientationPatient=iop, SeriesInstanceUID=uid, SeriesDescription=description,
                    PixelSpacing=[0.703125, 0.703125])


@pytest.fixture(scope="module")
def anatomy(tmp_path_factory):
    """The chest CT block ``[Z0, Z1)`` as LAS (as shipped), LPS and RAS NIfTI and two DICOM series."""
    root = tmp_path_factory.mktemp("anatomy")
    shipped = nib.load(chest_ct_path())
    block = np.maximum(np.asarray(shipped.dataobj[:, :, Z0:Z1], dtype=np.float32), -1024)  # DICOM stores HU + 1024
    affine = shipped.affine.copy()
    affine[:3, 3] = affine[:3, :] @ [0, 0, Z0, 1]
    las = nib.Nifti1Image(block, affine)
    paths = {}
    for codes in NIFTI_CODES:
        paths["".join(codes)] = root / f"{''.join(codes)}.nii.gz"
        nib.save(as_codes(las, codes), paths["".join(codes)])
    hu = np.maximum(chest_ct_volume_hu()[Z0:Z1], -1024)
    write_series(root / "dicom", hu)
    write_series(root / "dicom_upside_down", hu, upside_down=True)
    paths["dicom"], paths["dicom_upside_down"] = root / "dicom", root / "dicom_upside_down"
    return root, paths


def test_every_reader_hands_the_prior_the_training_slice(anatomy):
    from padis3d.io.reference import read_reference_slice

    _, paths = anatomy
    k = 120
    trained_on = chest_ct_slices([k], 128)[0]  # what the shipped priors learned
    for name, path in paths.items():
        ref = read_reference_slice(path, k - Z0).resized((128, 128))
        assert np.abs(ref.image - trained_on).max() < 1e-5, name
        assert ref.orientation["canonical"] == "SPL" and ref.orientation["plane"] == "axial"
    assert read_reference_slice(paths["RAS"], 0).orientation["stored"] == "SAR"
    assert read_reference_slice(paths["dicom_upside_down"], 0).orientation == {
        "stored": "IAL", "from": "dicom", "canonical": "SPL", "plane": "axial"}


def test_streamed_volume_is_canonical_whatever_the_storage(anatomy):
    from padis3d.io.volume_stream import open_volume

    _, paths = anatomy
    truth = np.maximum(chest_ct_volume_hu()[Z0:Z1], -1024)
    for name, path in paths.items():
        src = open_volume(path)
        assert src.shape == truth.shape, name
        np.testing.assert_allclose(src.read(2, 6), truth[2:6], atol=1e-3, err_msg=name)


def _canonical_nifti(path) -> tuple[np.ndarray, np.ndarray]:
    img = as_codes(nib.load(path), ("L", "A", "S"))
    return np.asarray(img.dataobj, dtype=np.float32), img.affine


def test_same_anatomy_same_2d_reconstruction_back_in_each_files_orientation(files, anatomy, tmp_path):  # noqa: F811
    _, paths = anatomy
    results = {}
    for name, path in paths.items():
        out = tmp_path / name
        rc, err = run_cli(["reconstruct", "--task", "deblur", "--kernel", "3", "--checkpoint", str(files / "tiny.pt"),
                           "--input", str(path), "--slice", str(120 - Z0), "--size", "32", "--steps", "2", "--inner",
                           "1", "--threads", "1", "--no-progress", "--out", str(out)])
        assert rc == 0, err
        report = json.loads((out / "report.json").read_text())
        assert report["normalisation"]["orientation"]["plane"] == "axial"
        if name in ("dicom", "dicom_upside_down"):  # .npy in the series' stored order
            stored = np.load(out / "reconstruction.npy")
            results[name] = stored[::-1] if name == "dicom_upside_down" else stored
            continue
        out_img = nib.load(out / "reconstruction.nii.gz")
        assert out_img.shape[list(nib.aff2axcodes(out_img.affine)).index("S")] == 1  # written in the file's voxel order
        assert nib.aff2axcodes(out_img.affine) == nib.aff2axcodes(nib.load(path).affine)
        data, affine = _canonical_nifti(out / "reconstruction.nii.gz")
        results[name] = (data[:, :, 0].T[::-1], affine)  # (x, y) LAS -> canonical rows P, columns L
    ref_image, ref_affine = results["LAS"]
    for name in ("LPS", "RAS"):
        np.testing.assert_allclose(results[name][0], ref_image, atol=1e-3, err_msg=name)  # HU
        np.testing.assert_allclose(results[name][1], ref_affine, atol=1e-6, err_msg=name)
    for name in ("dicom", "dicom_upside_down"):
        np.testing.assert_allclose(results[name], ref_image, atol=1e-3, err_msg=name)


def test_same_anatomy_same_volume_reconstruction_with_the_input_geometry(files, anatomy, tmp_path):  # noqa: F811
    _, paths = anatomy
    results = {}
    for name in ("LAS", "LPS", "RAS", "dicom_upside_down"):
        out = tmp_path / name
        rc, err = run_cli(["reconstruct", "--task", "denoise", "--checkpoint", str(files / "tiny.pt"), "--input",
                           str(paths[name]), "--size", "16", "--tile", "8", "--band", "4", "--threads", "1",
                           "--no-progress", "--out", str(out)])
        assert rc == 0, err
        if name == "dicom_upside_down":
            stored = np.load(out / "reconstruction.npy")  # (slice, row, column) as the series stores them
            results[name] = stored[::-1, ::-1, :]
            continue
        written = nib.load(out / "reconstruction.nii.gz")
        assert nib.aff2axcodes(written.affine) == nib.aff2axcodes(nib.load(paths[name]).affine)
        data, affine = _canonical_nifti(out / "reconstruction.nii.gz")
        results[name] = (data.transpose(2, 1, 0)[:, ::-1, :], affine)
    ref, ref_affine = results["LAS"]
    for name in ("LPS", "RAS"):
        np.testing.assert_allclose(results[name][0], ref, atol=1e-3, err_msg=name)
        np.testing.assert_allclose(results[name][1], ref_affine, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(results["dicom_upside_down"], ref, atol=1e-3)


def test_a_volume_whose_slices_are_not_axial_is_refused_by_the_volume_tasks(files, anatomy, tmp_path):  # noqa: F811
    root, paths = anatomy
    sagittal = root / "sagittal_stack.nii.gz"
    nib.save(as_codes(nib.load(paths["LAS"]), ("A", "S", "L")), sagittal)  # slices along x
    out = tmp_path / "o"
    rc, err = run_cli(["reconstruct", "--task", "denoise", "--checkpoint", str(files / "tiny.pt"), "--input",
                       str(sagittal), "--size", "16", "--no-progress", "--out", str(out)])
    assert_clean_failure(rc, err, "slices are not axial", out)
    from padis3d.io.reference import read_reference_slice  # the 2D tasks read it whole: axial slices as ever

    trained_on = chest_ct_slices([120], 128)[0]
    assert np.abs(read_reference_slice(sagittal, 120 - Z0).resized((128, 128)).image - trained_on).max() < 1e-5


def test_declared_orientation_of_an_npy(files, tmp_path):  # noqa: F811
    from padis3d.io.reference import read_reference_slice

    canonical = chest_ct_volume_hu()[118:122, ::8, ::8]
    np.save(tmp_path / "canonical.npy", canonical)
    np.save(tmp_path / "upside_down.npy", canonical[:, ::-1, :])
    a = read_reference_slice(tmp_path / "canonical.npy", 1, window=(-1000, 1000))
    b = read_reference_slice(tmp_path / "upside_down.npy", 1, window=(-1000, 1000), orientation="SAL")
    assert np.array_equal(a.image, b.image) and b.orientation["from"] == "declared"
    out = tmp_path / "o"
    rc, err = run_cli(["reconstruct", "--task", "deblur", "--kernel", "1", "--noise", "0", "--checkpoint",
                       str(files / "tiny.pt"), "--input", str(tmp_path / "upside_down.npy"), "--orientation", "SAL",
                       "--window", "-1000", "1000", "--slice", "1", "--size", "64", "--steps", "1", "--inner", "1",
                       "--no-progress", "--out", str(out)])
    assert rc == 0, err
    written = np.load(out / "reconstruction.npy")  # back upside down, as the file stores it
    assert written.shape == (64, 64)
    assert np.corrcoef(written.ravel(), np.clip(canonical[1, ::-1], -1000, 1000).ravel())[0, 1] > 0.9
    nii = tmp_path / "las.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 8), np.float32), np.diag([-1.0, 1, 1, 1])), nii)
    rc, err = run_cli(["reconstruct", "--task", "deblur", "--checkpoint", str(files / "tiny.pt"), "--input",
                       str(nii), "--orientation", "SPL", "--no-progress", "--out", str(tmp_path / "n")])
    assert_clean_failure(rc, err, "contradicts", tmp_path / "n")
    with pytest.raises(PadisError, match="each patient axis once"):
        read_reference_slice(tmp_path / "canonical.npy", 1, orientation="SSL")


# -- checkpoints record and check the orientation of their training data --------------------------
def _checkpoint_with(path, files, data: dict):  # noqa: F811
    import torch

    ckpt = torch.load(files / "tiny.pt", weights_only=True)
    ckpt["meta"] = {**ckpt["meta"], "data": data}
    torch.save(ckpt, path)
    return path


def test_checkpoints_record_and_check_the_training_orientation(files, tmp_path):  # noqa: F811
    from padis3d import load_prior
    from padis3d.priors.checkpoint import check_orientation, data_orientation

    shipped = load_prior("chest128_patch")
    assert shipped.orientation["canonical"] == "SPL" and shipped.orientation["plane"] == "axial"
    old_nifti = _checkpoint_with(tmp_path / "old.pt", files, {"source": "scan.nii.gz", "format": "nifti", "axis": 2})
    with pytest.raises(PadisError, match="before padis3d recorded the orientation"):
        load_prior(old_nifti)
    coronal = load_prior(_checkpoint_with(tmp_path / "coronal.pt", files, {
        "source": "scan.nii.gz", "format": "nifti", "orientation": {"canonical": "SPL", "plane": "coronal"}}))
    with pytest.raises(PadisError, match="learned coronal slices"):
        check_orientation(coronal, "axial")
    check_orientation(coronal, "coronal")
    assert data_orientation({"data": {"source": "random ellipses (padis3d.training.phantoms)"}})["plane"] == "any"
    # on the command line: a coronal prior refuses axial slices and takes coronal ones
    vol = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).uniform(-1000, 500, (16, 16, 16)).astype(np.float32),
                             np.eye(4)), vol)
    base = ["reconstruct", "--task", "deblur", "--checkpoint", str(tmp_path / "coronal.pt"), "--input", str(vol),
            "--size", "16", "--steps", "1", "--inner", "1", "--no-progress"]
    rc, err = run_cli([*base, "--out", str(tmp_path / "axial")])
    assert_clean_failure(rc, err, "learned coronal slices", tmp_path / "axial")
    assert run_cli([*base, "--axis", "1", "--out", str(tmp_path / "coronal")])[0] == 0


def test_training_records_the_orientation_in_the_checkpoint_and_card(tmp_path):
    import torch

    canonical = chest_ct_volume_hu()[118:122, ::16, ::16]
    np.save(tmp_path / "data.npy", canonical[:, ::-1, :])
    rc, err = run_cli(["train", "--data", str(tmp_path / "data.npy"), "--orientation", "SAL", "--out",
                       str(tmp_path / "run"), "--steps", "1", "--threads", "1", "--no-progress", "--features", "16",
                       "32", "--size", "16", "--patch-sizes", "8", "16", "--batch", "2"])
    assert rc == 0, err
    meta = torch.load(tmp_path / "run" / "prior.pt", weights_only=True)["meta"]
    assert meta["data"]["orientation"] == {"stored": "SAL", "from": "declared", "plane": "axial", "canonical": "SPL"}
    card = next((tmp_path / "run").glob("*.md")).read_text()
    assert "axial slices in the canonical SPL orientation" in card and "stored as SAL" in card


# -- one acquisition per run -----------------------------------------------------------------------
def test_a_folder_of_two_series_is_refused_or_one_is_picked(files, tmp_path):  # noqa: F811
    hu = np.maximum(chest_ct_volume_hu()[110:118, ::16, ::16], -1024)
    folder = tmp_path / "two"
    write_series(folder, hu, uid="1.2.3.100", description="soft tissue", names=lambda n: f"a{2 * n:03d}.dcm")
    write_series(folder, hu[:, ::-1] * 0.5, uid="1.2.3.200", description="lung", names=lambda n: f"a{2 * n + 1:03d}.dcm")
    write_series(tmp_path / "one", hu, uid="1.2.3.100", description="soft tissue")
    from padis3d.io import load_training_images

    with pytest.raises(PadisError, match=r"holds 2 DICOM series.*1\.2\.3\.100: 'soft tissue', 8 slices.*"
                                         r"1\.2\.3\.200: 'lung', 8 slices"):
        load_training_images(folder, size=16)
    picked, _ = load_training_images(folder, size=16, series="1.2.3.1")  # a unique prefix
    assert np.array_equal(picked, load_training_images(tmp_path / "one", size=16)[0])
    common = ["--checkpoint", str(files / "tiny.pt"), "--size", "16", "--steps", "1", "--no-progress"]
    for task in (["--task", "deblur", "--inner", "1"], ["--task", "denoise", "--tile", "8"]):
        rc, err = run_cli(["reconstruct", *task, *common, "--input", str(folder), "--out", str(tmp_path / "x")])
        assert_clean_failure(rc, err, "holds 2 DICOM series", tmp_path / "x")
        rc, err = run_cli(["reconstruct", *task, *common, "--input", str(folder), "--series", "1.2.3.9",
                           "--out", str(tmp_path / "x")])
        assert_clean_failure(rc, err, "--series 1.2.3.9 matches no series", tmp_path / "x")
        a, b = tmp_path / f"picked{task[1]}", tmp_path / f"one{task[1]}"
        assert run_cli(["reconstruct", *task, *common, "--input", str(folder), "--series", "1.2.3.100",
                        "--out", str(a)])[0] == 0
        assert run_cli(["reconstruct", *task, *common, "--input", str(tmp_path / "one"), "--out", str(b)])[0] == 0
        assert np.array_equal(np.load(a / "reconstruction.npy"), np.load(b / "reconstruction.npy"))
    rc, err = run_cli(["train", "--data", str(folder), "--out", str(tmp_path / "t"), "--steps", "1", "--no-progress"])
    assert_clean_failure(rc, err, "holds 2 DICOM series", tmp_path / "t", command="train")
