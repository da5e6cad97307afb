"""One-file checkpoints: a prior (EMA weights + everything needed to sample) or a full
training state (adds raw weights, optimizer, RNG, step, loss history).

Layout (a ``torch.save`` dict, loaded with ``weights_only=True``)::

    format: "padis3d-prior" | "padis3d-train-state";  format_version: 1
    config: PriorConfig.to_dict();  ema: state dict (the sampling weights)
    meta: {patch sizes/probs/batches, sigma range, image geometry, normalisation, data,
           steps, final loss, cpu/wall seconds, loss history, library versions, command}
    (train state only) model, optimizer, generator, step
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from padis3d.atomic import atomic_path
from padis3d.errors import PadisError
from padis3d.priors.network import EDMDenoiser, PriorConfig

FORMAT_PRIOR = "padis3d-prior"
FORMAT_STATE = "padis3d-train-state"
FORMAT_VERSION = 1


def library_versions() -> dict[str, str]:
    import monai
    import numpy

    import padis3d
    return {"padis3d": str(padis3d.__version__), "torch": str(torch.__version__), "monai": str(monai.__version__),
            "numpy": str(numpy.__version__)}


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temp file in the same folder, then ``os.replace`` (never a half file)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def read_checkpoint(path: str | Path) -> dict:
    """Load and validate a padis3d checkpoint file (either format) on the CPU; ``path`` may be a
    prior name (:func:`padis3d.priors.registry.resolve_prior`)."""
    from padis3d.priors.registry import resolve_prior

    path = resolve_prior(path)
    if path.is_dir():
        raise PadisError(f"checkpoint {path} is a folder: give the .pt file (a run folder holds prior.pt)")
    if not path.is_file():
        raise PadisError(f"checkpoint {path} does not exist: check the path (priors are .pt files written by "
                         f"'padis3d train')")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt or foreign file
        first = (str(exc).strip().splitlines() or [""])[0][:200]  # torch appends paragraphs of advice
        raise PadisError(f"checkpoint {path} is unreadable or corrupt ({type(exc).__name__}: {first}); "
                         f"re-copy it or retrain with 'padis3d train'") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") not in (FORMAT_PRIOR, FORMAT_STATE):
        raise PadisError(f"{path} is not a padis3d checkpoint (no 'format' field of {FORMAT_PRIOR!r}); "
                         f"use a file written by 'padis3d train'")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise PadisError(f"{path} has checkpoint format version {ckpt['format_version']}; this padis3d reads "
                         f"up to {FORMAT_VERSION}: upgrade padis3d")
    for key in ("config", "ema", "meta"):
        if key not in ckpt:
            raise PadisError(f"checkpoint {path} lacks '{key}': the file is truncated or corrupt; re-copy it")
    return ckpt


def load_weights(model: EDMDenoiser, state: dict, path: str | Path) -> None:
    """``load_state_dict`` with an error naming the file and the architecture mismatch."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1:3]
        raise PadisError(f"checkpoint {path} holds weights of another architecture than {model.config}: "
                         f"{' '.join(s.strip() for s in first)}; load it with its own config "
                         f"(padis3d.load_prior reads it from the file)") from exc


@dataclass
class Prior:
    """A ready-to-sample prior: the denoiser (eval mode, EMA weights) and its metadata."""

    model: EDMDenoiser
    meta: dict
    path: Path

    @property
    def config(self) -> PriorConfig:
        return self.model.config

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Spatial size of the training images (the geometry its positions refer to)."""
        return tuple(self.meta.get("image_shape", ()))

    @property
    def patch_sizes(self) -> list[int | None]:
        """Training patch sizes (``[None]``: a whole-image prior)."""
        return list(self.meta.get("patch_sizes", []))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def orientation(self) -> dict:
        """The orientation of the training data (:func:`data_orientation`)."""
        return data_orientation(self.meta, self.path)

    @property
    def precision(self) -> str:
        """What the network computes in (``fp32``, ``bf16``, ``fp16``; :meth:`EDMDenoiser.set_precision`)."""
        return self.model.precision

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | float, positions: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """``D(x; sigma, positions)`` (see :class:`padis3d.priors.network.EDMDenoiser`) on the prior's device and
        dtype; the result comes back on ``x``'s device and dtype (gradients w.r.t. ``x`` flow)."""
        p = next(self.model.parameters())
        sigma = torch.as_tensor(sigma).to(p.device, p.dtype)
        positions = None if positions is None else positions.to(p.device, p.dtype)
        return self.model(x.to(p.device, p.dtype), sigma, positions).to(x.device, x.dtype)


BUNDLED_ORIENTATION = {"canonical": "SPL", "plane": "axial"}
"""What the bundled chest CT's training slices are in (:func:`padis3d.io.sample_data.chest_ct_volume_hu`)."""


def data_orientation(meta: dict, path: str | Path = "") -> dict:
    """The orientation of a prior's training data: ``{"canonical": "SPL", "plane": "axial" |
    "coronal" | "sagittal" | "any", ...}`` (:mod:`padis3d.io.orientation`), as its checkpoint
    records it (``meta["data"]["orientation"]``). Checkpoints written before it was recorded:
    the bundled chest CT was read canonically (axial), phantoms have no anatomy ("any"),
    npy/zarr/PNG data were read as stored, as today (and so were priors saved from Python without
    a data record); NIfTI or DICOM data were read in the file's voxel order, which the checkpoint
    does not say: a PadisError, never a silent guess."""
    data = meta.get("data", {}) if isinstance(meta.get("data"), dict) else {}
    if isinstance(data.get("orientation"), dict):
        return dict(data["orientation"])
    source = str(data.get("source", ""))
    if source.startswith("chest CT"):
        return {**BUNDLED_ORIENTATION, "from": "bundled"}
    if "ellipses" in source:
        return {"canonical": "SPL", "plane": "any", "from": "phantoms"}
    fmt = data.get("format")
    if fmt in ("nifti", "dicom"):
        raise PadisError(f"checkpoint {path} was trained on {source} ({fmt}) before padis3d recorded the "
                         f"orientation of training data; its slices were read in the file's voxel order, which the "
                         f"checkpoint does not say: retrain it with this padis3d (readers now orient every slice "
                         f"canonically, and the checkpoint records it)")
    planes = {0: "axial", 1: "coronal", 2: "sagittal"}
    return {"canonical": "SPL", "plane": planes.get(data.get("axis") or 0, "axial"),
            "from": "as stored" if fmt else "not recorded"}


def check_orientation(prior: Prior, plane: str = "axial") -> None:
    """PadisError unless ``prior`` learned slices of ``plane`` in the canonical orientation
    (a prior that learned coronal slices would see axial ones as another anatomy)."""
    o = prior.orientation
    if o.get("canonical") != "SPL":
        raise PadisError(f"checkpoint {prior.path} records training data in orientation {o.get('canonical')}, not "
                         f"the canonical SPL every padis3d reader gives: retrain it with this padis3d")
    if o.get("plane", "axial") not in (plane, "any"):
        raise PadisError(f"checkpoint {prior.path} learned {o['plane']} slices; this run gives it {plane} slices: "
                         f"use a prior of {plane} slices" + (" or --axis for the plane" if plane != "volume" else ""))


def load_prior(path: str | Path, device: str | torch.device | None = "cpu",
               config: PriorConfig | None = None, precision: str = "fp32") -> Prior:
    """Load a prior (or the EMA weights of a training state) onto ``device`` in eval mode.

    ``path``: a ``.pt`` file or a prior name (``"chest128_patch"``; :mod:`padis3d.priors.registry`,
    ``padis3d priors`` lists them).

    ``config`` forces an architecture (default: the one stored in the file); a mismatch gives
    a :class:`PadisError`, as do missing or corrupt files. ``precision``: what the network
    computes in (``fp32``, ``bf16``, ``fp16`` on CUDA, or ``auto``: :mod:`padis3d.precision`);
    its output is fp32 whatever the choice.
    """
    from padis3d.device import resolve_device
    from padis3d.priors.registry import resolve_prior

    path = resolve_prior(path)
    ckpt = read_checkpoint(path)
    cfg = config if config is not None else PriorConfig.from_dict(ckpt["config"])
    model = EDMDenoiser(cfg)
    load_weights(model, ckpt["ema"], path)
    model.requires_grad_(False).eval()
    model.to(resolve_device(device)).set_precision(precision)
    data_orientation(ckpt["meta"], path)  # a checkpoint whose training orientation is unknown is refused here
    return Prior(model, ckpt["meta"], Path(path))


def warn_weights_only(path: str | Path) -> None:
    warnings.warn(f"{path} is a prior file (EMA weights only): resuming with fresh optimizer state and RNG; "
                  f"the run continues but is not bit-identical to an uninterrupted one", stacklevel=3)
