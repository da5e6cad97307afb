"""Test-time adaptation of volume priors in memory: a 2D prior applied slice by slice (its
(z, y, x) -> (y, x) position wrapper) adapts through that wrapper, the streamed gradient equals
the full graph's, and DDS on a volume adapts at its scheduled levels."""

from __future__ import annotations

import torch

from padis3d.adapt import Adapter, TestTimeAdapter, AdaptSettings, adapted_prior, full_graph_loss_grad, \
    streamed_loss_grad
from padis3d.adapt.loss import SelfSupervisedLoss
from padis3d.priors.checkpoint import load_prior
from padis3d.priors.factory import volume_prior_from
from padis3d.solvers.dds import dds
from tests.adapt.test_adapt import Matrix, randomised
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture

SHAPE = (3, 32, 32)


def volume_problem(prior_):
    g = torch.Generator().manual_seed(1)
    truth = torch.rand((1, 1, *SHAPE), generator=g)
    op = Matrix(50, shape=SHAPE, dtype=torch.float32)
    x = prior_.embed(truth) + 0.2 * torch.randn((1, 1, *prior_.state_shape), generator=g)
    return op, op(truth), x, g


def test_2d_prior_on_a_volume_adapts_through_its_position_wrapper(files):  # noqa: F811
    loaded = load_prior(files / "tiny.pt")
    base = volume_prior_from(loaded, SHAPE, tile=16, max_batch=3)
    adapter = randomised(Adapter(loaded.model, "lora", rank=2))
    prior_ = adapted_prior(base, adapter)
    op, y, x, g = volume_problem(prior_)
    with torch.no_grad():  # zero deltas: the adapted prior is the base prior, positions mapped alike
        zero = adapted_prior(base, Adapter(loaded.model, "lora", rank=2))
        torch.testing.assert_close(zero.denoise(x, 0.2, shift=(0, 3, 5)), base.denoise(x, 0.2, shift=(0, 3, 5)))
    params, shift = list(adapter.parameters()), prior_.grid.random_shift(g)
    loss = SelfSupervisedLoss(op, y)
    streamed = streamed_loss_grad(prior_, x, 0.2, loss, params, shift)
    full = full_graph_loss_grad(prior_, x, 0.2, loss, params, shift)
    assert torch.cat([q.flatten() for q in full.grads]).abs().max() > 1e-6
    for gs, gf in zip(streamed.grads, full.grads):
        torch.testing.assert_close(gs, gf, rtol=1e-4, atol=1e-6)


def test_dds_on_a_volume_adapts_at_the_scheduled_levels(files):  # noqa: F811
    loaded = load_prior(files / "tiny.pt")
    base = volume_prior_from(loaded, SHAPE, tile=16)
    op, y, x, _ = volume_problem(base)
    tta = TestTimeAdapter(base, op, y, AdaptSettings(steps=2, first=0, every=2, lr=1e-2, patience=5,
                                                               validate=False))
    out = dds(tta.prior, x, torch.tensor([0.4, 0.2, 0.1]), operator=op, y=y, adapt=tta)
    assert out.shape == (1, 1, *SHAPE) and torch.isfinite(out).all()
    assert sorted({s.level for s in tta.history}) == [0, 2]
    assert any(float(p.detach().abs().max()) > 0 for p in tta.adapter.lora_b.values())
