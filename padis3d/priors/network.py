"""Position-aware patch denoiser ``D(x; sigma, positions)``: EDM preconditioning around a
MONAI ``DiffusionModelUNet``.

One code path serves every variant, chosen by :class:`PriorConfig`:

* 2D patches: ``spatial_dims=2``, ``channels=1`` (CT) or 3 (RGB), ``position_axes=(0, 1)``;
* 3D cubes: ``spatial_dims=3``, ``position_axes=(0, 1, 2)``;
* slabs of ``k`` slices: ``spatial_dims=2``, ``channels=k``, ``position_axes=(0, 1, 2)``
  where the caller's position channel 0 is the slab's centre z (constant over the tile);
* no positions (ablation, whole-image prior): ``position_axes=()``.

The preconditioning (Karras et al. 2022, sigma_data = 0.5) is written here because MONAI's
diffusion networks take integer-like DDPM timesteps, not the EDM parametrisation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from padis3d.errors import PadisError
from padis3d.precision import autocast


@dataclass(frozen=True)
class PriorConfig:
    """Architecture of a prior; stored in every checkpoint.

    ``features``: channels per UNet level (``len - 1`` downsamplings, so every patch side must
    be divisible by ``2 ** (len(features) - 1)``). ``position_axes``: which channels of the
    caller's ``positions`` tensor are fed to the network (empty: no positions).
    """

    spatial_dims: int = 2
    channels: int = 1
    position_axes: tuple[int, ...] = (0, 1)
    features: tuple[int, ...] = (32, 64, 128)
    num_res_blocks: int = 1
    attention_levels: tuple[bool, ...] = (False, False, False)
    norm_num_groups: int = 16
    num_head_channels: int = 16
    sigma_data: float = 0.5
    timestep_scale: float = 1000.0  # MONAI timesteps = timestep_scale * c_noise
    notes: str = ""  # free text, e.g. what of the paper's network this config cannot express

    def __post_init__(self) -> None:
        if self.spatial_dims not in (2, 3):
            raise PadisError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if self.channels < 1:
            raise PadisError(f"channels must be >= 1, got {self.channels}")
        if len(self.attention_levels) != len(self.features):
            raise PadisError(f"attention_levels {self.attention_levels} needs one entry per level of features "
                             f"{self.features}")
        if any(f % self.norm_num_groups for f in self.features):
            raise PadisError(f"features {self.features} must be multiples of norm_num_groups={self.norm_num_groups}")

    @property
    def multiple(self) -> int:
        """Every patch side must be a multiple of this."""
        return 2 ** (len(self.features) - 1)

    @property
    def uses_positions(self) -> bool:
        return len(self.position_axes) > 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PriorConfig:
        names = {f.name for f in fields(cls)}
        d = dict(d)
        d.pop("extra", None)  # an always-empty field of the first checkpoints (format version 1)
        unknown = set(d) - names
        if unknown:
            raise PadisError(f"unknown prior config keys {sorted(unknown)}: the checkpoint was written by a newer "
                             f"padis3d; upgrade padis3d")
        d = dict(d)
        for key in ("position_axes", "features", "attention_levels"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


# Named configurations: the CPU default and the paper's GPU network (~60M parameters).
CPU_CONFIG = PriorConfig()
PAPER_GPU_CONFIG = PriorConfig(features=(128, 256, 256, 256), num_res_blocks=4,
                               attention_levels=(False, False, False, True), norm_num_groups=32,
                               num_head_channels=64,
                               notes="paper dropout 0.05: MONAI DiffusionModelUNet has no dropout option")


class EDMDenoiser(nn.Module):
    """``D(x; sigma, positions) = c_skip x + c_out F([c_in x, positions], c_noise)``.

    ``x``: ``(n, channels, *P)``; ``sigma``: ``(n,)`` or a scalar (noise std, image units);
    ``positions``: ``(n, >= max(position_axes) + 1, *P)`` or ``None`` for a no-positions
    model. Returns ``(n, channels, *P)``. Any ``P`` divisible by ``config.multiple`` works.

    ``precision`` (``fp32`` by default; :meth:`set_precision`): the UNet ``F`` runs under
    ``torch.autocast`` in bf16/fp16 and its output is cast back to ``x``'s dtype at once; the
    preconditioning, the skip term and the weights stay fp32 (forward and backward alike).
    """

    def __init__(self, config: PriorConfig):
        super().__init__()
        from monai.networks.nets import DiffusionModelUNet

        self.config = config
        self.precision = "fp32"
        self.net = DiffusionModelUNet(
            spatial_dims=config.spatial_dims, in_channels=config.channels + len(config.position_axes),
            out_channels=config.channels, num_res_blocks=config.num_res_blocks, channels=config.features,
            attention_levels=config.attention_levels, norm_num_groups=config.norm_num_groups,
            num_head_channels=config.num_head_channels)

    def set_precision(self, precision: str) -> str:
        """Run ``F`` in ``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``; see :mod:`padis3d.precision`)
        on the device of the weights; returns the resolved one (PadisError for fp16 off CUDA)."""
        from padis3d.precision import resolve_precision

        self.precision = resolve_precision(precision, next(self.parameters()).device)
        return self.precision

    def _check(self, x: torch.Tensor, positions: torch.Tensor | None) -> None:
        c = self.config
        if x.ndim != c.spatial_dims + 2 or x.shape[1] != c.channels:
            raise PadisError(f"the prior expects x of shape (n, {c.channels}, {c.spatial_dims} spatial dims), "
                             f"got {tuple(x.shape)}")
        bad = [s for s in x.shape[2:] if s % c.multiple]
        if bad:
            raise PadisError(f"patch size {tuple(x.shape[2:])} must be divisible by {c.multiple} for this network")
        if c.uses_positions:
            if positions is None:
                raise PadisError("this prior was trained with positions: pass positions (n, ndim, *patch)")
            if (positions.ndim != x.ndim or positions.shape[0] not in (1, x.shape[0])
                    or positions.shape[1] <= max(c.position_axes) or positions.shape[2:] != x.shape[2:]):
                raise PadisError(f"positions of shape {tuple(positions.shape)} do not fit x {tuple(x.shape)} "
                                 f"(need {max(c.position_axes) + 1} channels)")

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, positions: torch.Tensor | None = None
                ) -> torch.Tensor:
        self._check(x, positions)
        c = self.config
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        if sigma.numel() not in (1, x.shape[0]):
            raise PadisError(f"sigma has {sigma.numel()} values for a batch of {x.shape[0]}: pass one or one per item")
        sigma = sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma
        s = sigma.reshape(-1, *[1] * (x.ndim - 1))
        sd2 = c.sigma_data ** 2
        c_skip = sd2 / (s ** 2 + sd2)
        c_out = s * c.sigma_data / (s ** 2 + sd2).sqrt()
        c_in = 1.0 / (s ** 2 + sd2).sqrt()
        c_noise = sigma.log() / 4
        inp = c_in * x
        if c.uses_positions:
            pos = positions[:, list(c.position_axes)].to(x.dtype).expand(x.shape[0], -1, *x.shape[2:])
            inp = torch.cat([inp, pos], dim=1)
        with autocast(self.precision, x.device):
            f = self.net(inp, c.timestep_scale * c_noise)
        return c_skip * x + c_out * f.to(x.dtype)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def draw_sigma_noise(shape: tuple[int, ...], generator: torch.Generator, p_mean: float = -1.2,
                     p_std: float = 1.2) -> tuple[torch.Tensor, torch.Tensor]:
    """EDM training noise for a batch of ``shape``: ``ln sigma ~ N(p_mean, p_std^2)`` ``(n,)`` and ``n ~ N(0, I)``."""
    sigma = (torch.randn(shape[0], generator=generator) * p_std + p_mean).exp()
    return sigma, torch.randn(shape, generator=generator)


def edm_loss(model: nn.Module, clean: torch.Tensor, positions: torch.Tensor | None, sigma: torch.Tensor,
             noise: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """EDM denoising loss, mean over batch and voxels: ``y = clean + sigma noise`` (variance exploding),
    weight ``(sigma^2 + sd^2) / (sigma sd)^2``, target ``clean`` ``(n, C, *P)``."""
    s = sigma.to(clean).reshape(-1, *[1] * (clean.ndim - 1))
    weight = (s ** 2 + sigma_data ** 2) / (s * sigma_data) ** 2
    denoised = model(clean + s * noise.to(clean), sigma.to(clean), positions)
    return (weight * (denoised - clean) ** 2).mean()


def paper_parameter_count() -> int:
    """Parameter count of :data:`PAPER_GPU_CONFIG` (built on the meta device, no memory)."""
    with torch.device("meta"):
        return count_parameters(EDMDenoiser(PAPER_GPU_CONFIG))


__all__ = ["PriorConfig", "CPU_CONFIG", "PAPER_GPU_CONFIG", "EDMDenoiser", "draw_sigma_noise", "edm_loss", "count_parameters",
           "paper_parameter_count"]
