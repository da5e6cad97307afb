"""Self-validated adaptation (issue 28 §1): the masked operator is exact and its adjoint matches, the
split is a seeded partition (whole views for CT), over-fitting adaptation is stopped and rolled back,
an adaptation that does not help returns the un-adapted result bit for bit, and the report records
the curve and the decision."""

from __future__ import annotations

import json

import pytest
import torch

from padis3d.adapt import AdaptSettings, MaskedOperator, TestTimeAdapter, split_measurements
from padis3d.adapt.validation import HeldOutLoss
from padis3d.metrics import psnr
from padis3d.operators import Blur
from padis3d.operators.ct import ParallelBeam2D
from padis3d.operators.resample import BlockAverage
from padis3d.priors.patch import PatchPrior
from padis3d.solvers.reconstruct import SamplerSettings, reconstruct
from tests.adapt.test_adapt import Matrix, make_tta, net, problem  # noqa: F401 - the tiny network fixture
from tests.prior.prior_helpers import blob_images
from tests.solvers.test_reconstruct_cli import files, run  # noqa: F401 - the tiny prior file fixture

N = 16


def operators() -> list:
    return [Matrix(), Blur((32, 32), torch.ones(5, 5) / 25), BlockAverage((32, 32), 4), ParallelBeam2D(32, views=10)]


@pytest.mark.parametrize("op", operators(), ids=lambda op: type(op).__name__)
def test_masked_operator_is_the_masked_measurement_and_its_adjoint_matches(op):
    split = split_measurements(op, 0.3, seed=1)
    keep = split.kept_operator(op)
    g = torch.Generator().manual_seed(0)
    dtype = torch.float64 if isinstance(op, Matrix) else torch.float32
    x = torch.rand((2, 1, *op.in_shape), generator=g, dtype=dtype)
    y = torch.randn((2, 1, *op.out_shape), generator=g, dtype=dtype)
    ax = keep(x)
    assert torch.equal(ax, op(x) * split.keep)  # kept entries untouched, held-out ones zero
    assert bool((ax[..., split.held] == 0).all()) and not bool((op(x)[..., split.held] == 0).all())
    lhs, rhs = float((ax * y).sum()), float((x * keep.adjoint(y)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-10 if dtype == torch.float64 else 2e-4)
    # the unmasked adjoint is not the masked operator's (a wrong wrapper would pass it through)
    assert float((x * op.adjoint(y)).sum()) != pytest.approx(lhs, rel=1e-3)
    held = split.held_operator(op)
    torch.testing.assert_close(keep(x) + held(x), op(x))
    torch.testing.assert_close(keep.adjoint(y) + held.adjoint(y), op.adjoint(y))


def test_the_split_is_a_seeded_partition_and_ct_holds_out_whole_views():
    ct = ParallelBeam2D(32, views=20)
    s = split_measurements(ct, 0.15, seed=3)
    assert s.unit == "views" and s.held_units == 3 and s.keep.shape == ct.out_shape
    assert torch.equal(s.held.any(1), s.held.all(1))  # a view is held out whole or not at all
    assert int(s.held.all(1).sum()) == 3
    assert not bool((s.keep & s.held).any()) and bool((s.keep | s.held).all())
    assert torch.equal(split_measurements(ct, 0.15, seed=3).keep, s.keep)
    assert not torch.equal(split_measurements(ct, 0.15, seed=4).keep, s.keep)
    blur = Blur((32, 32))
    p = split_measurements(blur, 0.15, seed=0)
    assert p.unit == "measurements" and int(p.held.sum()) == round(0.15 * 32 * 32) == p.held_units
    assert not torch.equal(p.held.any(1), p.held.all(1))  # single pixels, not rows
    assert int(split_measurements(ct, 0.001, seed=0).held.all(1).sum()) == 1  # at least one view
    assert int(split_measurements(ct, 0.999, seed=0).keep.all(1).sum()) == 1  # at least one kept


def test_the_adaptation_loss_sees_only_the_kept_measurements(net):  # noqa: F811
    op, y, _ = problem()
    base = PatchPrior(net, (N, N), 8)
    tta = make_tta(net, base, op, y, validate=True, holdout=0.25)
    held = tta.validation.split.held
    assert torch.equal(tta.loss.y[..., held], torch.zeros_like(tta.loss.y[..., held]))
    changed = y.clone()
    changed[..., held] += 10.0  # held-out measurements changed: the adaptation loss does not move
    other = make_tta(net, base, op, changed, validate=True, holdout=0.25)
    x = base.embed(blob_images(1, N, seed=6).double())
    assert other.loss(base.crop(x))[0] == tta.loss(base.crop(x))[0]
    assert HeldOutLoss(op, changed, other.validation.split, 5, 1.0)(base, x, 0.1, (0, 0)) > \
        100 * tta.validation.loss(base, x, 0.1, (0, 0))


@pytest.fixture(scope="module")
def deblur_problem():
    """The shipped ellipse prior on a 32² disc image, 5x5 blur with noise 0.05, 4 DDS levels."""
    from padis3d.image.inputs import image_prior

    torch.set_num_threads(1)
    _, prior, _ = image_prior("ellipse128_patch", (32, 32), "auto")
    truth = blob_images(1, 32, seed=5)
    op = Blur((32, 32), torch.ones(5, 5) / 25)
    y = op(truth) + 0.05 * torch.randn((1, 1, 32, 32), generator=torch.Generator().manual_seed(1))
    settings = SamplerSettings(sampler="dds", steps=4, init="baseline", sigma_max=0.5, sigma_min=0.005, eta=1.0,
                               rho=0.1, cg_iters=5)
    return prior, op, y, truth, settings, op.adjoint(y).clamp(0, 1)


def sample(problem_, adapt: AdaptSettings | None = None) -> tuple[torch.Tensor, TestTimeAdapter | None]:
    prior, op, y, _, settings, baseline = problem_
    tta = None if adapt is None else TestTimeAdapter(prior, op, y, adapt)
    return reconstruct(prior, op, y, settings, baseline=baseline, adapt=tta), tta


def test_validation_stops_an_over_fitting_adaptation_and_rolls_it_back(deblur_problem):
    truth = deblur_problem[3]
    quality = lambda image: psnr(image[0, 0].numpy(), truth[0, 0].numpy())  # noqa: E731
    plain, _ = sample(deblur_problem)
    greedy = dict(lr=0.03, steps=8, every=1, max_sigma=None, patience=100)  # noisy data, high lr, every level
    over, unvalidated = sample(deblur_problem, AdaptSettings(**greedy, validate=False))
    assert len(unvalidated.history) == 4 * 8
    assert quality(over) < quality(plain) - 2.0  # it over-fits: much worse than no adaptation
    kept, validated = sample(deblur_problem, AdaptSettings(**greedy, validate=True, val_patience=2))
    v = validated.validation
    assert validated.stopped == "validation" and len(v.rounds) == 2 < 4  # stopped early
    assert [r.kept for r in v.rounds] == ["unadapted", "unadapted"]  # both rounds rolled back
    assert v.rounds[0].after > v.rounds[0].unadapted  # the held-out loss saw the over-fit
    assert quality(kept) >= quality(plain) - 0.05
    assert torch.equal(kept, plain) and not v.adapted and not v.resampled


class Scripted:
    """A held-out loss that returns the given values in call order (unadapted, [before,] after per round)."""

    def __init__(self, values: list[float]):
        self.values = list(values)

    def __call__(self, prior, x, sigma, shift) -> float:
        return self.values.pop(0)


def lora_b(tta: TestTimeAdapter) -> list[torch.Tensor]:
    return [p.detach().clone() for p in tta.adapter.lora_b.values()]


def test_rounds_keep_the_lowest_held_out_loss_and_roll_back_exactly(net):  # noqa: F811
    op, y, _ = problem()
    base = PatchPrior(net, (N, N), 8)
    tta = make_tta(net, base, op, y, validate=True, steps=3, lr=1e-2, every=1, max_sigma=None, patience=10)
    tta.validation.loss = Scripted([1.0, 0.5,  # round 0: after beats un-adapted -> kept
                                    1.0, 0.6, 0.7,  # round 1: worse than before -> rolled back to round 0
                                    0.8, 0.6, 0.9])  # round 2: before but 0.75 < 0.8 (1 % margin) -> before
    x = base.embed(blob_images(1, N, seed=6).double())
    tta(0, 5, 0.3, x)
    after_round_0 = lora_b(tta)
    assert any(bool(b.abs().max() > 0) for b in after_round_0)
    tta(1, 5, 0.2, x)
    assert all(torch.equal(a, b) for a, b in zip(lora_b(tta), after_round_0))
    assert tta.stopped is None
    tta(2, 5, 0.1, x)
    assert [r.kept for r in tta.validation.rounds] == ["after", "before", "before"]
    assert tta.stopped == "validation" and tta.validation.current == 0 and tta.validation.adapted
    tta(3, 5, 0.05, x)  # stopped: nothing more
    assert len(tta.validation.rounds) == 3
    report = tta.validation.to_report()
    assert report["decision"] == "adapted" and report["chosen_round"] == 0 and report["chosen_level"] == 0
    assert (report["heldout_unadapted"], report["heldout_adapted"]) == (0.8, 0.6)
    assert [r["after"] for r in report["curve"]] == [0.5, 0.7, 0.9]


def tiny_run(net, op, y, adapt: AdaptSettings | None, script: list[float] | None = None):  # noqa: F811
    base = PatchPrior(net, (N, N), 8)
    settings = SamplerSettings(sampler="dds", steps=5, sigma_max=0.5, sigma_min=0.01, eta=1.0)
    tta = None
    if adapt is not None:
        adapter = make_tta(net, base, op, y, **{k: getattr(adapt, k) for k in adapt.__dataclass_fields__})
        if script is not None:
            adapter.validation.loss = Scripted(script)
        tta = adapter
    return reconstruct(base, op, y, settings, adapt=tta), tta


def test_when_adaptation_cannot_help_the_unadapted_result_is_returned_bit_identically(net):  # noqa: F811
    op, y, _ = problem(noise=0.05)
    plain, _ = tiny_run(net, op, y, None)
    common = dict(validate=True, steps=2, every=1, max_sigma=None, lr=1e-2, val_patience=2)
    # never better on the held-out part: no adapted level is ever used, no second sampling
    never, tta = tiny_run(net, op, y, AdaptSettings(**common), [1.0, 1.0] * 5)
    assert torch.equal(never, plain) and not tta.validation.touched and not tta.validation.resampled
    assert [r.kept for r in tta.validation.rounds] == ["unadapted", "unadapted"]
    # better at first, then the un-adapted prior wins: adapted levels were used, so it samples again
    late, tta = tiny_run(net, op, y, AdaptSettings(**common), [1.0, 0.5, 0.4, 0.5, 0.45, 0.3, 0.3])
    v = tta.validation
    assert [r.kept for r in v.rounds] == ["after", "unadapted", "unadapted"]
    assert v.touched and v.resampled and not v.adapted and v.to_report()["decision"] == "un-adapted"
    assert torch.equal(late, plain)
    assert all(bool((b == 0).all()) for b in lora_b(tta))  # the adapter is back at its start
    # an adapted decision keeps the adapted result
    kept, tta = tiny_run(net, op, y, AdaptSettings(**common), [1.0, 0.5] + [1.0, 0.6, 0.5] * 4)
    assert tta.validation.adapted and not torch.equal(kept, plain)


def test_the_report_records_the_curve_and_the_decision(files, tmp_path):  # noqa: F811
    common = ["--task", "deblur", "--sampler", "dds", "--steps", "4", "--adapt", "--adapt-first", "0",
              "--adapt-every", "2", "--adapt-max-sigma", "100", "--adapt-steps", "2", "--threads", "1"]
    assert run(files, tmp_path / "v", *common, "--adapt-validate", "--adapt-holdout", "0.2") == 0
    report = json.loads((tmp_path / "v" / "report.json").read_text())
    v = report["adaptation"]["validation"]
    assert report["adaptation"]["settings"]["validate"] is True and v["fraction"] == 0.2
    assert v["unit"] == "measurements" and v["held_out"] == round(0.2 * 32 * 32)
    assert [r["level"] for r in v["curve"]] == [0, 2]
    assert all({"unadapted", "before", "after", "kept"} <= set(r) for r in v["curve"])
    assert v["decision"] in ("adapted", "un-adapted")
    assert (v["chosen_round"] is not None) == (v["decision"] == "adapted")
    last = v["curve"][-1]
    assert v["heldout_unadapted"] == last["unadapted"]
    assert run(files, tmp_path / "n", *common, "--no-adapt-validate") == 0
    a = json.loads((tmp_path / "n" / "report.json").read_text())["adaptation"]
    assert a["validation"] is None and a["settings"]["validate"] is False
