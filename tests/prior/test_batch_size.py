"""``measure_tile_batch`` (``--max-batch auto``): the fastest batch of a known cost wins, ties go to
the smaller batch, the memory budget is never exceeded, and the timed calls are the prior's own
(same tile and position shapes as a denoiser pass). A fake clock, so no real timing is asserted."""

from __future__ import annotations

import pytest
import torch

from padis3d.errors import PadisError
from padis3d.priors.batch_size import choose, default_candidates, measure_tile_batch
from padis3d.priors.network import EDMDenoiser
from padis3d.priors.patch import PatchPrior
from tests.prior.prior_helpers import tiny_config
from tiling import tile_bytes


class FakeNet:
    """A denoiser whose every call advances a fake clock by ``cost(n)`` for ``n`` tiles."""

    def __init__(self, cost):
        self.cost, self.now, self.calls = cost, 0.0, []

    def clock(self) -> float:
        return self.now

    def __call__(self, x, sigma, positions):
        self.calls.append((tuple(x.shape), tuple(sigma.shape), None if positions is None else tuple(positions.shape)))
        self.now += self.cost(x.shape[0])
        return x


def test_a_fixed_cost_per_call_makes_the_largest_batch_win():
    net = FakeNet(lambda n: 1.0)  # one "second" per call whatever its size
    prior = PatchPrior(net, (128, 128), 48)  # 9 tiles of 48²
    choice = measure_tile_batch(prior, clock=net.clock)
    assert list(choice.measured) == [1, 2, 4, 8, 9] and choice.tiles == 9
    assert choice.measured == {b: pytest.approx(1.0 / b) for b in (1, 2, 4, 8, 9)}
    assert choice.chosen == 9
    assert len(net.calls) == 5 * (1 + 2)  # one warm-up and two timed calls per batch


def test_a_quadratic_cost_per_tile_makes_single_tiles_win():
    net = FakeNet(lambda n: 0.01 * n * n)  # per tile 0.01 n: a bigger batch costs more per tile
    choice = measure_tile_batch(PatchPrior(net, (128, 128), 48), clock=net.clock)
    assert choice.chosen == 1
    assert choice.measured[9] == pytest.approx(0.09) and choice.measured[1] == pytest.approx(0.01)


def test_overhead_plus_quadratic_cost_picks_the_middle_and_ties_go_to_the_smaller_batch():
    net = FakeNet(lambda n: 1.0 + 0.25 * n * n)  # per tile 1/n + n/4: least at n = 2
    choice = measure_tile_batch(PatchPrior(net, (128, 128), 48), clock=net.clock)
    assert choice.chosen == 2
    # within the 3 % tolerance of the fastest, the smallest batch wins
    assert choose({1: 1.0, 2: 0.99, 4: 0.5, 8: 0.49, 9: 0.495}) == 4
    assert choose({1: 1.0, 2: 0.5, 4: 0.40, 8: 0.30}) == 8
    assert choose({1: 1.0, 2: 1.0, 4: 1.0}) == 1


def test_never_exceeds_the_memory_budget():
    net = FakeNet(lambda n: 1.0)  # the largest batch would win
    prior = PatchPrior(net, (128, 128), 48)
    per_tile = tile_bytes(prior.grid, 1, torch.float32)  # no config: the network's own bytes count 0
    choice = measure_tile_batch(prior, memory_budget=int(3.5 * per_tile), clock=net.clock)
    assert choice.memory_cap == 3 and choice.chosen == 3
    assert list(choice.measured) == [1, 2, 3]
    assert max(shape[0] for shape, _, _ in net.calls) <= 3
    with pytest.raises(PadisError, match="holds no tile"):
        measure_tile_batch(prior, memory_budget=per_tile // 2, clock=net.clock)


def test_the_timed_calls_are_the_priors_own_calls():
    # a slab prior (tiles folded into channels): the calls are shaped as in a denoiser pass
    net = FakeNet(lambda n: 1.0)
    prior = PatchPrior(net, (7, 12, 10), (3, 8, 8), fold_axes=(0,), min_shifts=(3, 1, 1))
    prior.denoise(torch.zeros(1, 1, *prior.state_shape), 0.5, shift=(0, 0, 0))
    full = net.calls[-1]
    net.calls.clear()
    choice = measure_tile_batch(prior, clock=net.clock, tiles=prior.grid.num_tiles)
    assert net.calls[-1] == full and choice.chosen == prior.grid.num_tiles
    # a bare denoiser with a tile shape and a tile count; explicit candidates above the tiles are dropped
    choice = measure_tile_batch(net, (8, 8), "cpu", candidates=[1, 3, 64], tiles=5, clock=net.clock)
    assert list(choice.measured) == [1, 3] and choice.chosen == 3
    assert net.calls[-1] == ((3, 1, 8, 8), (3,), (3, 2, 8, 8))
    assert default_candidates(1) == [1] and default_candidates(16) == [1, 2, 4, 8, 16]


def test_a_real_network_gives_a_choice_among_the_candidates():
    net = EDMDenoiser(tiny_config()).eval()
    prior = PatchPrior(net, (32, 32), 16)
    choice = measure_tile_batch(prior, memory_budget=2**30, repeats=1)
    assert choice.chosen in choice.measured and set(choice.measured) <= {1, 2, 4, 8, 9}
    assert all(s > 0 for s in choice.measured.values())
    report = choice.to_report()
    assert report["chosen"] == choice.chosen and set(report["measured"]) == {str(b) for b in choice.measured}
