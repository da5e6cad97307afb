"""The score of a whole image or volume from a patch denoiser (PaDIS, ALGORITHMS §1).

The sampler state lives on the zero-padded canvas: ``embed`` pads an image into it and
``crop`` takes the image back. Each evaluation draws ONE random grid shift, runs the tiles
through the denoiser in bounded batches (``tiling.map_tiles``), and returns the denoised
canvas ``D(x; σ)``, exactly 0 on the border, so the score ``(D - x) / σ²`` pulls the
padding back to zero. With ``tile=None`` the same object is the whole-image prior (one
tile, no padding), the paper's comparator. Any object with this interface (``embed``,
``crop``, ``state_shape``, ``denoise``, ``denoise_vjp``) plugs into every sampler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import torch

from padis3d.errors import PadisError
from tiling import TileGrid, map_tiles, vjp_tiles

Denoiser = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
"""``denoiser(tiles (n, C, *P), sigma (n,), positions (n, ndim, *P)) -> (n, C, *P)``."""


def network_bytes_per_tile(denoiser: Denoiser, tile: Sequence[int], channels: int, position_channels: int,
                           dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> int:
    """Bytes ``denoiser`` keeps per tile for a backward pass: the tensors autograd saves (its
    activations), measured on batches of one and two tiles (the difference excludes the weights).

    It also bounds the activations of a forward pass without gradients, so the tiling engine
    counts it per tile in flight under a memory budget (``fn_bytes_per_tile``)."""
    def saved_bytes(n: int) -> int:
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
            # detached: the same storage without its grad_fn. Returning ``t`` itself makes a
            # reference cycle (an op's output saved by its own grad_fn) that autograd never
            # frees: every measurement leaked its activations (~50 MiB at a 48-pixel tile).
            return t.detach()

        x = torch.zeros((n, channels, *tile), dtype=dtype, device=device, requires_grad=True)
        pos = torch.zeros((n, position_channels, *tile), dtype=dtype, device=device)
        sigma = torch.ones(n, dtype=dtype, device=device)
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = denoiser(x, sigma, pos)
        del out
        return sum(seen.values())

    return max(0, saved_bytes(2) - saved_bytes(1))


class PatchPrior:
    """Whole-image denoiser/score from a patch denoiser over a fixed image shape.

    image_shape: spatial shape ``N`` of the image (2D or 3D). tile: patch size (int or per
    axis; ``None`` = whole image). fold_axes: tile axes handed to a 2D network as channels
    (slabs). min_shifts: admissible grid shifts per axis at least (a slab axis of ``k``
    slices needs ``k``, see :class:`tiling.TileGrid`). max_batch / memory_budget: tiles in flight; device: where the denoiser runs
    (the state stays on its own device). streamed_vjp: compute DPS gradients batch by batch
    (bounded memory, one extra forward pass) instead of one autograd graph over all tiles;
    default: streamed when a batch or memory limit is set.
    """

    def __init__(self, denoiser: Denoiser, image_shape: Sequence[int], tile: int | Sequence[int | None] | None,
                 *, fold_axes: Sequence[int] = (), min_shifts: int | Sequence[int] = 1, max_batch: int | None = None,
                 memory_budget: int | None = None, device: torch.device | str | None = None,
                 streamed_vjp: bool | None = None):
        self.denoiser = denoiser
        self.grid = TileGrid.whole(image_shape) if tile is None else TileGrid(image_shape, tile, min_shifts)
        multiple = getattr(getattr(denoiser, "config", None), "multiple", 1)
        folded = set(fold_axes)
        bad = [p for a, p in enumerate(self.grid.tile) if a not in folded and p % multiple]
        if bad:
            raise PadisError(f"tile {self.grid.tile} does not suit this network: sides must be multiples of "
                             f"{multiple} (the image itself for a whole-image prior)")
        self.fold_axes = tuple(fold_axes)
        self.limits = {"max_batch": max_batch, "memory_budget": memory_budget, "device": device,
                       "fold_axes": self.fold_axes}
        self.streamed_vjp = (max_batch is not None or memory_budget is not None) if streamed_vjp is None \
            else streamed_vjp
        self._network_bytes: int | None = None
        if memory_budget is not None:
            self.check_budget()

    def check_budget(self) -> None:
        """Fail now, with the minimum, if the memory budget cannot hold one tile in flight for the
        most demanding pass (the streamed VJP when it is used): the tile, its positions, output
        (and gradients) and the network's activations."""
        from tiling import plan_batch, tile_bytes

        config = getattr(self.denoiser, "config", None)
        channels = 1 if self.fold_axes or config is None else config.channels
        per_tile = tile_bytes(self.grid, channels, torch.float32, gradients=self.streamed_vjp) + self.network_bytes()
        plan_batch(1, per_tile, memory_budget=self.limits["memory_budget"])

    def network_bytes(self) -> int:
        """Bytes the denoiser holds per tile while it runs (measured once; 0 for a denoiser
        without a ``config``). Counted against memory budgets on top of the tiles themselves."""
        if self._network_bytes is None:
            config = getattr(self.denoiser, "config", None)
            if config is None:
                self._network_bytes = 0
            else:
                tile = [p for a, p in enumerate(self.grid.tile) if a not in self.fold_axes]
                self._network_bytes = network_bytes_per_tile(self.denoiser, tile, config.channels, self.grid.ndim,
                                                             device=self.limits["device"])
        return self._network_bytes

    def _engine_limits(self) -> dict:
        """Keyword arguments for the tiling engine: the limits, plus the network's bytes per tile
        when a memory budget is set."""
        if self.limits["memory_budget"] is None:
            return self.limits
        return {**self.limits, "fn_bytes_per_tile": self.network_bytes()}

    @property
    def state_shape(self) -> tuple[int, ...]:
        """Spatial shape of the sampler state (the canvas)."""
        return self.grid.canvas_shape

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        """Image ``(B, C, *N)`` -> state ``(B, C, *canvas)``, zero-padded."""
        return self.grid.pad_image(image)

    def embed_noisy(self, image: torch.Tensor, sigma: float, generator: torch.Generator | None = None, *,
                    noise: torch.Tensor | None = None) -> torch.Tensor:
        """Image ``(B, C, *N)`` -> state with noise of std ``σ`` on the padding: the state a sampler at
        level ``σ`` holds there, and what every training patch carries. ``noise``: unit noise of the
        state's shape drawn beforehand (default: fresh from ``generator``). Zeros there cost the 2D
        patch prior 0.3-1.3 dB per denoising step (``benchmarks/padding_noise.py``)."""
        state = self.embed(image)
        if noise is None:
            noise = torch.randn(state.shape, generator=generator, dtype=state.dtype)
        outside = 1 - self.embed(torch.ones_like(image))
        return state + sigma * outside * noise.to(state)

    def crop(self, state: torch.Tensor) -> torch.Tensor:
        """State -> image region (a view)."""
        return self.grid.crop(state)

    def tile_fn(self, sigma: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``fn(tiles, positions)`` for the tiling engine: the denoiser at noise level ``sigma``."""
        def fn(tiles: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
            s = torch.full((tiles.shape[0],), float(sigma), dtype=tiles.dtype, device=tiles.device)
            return self.denoiser(tiles, s, positions)
        return fn

    def _shift(self, shift: Sequence[int] | None, generator: torch.Generator | None) -> tuple[int, ...]:
        return self.grid.check_shift(shift) if shift is not None else self.grid.random_shift(generator)

    def image_denoiser(self, sigma: float, generator: torch.Generator | None = None
                       ) -> Callable[[torch.Tensor], torch.Tensor]:
        """An image-to-image denoiser at fixed ``σ``, e.g. for PnP-ADMM: per call, noise of std ``σ``
        on the padding (:meth:`embed_noisy`), then a random grid shift, both from ``generator``."""
        return lambda image: self.crop(self.denoise(self.embed_noisy(image, sigma, generator), sigma,
                                                    generator=generator))

    def denoise(self, x: torch.Tensor, sigma: float, *, shift: Sequence[int] | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``D(x; σ)`` on the canvas for one (given or random) shift, without gradients."""
        return self._map(x, sigma, self._shift(shift, generator))

    def _map(self, x: torch.Tensor, sigma: float, shift: tuple[int, ...]) -> torch.Tensor:
        with torch.no_grad():
            return map_tiles(self.tile_fn(sigma), x, self.grid, shift, **self._engine_limits())

    def score(self, x: torch.Tensor, sigma: float, *, shift: Sequence[int] | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """Tweedie score ``(D(x; σ) - x) / σ²`` on the canvas."""
        return (self.denoise(x, sigma, shift=shift, generator=generator) - x) / sigma ** 2

    def denoise_vjp(self, x: torch.Tensor, sigma: float,
                    cotangent: Callable[[torch.Tensor], torch.Tensor], *, shift: Sequence[int] | None = None,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(D, J_D(x)ᵀ v)`` with ``v = cotangent(D)`` (e.g. the gradient of a data misfit of
        ``crop(D)``), both for the same shift. Used for DPS steps through the network."""
        shift = self._shift(shift, generator)
        fn = self.tile_fn(sigma)
        if self.streamed_vjp:
            d = self._map(x, sigma, shift)
            return d, vjp_tiles(fn, x, self.grid, shift, cotangent(d), **self._engine_limits())
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad():
            d = map_tiles(fn, xg, self.grid, shift, **self._engine_limits())
            (grad,) = torch.autograd.grad(d, xg, cotangent(d.detach()))
        return d.detach(), grad
