"""TV weights λ (objective ``½||Ax - y||² + λ TV(x)``) per task and image size, chosen by
grid search of the mean PSNR on *training* slices -- never on test slices -- with
``benchmarks/tune_tv.py`` (logs in ``benchmarks/results/tune_tv_*.json``):

* 128²: training slices 80, 90, 99; grid {0.01, 0.03, 0.1, 0.3, 1} (CT, plus 3 and 10 for
  ct8) and {0.0001, 0.0003, 0.0006, 0.001, 0.003, 0.01, 0.03, 0.1} (deblur, sr4):
  ``python benchmarks/tune_tv.py --size 128 [--tasks ... --grid ...]`` (la90 was tuned with
  step ratio 1000, then run with 1e4; its PSNR was flat within 0.15 dB over 0.01..0.3)
* 256², deblur / sr4: slices 90, 99, the same grid:
  ``python benchmarks/tune_tv.py --size 256 --tasks deblur sr4 --slices 90 99 [--grid ...]``
* 64²: training slices 80, 90, 99, grids {0.003, ..., 1} (CT 20, CT 8) and {0.0001, ..., 0.01} (deblur, sr4):
  ``python benchmarks/tune_tv.py --size 64 --tasks ct20 ct8 --grid 0.003 0.01 0.03 0.1 0.3 1`` (and
  ``--tasks deblur sr4 --grid 0.0001 0.0003 0.0006 0.001 0.003 0.01``; logs ``tune_tv_64_*.json``); CT 8 and
  SR x4 were flat within 0.2 dB around the choice; ct60 and la90 were not tuned at 64²
* 256², CT: the 256² objective is ~4x the 128² one for the same anatomy (twice the bins,
  twice longer line integrals) against ~2x for TV, so λ₂₅₆ = 4 λ₁₂₈; checked for ct20 on
  training slice 99 (grid {0.2, 0.4, 0.8} -> 0.4) and used for all CT tasks (a full 256²
  grid for la90 costs ~30 CPU-minutes).
"""

from __future__ import annotations

from padis3d.errors import PadisError

_CT128 = {"ct20": 0.1, "ct8": 1.0, "ct60": 0.1, "la90": 0.3}
TV_WEIGHTS: dict[int, dict[str, float]] = {
    64: {"ct20": 0.03, "ct8": 0.03, "deblur": 0.0006, "sr4": 0.001},
    128: {**_CT128, "deblur": 0.0006, "sr4": 0.001},
    256: {**{k: 4 * v for k, v in _CT128.items()}, "deblur": 0.0006, "sr4": 0.001},
}


def tv_weight(task: str, size: int) -> float:
    """Tuned λ for ``task`` at ``size x size``."""
    try:
        return TV_WEIGHTS[int(size)][task]
    except KeyError:
        raise PadisError(f"no tuned TV weight for task {task!r} at size {size}; run benchmarks/tune_tv.py") from None
