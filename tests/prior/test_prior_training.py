"""Training loop: learns, denoises better than identity, resumes bit-identically, guards NaNs."""

from __future__ import annotations

import pytest
import torch

from padis3d.priors.checkpoint import load_prior, read_checkpoint
from padis3d.training.data import PatchSampler
from padis3d.errors import PadisError
from padis3d.training.loop import TrainSettings, new_state, resume_state, train
from tests.prior.prior_helpers import blob_images, tiny_config

DATA = {"source": "synthetic discs"}


def settings(steps: int, **kw) -> TrainSettings:
    base = dict(steps=steps, lr=2e-3, lr_warmup_steps=10, ema_halflife_patches=500, log_every=20,
                checkpoint_every=1e9, progress=False, seed=3)
    base.update(kw)
    return TrainSettings(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    sampler = PatchSampler(blob_images(16, 32, seed=0), [8, 16], [0.3, 0.7], batch=16)
    s = settings(300)
    state = train(new_state(tiny_config(), s), sampler, s, out, DATA)
    return state, out


def test_loss_decreases(trained):
    state, _ = trained
    losses = [h[1] for h in state.history]
    assert len(losses) == 15
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:2]) / 2


def test_trained_model_denoises_held_out_patches_better_than_identity(trained):
    _, out = trained
    prior = load_prior(out / "prior.pt")  # EMA weights, eval mode
    assert prior.image_shape == (32, 32) and prior.patch_sizes == [8, 16] and prior.device.type == "cpu"
    held_out = PatchSampler(blob_images(8, 32, seed=99), [16], batch=64)
    b = held_out.sample(torch.Generator().manual_seed(5))
    noisy = b.patches + 0.1 * torch.randn(b.patches.shape, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        den = prior(noisy, 0.1, b.positions)
    mse_id = ((noisy - b.patches) ** 2).mean()
    mse_den = ((den - b.patches) ** 2).mean()
    assert mse_den < 0.5 * mse_id
    with torch.no_grad():  # a trained model's output depends on positions
        shifted = prior(noisy, 0.1, b.positions + 0.5)
    assert (shifted - den).abs().max() > 1e-3


def test_checkpoint_records_everything_to_sample(trained):
    _, out = trained
    meta = read_checkpoint(out / "prior.pt")["meta"]
    assert meta["steps"] == 300 and meta["patch_sizes"] == [8, 16] and meta["image_shape"] == [32, 32]
    assert meta["batch_sizes"] == [64, 16] and meta["cpu_seconds"] > 0 and meta["data"] == DATA
    assert meta["final_loss"] == meta["history"][-1][1] and "torch" in meta["versions"]
    assert (out / "prior.loss.png").stat().st_size > 1000 and (out / "prior.md").is_file()


def test_resume_continues_bit_identically(tmp_path):
    sampler = PatchSampler(blob_images(4, 16), [8, 16], batch=4)
    full = train(new_state(tiny_config(), settings(12)), sampler, settings(12), tmp_path / "a", DATA)
    train(new_state(tiny_config(), settings(5)), sampler, settings(5), tmp_path / "b", DATA)
    state, _ = resume_state(tmp_path / "b" / "state.pt", settings(12))
    assert state.step == 5
    resumed = train(state, sampler, settings(12), tmp_path / "b", DATA)
    for a, b in [(full.model, resumed.model), (full.ema, resumed.ema)]:
        for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(pa, pb), name


def test_budget_counts_the_run_folder_total_and_a_spent_budget_trains_nothing(tmp_path):
    sampler = PatchSampler(blob_images(4, 16), [8], batch=4)
    budget = settings(10_000, budget=0.5)  # CPU seconds; the step total is out of reach
    first = train(new_state(tiny_config(), budget), sampler, budget, tmp_path, DATA)
    assert 0 < first.step < 10_000 and first.cpu_seconds >= 0.5
    state, _ = resume_state(tmp_path / "state.pt", budget)
    weights = [p.clone() for p in state.model.parameters()]
    again = train(state, sampler, budget, tmp_path, DATA)
    assert again.step == first.step
    assert all(torch.equal(a, b) for a, b in zip(weights, again.model.parameters()))
    more = settings(10_000, budget=first.cpu_seconds + 0.3)
    state, _ = resume_state(tmp_path / "state.pt", more)
    assert train(state, sampler, more, tmp_path, DATA).step > first.step


def test_resume_from_prior_file_warns_and_keeps_weights(tmp_path):
    sampler = PatchSampler(blob_images(4, 16), [8], batch=4)
    done = train(new_state(tiny_config(), settings(4)), sampler, settings(4), tmp_path / "a", DATA)
    with pytest.warns(UserWarning, match="weights only"):
        state, _ = resume_state(tmp_path / "a" / "prior.pt", settings(6))
    assert state.step == 4
    for pa, pb in zip(done.ema.parameters(), state.model.parameters()):
        assert torch.equal(pa, pb)
    with pytest.raises(PadisError, match="architecture"):
        resume_state(tmp_path / "a" / "state.pt", settings(6), tiny_config(features=(16, 16)))


def test_nonfinite_loss_is_skipped_then_aborts(tmp_path, monkeypatch):
    sampler = PatchSampler(blob_images(4, 16), [8], batch=4)
    state = train(new_state(tiny_config(), settings(3)), sampler, settings(3), tmp_path, DATA)
    before = [p.clone() for p in state.model.parameters()]
    import padis3d.training.loop as tr

    monkeypatch.setattr(tr, "edm_loss", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(PadisError, match="non-finite"):
        train(state, sampler, settings(100, max_nonfinite=5), tmp_path, DATA)
    assert all(torch.equal(a, b) for a, b in zip(before, state.model.parameters()))
    assert read_checkpoint(tmp_path / "state.pt")["meta"]["steps"] == 3  # the good checkpoint is intact


def test_3d_cubes_train_through_the_same_loop(tmp_path):
    vols = blob_images(2, 16).unsqueeze(2).expand(2, 1, 8, 16, 16).contiguous()
    sampler = PatchSampler(vols, [4, 8], batch=2)
    cfg = tiny_config(spatial_dims=3, position_axes=(0, 1, 2))
    state = train(new_state(cfg, settings(4, log_every=1)), sampler, settings(4, log_every=1), tmp_path, DATA)
    assert len(state.history) == 4 and all(h[1] > 0 for h in state.history)
    assert load_prior(tmp_path / "prior.pt").config.spatial_dims == 3
