"""What :func:`padis3d.reconstruct_volume` returns: the reconstruction and its baseline (zarr arrays in
the work folder, or numpy arrays when the run had no work folder), the per-plane metrics, timings,
memory figures, and the settings and identity of the run; and the way back to the input's units,
orientation and file format."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from padis3d.io.volume_stream import VolumeSource, write_volume_bands
from padis3d.memory import StagePeaks
from padis3d.volume.runner import VolumeSettings


@dataclass
class VolumeResult:
    """A volume reconstruction.

    Arrays are ``(z, S, S)`` float32 in the prior's [0, 1] units, canonical orientation
    (:mod:`padis3d.io.orientation`), zarr in the work folder (or numpy without one):
    ``reconstruction`` (the sampler's output, unclipped), ``baseline`` (FBP, the noisy volume or
    CGLS: ``baseline_name``), ``truth`` (the input windowed to [0, 1] and resized: the reference of
    the metrics). ``metrics``: ``{baseline_name: ..., method: ...}``, each
    :func:`padis3d.metrics.volume_metrics_banded` (mean PSNR/SSIM over every axial, coronal and
    sagittal plane, and of the whole volume). ``window``: the input values mapped to 0 and 1;
    ``slices``: the input's axial range ``[z0, z1)``; ``zoom``: input voxels per output voxel in-plane.
    ``timings_s``: seconds of ``prepare``, ``sample``, ``metrics``; ``seconds``: sampling alone.
    Memory in MiB: ``overhead_mb`` (resident at start-up, the model left out), ``model_mb``,
    ``band_rows`` (slices per band of each stage), ``stages`` (peak so far at the end of each stage;
    :attr:`peak_rss_mb` the peak). ``identity``: the run's identity record; ``prior_info``: the
    prior's tile, precision, orientation, batch and two-scale details."""

    reconstruction: Any
    baseline: Any
    truth: Any
    baseline_name: str
    method: str
    metrics: dict[str, dict[str, float]]
    task: str
    source: VolumeSource
    shape: tuple[int, int, int]
    slices: tuple[int, int]
    window: tuple[float, float]
    zoom: float
    noise: float
    geometry: dict | None
    settings: VolumeSettings
    identity: dict
    prior_info: dict
    resumed_from_step: int
    prepared_reused: bool
    seconds: float
    timings_s: dict[str, float]
    overhead_mb: float
    model_mb: float
    band_rows: dict[str, int]
    stages: StagePeaks = field(repr=False, default_factory=StagePeaks)
    work_dir: Path | None = None

    @property
    def peak_rss_mb(self) -> float:
        """This process's peak resident memory so far, in MiB."""
        return self.stages.peak

    @property
    def memory(self) -> dict[str, Any]:
        """The memory figures (MiB) as a report records them."""
        return {"band_rows": self.band_rows, "peak_rss_mb": self.peak_rss_mb, "overhead_mb": self.overhead_mb,
                "model_mb": self.model_mb, "stage_peaks_mb": self.stages.stages}

    def in_units(self, z0: int, z1: int) -> np.ndarray:
        """Slices ``[z0, z1)`` of the reconstruction clipped to [0, 1] and mapped back to the input's
        values (``window``): ``(z1 - z0, S, S)`` float32."""
        lo, hi = self.window
        return np.clip(np.asarray(self.reconstruction[z0:z1]), 0, 1) * (hi - lo) + lo

    def write(self, path: str | Path, rows: int | None = None) -> Path:
        """Write the reconstruction in the input's values, orientation and format family (NIfTI keeps
        its header and gets the affine of the output grid; otherwise ``.npy``), ``rows`` slices at a
        time (default: the planned write band), atomically; :func:`padis3d.io.volume_stream.write_volume_bands`.
        Returns the path written (its suffix set by the format)."""
        return write_volume_bands(path, self.source, self.shape, self.in_units, rows or self.band_rows["write"],
                                  zoom_yx=self.zoom, z_offset=self.slices[0])
