"""Test-time adaptation: the streamed parameter gradient equals the full-graph one (and wrong
cotangents do not), adaptation lowers the loss, the base never changes, adapters round-trip,
the stop rules and the DDS hook."""

from __future__ import annotations

import pytest
import torch

from padis3d.adapt import (AdaptSettings, Adapter, TestTimeAdapter, adapted_prior, full_graph_loss_grad,
                           levels_adapted, load_adapter, parameter_vjp, save_adapter, streamed_loss_grad)
from padis3d.adapt.loss import SelfSupervisedLoss
from padis3d.errors import PadisError
from padis3d.operators.base import LinearOperator
from padis3d.priors.network import EDMDenoiser
from padis3d.priors.patch import PatchPrior
from padis3d.solvers.dds import dds
from padis3d.solvers.padis import padis_dps
from tests.prior.prior_helpers import blob_images, perturbed, tiny_config

N, TILE = 16, 8  # 3x3 tiles of 8 on a 32x32 canvas


class Matrix(LinearOperator):
    """A dense random ``(m, N*N)`` operator: every measurement mixes pixels of all tiles."""

    def __init__(self, m: int = 60, seed: int = 0, dtype=torch.float64, shape: tuple[int, ...] = (N, N)):
        super().__init__(shape, (m,))
        g = torch.Generator().manual_seed(seed)
        size = int(torch.tensor(shape).prod())
        self.matrix = torch.randn(m, size, generator=g, dtype=dtype) / size ** 0.5

    def _forward(self, x):
        return x.reshape(x.shape[0], -1) @ self.matrix.T.to(x.dtype)

    def _adjoint(self, y):
        return (y @ self.matrix.to(y.dtype)).reshape(y.shape[0], *self.in_shape)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return perturbed(EDMDenoiser(tiny_config()), seed=1).double().requires_grad_(False).eval()


def problem(noise: float = 0.0):
    op = Matrix()
    truth = blob_images(1, N, seed=5).double()
    y = op(truth)
    y = y + noise * torch.randn(y.shape, generator=torch.Generator().manual_seed(3), dtype=y.dtype)
    return op, y, truth


def randomised(adapter: Adapter, seed: int = 2, scale: float = 0.05) -> Adapter:
    """Non-zero adapter parameters (a fresh LoRA's B is zero, so A's gradient would be zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapter.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return adapter


def make_tta(net, base, op, y, **settings) -> TestTimeAdapter:
    """An adapter in float64 (the tiny network's dtype) for ``base``."""
    s = AdaptSettings(**settings)
    adapter = Adapter(net, s.mode, s.rank, s.alpha, s.layers, seed=s.seed).double()
    return TestTimeAdapter(base, op, y, s, adapter=adapter)


def state(prior_: PatchPrior, sigma: float = 0.3, seed: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    image = blob_images(1, N, seed=6).double()
    return prior_.embed(image) + sigma * torch.randn((1, 1, *prior_.state_shape), generator=g, dtype=torch.float64)


@pytest.mark.parametrize("mode, cg, tv", [("lora", 0, 0.0), ("lora", 3, 0.01), ("norm", 0, 0.0), ("all", 2, 0.0)])
def test_streamed_gradient_equals_the_full_graph(net, mode, cg, tv):
    op, y, _ = problem()
    base = PatchPrior(net, (N, N), TILE, max_batch=2)  # 5 tile batches
    adapter = randomised(Adapter(net, mode, rank=3).double())
    prior_ = adapted_prior(base, adapter)
    loss = SelfSupervisedLoss(op, y, cg_iters=cg, rho=0.5, tv=tv)
    x, params = state(prior_), list(adapter.parameters())
    streamed = streamed_loss_grad(prior_, x, 0.3, loss, params, (3, 5))
    full = full_graph_loss_grad(prior_, x, 0.3, loss, params, (3, 5))
    assert streamed.loss == pytest.approx(full.loss, rel=1e-12)
    # batch sizes differ (2 tiles against all): equal up to float64 rounding, not bit for bit on every CPU
    torch.testing.assert_close(streamed.denoised, full.denoised, rtol=1e-12, atol=1e-14)
    total = torch.cat([g.flatten() for g in full.grads])
    assert total.abs().max() > 1e-3  # a real test: the gradient is not trivially zero
    for gs, gf in zip(streamed.grads, full.grads):
        torch.testing.assert_close(gs, gf, rtol=1e-9, atol=1e-12)


def test_wrong_cotangents_give_a_wrong_gradient(net):
    op, y, _ = problem()
    base = PatchPrior(net, (N, N), TILE, max_batch=2)
    adapter = randomised(Adapter(net, "lora", rank=2).double())
    prior_ = adapted_prior(base, adapter)
    loss = SelfSupervisedLoss(op, y)
    x, params, shift = state(prior_), list(adapter.parameters()), (2, 6)
    full = torch.cat([g.flatten() for g in full_graph_loss_grad(prior_, x, 0.3, loss, params, shift).grads])
    d = prior_.denoise(x, 0.3, shift=shift)
    leaf = d.requires_grad_(True)
    with torch.enable_grad():
        (cot,) = torch.autograd.grad(loss(prior_.crop(leaf))[0], leaf)

    def grad(cotangent, at_shift=shift):
        return torch.cat([g.flatten() for g in parameter_vjp(prior_, x, 0.3, at_shift, cotangent, params)])

    assert torch.allclose(grad(cot), full, rtol=1e-9, atol=1e-12)
    mis_sliced = cot.roll(1, dims=-1)  # each tile gets its neighbour's slice, off by one pixel
    assert not torch.allclose(grad(mis_sliced), full, rtol=1e-3, atol=1e-6)
    assert not torch.allclose(grad(cot, at_shift=(3, 6)), full, rtol=1e-3, atol=1e-6)  # other partition
    assert not torch.allclose(grad(0.5 * cot), full, rtol=1e-3, atol=1e-6)  # the mean instead of the sum


def test_adaptation_lowers_the_loss_and_never_touches_the_base(net):
    op, y, _ = problem()
    base = PatchPrior(net, (N, N), TILE)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = state(base)
    for mode in ("lora", "norm", "all"):
        tta = make_tta(net, base, op, y, mode=mode, rank=2, lr=1e-2, steps=8, patience=8)
        fixed = SelfSupervisedLoss(op, y)
        start = fixed(tta.prior.crop(tta.prior.denoise(x, 0.3, shift=(1, 1))))[0]
        assert torch.equal(tta.prior.denoise(x, 0.3, shift=(1, 1)), base.denoise(x, 0.3, shift=(1, 1)))  # starts at base
        tta.adapt(x, 0.3)
        end = fixed(tta.prior.crop(tta.prior.denoise(x, 0.3, shift=(1, 1))))[0]
        assert len(tta.history) == 8 and all(s.taken for s in tta.history)
        assert end < 0.95 * start, (mode, float(start), float(end))
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert base.denoiser is net


def test_adapter_file_round_trip_and_base_check(net, tmp_path):
    adapter = randomised(Adapter(net, "lora", rank=2).double())
    path = save_adapter(adapter, net, tmp_path / "a.pt")
    assert path.stat().st_size < 200_000
    again = load_adapter(path, net).double()
    base = PatchPrior(net, (N, N), TILE)
    x = state(base)
    assert torch.equal(adapted_prior(base, adapter).denoise(x, 0.2, shift=(0, 3)),
                       adapted_prior(base, again).denoise(x, 0.2, shift=(0, 3)))
    other = perturbed(EDMDenoiser(tiny_config()), seed=9).double()
    with pytest.raises(PadisError, match="other base weights"):
        load_adapter(path, other)
    (tmp_path / "junk.pt").write_bytes(b"not a file")
    with pytest.raises(PadisError):
        load_adapter(tmp_path / "junk.pt", net)


def test_discrepancy_stop_and_plateau_stop(net):
    op, y, _ = problem(noise=0.05)
    base = PatchPrior(net, (N, N), TILE)
    x = state(base)
    huge = make_tta(net, base, op, y, steps=5, noise_sigma=1e3)
    snapshot = [p.detach().clone() for p in huge.adapter.parameters()]
    huge.adapt(x, 0.3)
    assert huge.stopped == "discrepancy" and len(huge.history) == 1 and not huge.history[0].taken
    assert all(torch.equal(p, s) for p, s in zip(huge.adapter.parameters(), snapshot))
    huge(5, 10, 0.3, x)  # stopped for good: the hook does nothing more
    assert len(huge.history) == 1
    flat = make_tta(net, base, op, y, steps=20, lr=1e-12, patience=2, min_decrease=0.5)
    flat.adapt(x, 0.3)
    assert len(flat.history) == 3  # the first sets the best, two without a 50 % decrease stop


def test_dds_hook_adapts_at_the_scheduled_levels(net):
    op, y, _ = problem()
    base = PatchPrior(net, (N, N), TILE)
    tta = make_tta(net, base, op, y, steps=2, first=1, every=3, patience=5)
    sigmas = torch.tensor([0.5, 0.3, 0.2, 0.1, 0.05])
    x = base.embed(torch.zeros(1, 1, N, N, dtype=torch.float64)) + 0.5
    out = dds(tta.prior, x, sigmas, operator=op, y=y, generator=torch.Generator().manual_seed(0), adapt=tta)
    assert out.shape == (1, 1, N, N)
    assert sorted({s.level for s in tta.history}) == [0, 3] and len(tta.history) == 4
    with pytest.raises(PadisError, match="adapt.prior"):
        dds(base, x, sigmas, operator=op, y=y, adapt=tta)
    late = make_tta(net, base, op, y, steps=1, first=1, every=3, max_sigma=0.25)
    dds(late.prior, x, sigmas, operator=op, y=y, adapt=late)
    assert [s.level for s in late.history] == [3] == levels_adapted(late.settings, sigmas)


def test_algorithm_1_hook_adapts_at_the_scheduled_levels_and_lowers_the_loss(net):
    op, y, _ = problem()
    base = PatchPrior(net, (N, N), TILE)
    sigmas = torch.tensor([0.5, 0.3, 0.2, 0.1, 0.05])
    x = base.embed(torch.zeros(1, 1, N, N, dtype=torch.float64)) + 0.5
    tta = make_tta(net, base, op, y, steps=4, first=1, every=3, lr=3e-3, patience=5)
    out = padis_dps(tta.prior, x, sigmas, operator=op, y=y, inner=2, generator=torch.Generator().manual_seed(0),
                    adapt=tta)
    assert out.shape == (1, 1, N, N) and torch.isfinite(out).all()
    assert sorted({s.level for s in tta.history}) == [0, 3] == levels_adapted(tta.settings, sigmas)
    first = [s.loss for s in tta.history if s.level == 0]
    assert first[-1] < first[0]  # Adam on L at a fixed state: the loss falls
    with pytest.raises(PadisError, match="adapt.prior"):
        padis_dps(base, x, sigmas, operator=op, y=y, adapt=tta)


def peak_saved_bytes(run) -> int:
    """Peak bytes of the tensors autograd keeps alive for backward while ``run()`` executes."""
    import weakref

    alive: list[tuple[weakref.ref, int]] = []
    peak = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal peak
        saved = t.detach()
        alive[:] = [(r, n) for r, n in alive if r() is not None]
        alive.append((weakref.ref(saved), saved.numel() * saved.element_size()))
        peak = max(peak, sum(n for _, n in alive))
        return saved

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return peak


def test_streamed_gradient_holds_one_tile_batch_of_graph(net):
    op, y, _ = problem()
    base = PatchPrior(net, (N, N), TILE, max_batch=1)  # 9 batches of one tile
    adapter = randomised(Adapter(net, "lora", rank=2).double())
    prior_ = adapted_prior(base, adapter)
    loss, x, params = SelfSupervisedLoss(op, y), state(prior_), list(adapter.parameters())
    streamed = peak_saved_bytes(lambda: streamed_loss_grad(prior_, x, 0.3, loss, params, (1, 2)))
    full = peak_saved_bytes(lambda: full_graph_loss_grad(prior_, x, 0.3, loss, params, (1, 2)))
    assert streamed < full / 4, (streamed, full)


def test_streamed_gradient_of_a_slab_prior_folded_into_channels():
    torch.manual_seed(0)
    net = perturbed(EDMDenoiser(tiny_config(channels=3, position_axes=(1, 2))), seed=3).double().eval()
    net.requires_grad_(False)
    shape = (6, 16, 16)
    base = PatchPrior(net, shape, (3, 8, 8), fold_axes=(0,), min_shifts=(3, 1, 1), max_batch=4)
    adapter = randomised(Adapter(net, "lora", rank=2).double())
    prior_ = adapted_prior(base, adapter)
    op = Matrix(40, shape=shape)
    g = torch.Generator().manual_seed(1)
    truth = torch.rand((1, 1, *shape), generator=g, dtype=torch.float64)
    loss = SelfSupervisedLoss(op, op(truth))
    x = prior_.embed(truth) + 0.2 * torch.randn((1, 1, *prior_.state_shape), generator=g, dtype=torch.float64)
    params, shift = list(adapter.parameters()), prior_.grid.random_shift(g)
    streamed = streamed_loss_grad(prior_, x, 0.2, loss, params, shift)
    full = full_graph_loss_grad(prior_, x, 0.2, loss, params, shift)
    assert torch.cat([q.flatten() for q in full.grads]).abs().max() > 1e-4
    for gs, gf in zip(streamed.grads, full.grads):
        torch.testing.assert_close(gs, gf, rtol=1e-9, atol=1e-12)
