"""The held-out choice (padis3d.solvers.holdout_choice): candidates see only the kept measurements, the
one that predicts the held-out part best wins, and it is returned run on all measurements."""

from __future__ import annotations

import pytest
import torch

from padis3d.baselines import admm_tv
from padis3d.baselines.cg import conjugate_gradient
from padis3d.errors import PadisError
from padis3d.operators import Blur, ParallelBeam2D, uniform_kernel
from padis3d.solvers.holdout_choice import choose_by_holdout


def disc_phantom(n: int) -> torch.Tensor:
    """Piecewise-constant ``(1, 1, n, n)``: two discs of different values (what TV recovers from few views)."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    return (0.6 * ((xx ** 2 + yy ** 2) < 0.6).float() + 0.3 * (((xx - 0.2) ** 2 + (yy + 0.1) ** 2) < 0.05).float()
            )[None, None]


def least_squares(op, y):
    """Fits the measurements it is given as well as it can: on few views, a poor predictor of other views."""
    return conjugate_gradient(lambda v: op.adjoint(op(v)), op.adjoint(y), iters=200, tol=1e-10)


def test_the_candidate_that_predicts_held_out_views_wins_though_another_fits_the_kept_ones_better():
    op = ParallelBeam2D(32, views=12)
    y = op(disc_phantom(32))
    tv = ("tv", lambda A, yy: admm_tv(A, yy, 0.05, max_iter=500))
    choice = choose_by_holdout([("least squares", least_squares), tv], op, y, fraction=0.25, seed=0)
    assert choice.chosen == "tv"
    assert choice.losses["tv"] < 0.5 * choice.losses["least squares"]
    assert choice.split["unit"] == "views" and choice.split["held_out"] == 3
    # on the kept views least squares fits better: a misfit on the kept part would pick it
    keep = torch.ones(12, dtype=torch.bool)
    keep[torch.randperm(12, generator=torch.Generator().manual_seed(0))[:3]] = False
    kept_views = keep[:, None].expand(op.out_shape)
    fits = {name: float((((op(m(op, y)) - y)[0, 0][kept_views]) ** 2).sum())
            for name, m in [("least squares", least_squares), tv]}
    assert fits["least squares"] < fits["tv"]
    # the image returned is the winner run on all measurements
    assert torch.allclose(choice.image, admm_tv(op, y, 0.05, max_iter=500))


def test_candidates_see_only_the_kept_measurements_and_the_final_run_sees_all():
    op = Blur((16, 16), uniform_kernel(3))
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    y = op(x)
    seen = []

    def truth(A, yy):
        seen.append((A, yy.clone()))
        return x

    def blurred(A, yy):
        return yy.clone()

    choice = choose_by_holdout([("blurred", blurred), ("truth", truth)], op, y, fraction=0.2, seed=3)
    assert choice.chosen == "truth" and choice.losses["truth"] < 1e-10
    (kept_op, y_kept), (final_op, y_final) = seen
    held = y_kept == 0
    assert 0.15 < held.float().mean() < 0.25  # 20% of the pixels held out, zero in what the candidate got
    assert torch.equal(y_kept[~held], y[~held])
    assert final_op is op and torch.equal(y_final, y)
    assert choice.split["unit"] == "measurements"


def test_ties_go_to_the_earlier_candidate_and_non_finite_candidates_lose():
    op = Blur((8, 8), uniform_kernel(3))
    y = op(torch.rand(1, 1, 8, 8))
    same = lambda A, yy: torch.zeros(1, 1, 8, 8)  # noqa: E731
    assert choose_by_holdout([("a", same), ("b", same)], op, y).chosen == "a"
    nan = lambda A, yy: torch.full((1, 1, 8, 8), float("nan"))  # noqa: E731
    choice = choose_by_holdout([("nan", nan), ("zero", same)], op, y)
    assert choice.chosen == "zero" and choice.losses["nan"] == float("inf")
    with pytest.raises(PadisError, match="non-finite"):
        choose_by_holdout([("nan", nan)], op, y)
    with pytest.raises(PadisError, match="distinct names"):
        choose_by_holdout([("a", same), ("a", same)], op, y)
