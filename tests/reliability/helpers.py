"""Shared pieces of the reliability suite: bad-input files, CLI runners that capture stderr,
and the contract every failure must meet (one line, exit 2, no traceback, no output)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from padis3d import cli

ROOT = Path(__file__).resolve().parents[2]


def env() -> dict[str, str]:
    """The environment of a subprocess that imports this checkout's padis3d."""
    return {**os.environ, "PYTHONPATH": os.getcwd()}


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``padis3d.cli.main(argv)`` in-process: (exit code, stderr). argparse's own exit is an exit code too."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = cli.main(argv)
        except SystemExit as exc:
            rc = int(exc.code or 0)
    return rc, err.getvalue()


def run_subprocess(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m padis3d.cli ARGV`` in a fresh process (text output captured)."""
    return subprocess.run([sys.executable, "-m", "padis3d.cli", *argv], env=env(), capture_output=True, text=True,
                          timeout=timeout)


def without_option(argv: list[str], flags: list[str] | tuple[str, ...]) -> list[str]:
    """``argv`` without the options ``flags`` and the values that follow each."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in flags:
            i += 1
            while i < len(argv) and not argv[i].startswith("--"):
                i += 1
            continue
        out.append(argv[i])
        i += 1
    return out


def assert_clean_failure(rc: int, stderr: str, fragment: str, out: Path, command: str = "reconstruct") -> None:
    """Exit 2, one ``padis3d CMD: error: ...`` line containing ``fragment``, no traceback, and
    the output folder absent (it did not exist before the run)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert rc == 2, stderr
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith(f"padis3d {command}: error: "), stderr
    assert fragment in lines[0], lines[0]
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))


def nifti_volume(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), np.diag([0.8, 0.8, 2.5, 1.0])), path)
    return path


def ct_volume(shape: tuple[int, int, int] = (16, 16, 12), seed: int = 0) -> np.ndarray:
    """A small HU volume ``(x, y, z)``: air around a noisy soft-tissue block."""
    rng = np.random.default_rng(seed)
    data = np.full(shape, -1000.0, np.float32)
    x, y, z = shape
    data[x // 4:3 * x // 4, y // 5:4 * y // 5, z // 6:5 * z // 6] = 40.0 + 20 * rng.standard_normal(
        (3 * x // 4 - x // 4, 4 * y // 5 - y // 5, 5 * z // 6 - z // 6))
    return data


def dicom_slice(path: Path, pixels: np.ndarray, modality: str = "CT", rescale: tuple[float, float] | None = (1, -1024),
                z: float = 0.0, **tags) -> Path:
    """Write one uncompressed 16-bit DICOM slice; ``rescale=None`` leaves out RescaleSlope/Intercept;
    ``tags`` are set as they are (ImageOrientationPatient, SeriesInstanceUID, ...)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}[modality]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = sop_class, ds.file_meta.MediaStorageSOPInstanceUID, modality
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.ImagePositionPatient = [0.0, 0.0, z]
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    for name, value in tags.items():
        setattr(ds, name, value)
    ds.PixelData = np.ascontiguousarray(pixels, np.uint16).tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path
