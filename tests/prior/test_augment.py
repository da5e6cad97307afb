"""Training-time augmentation (``padis3d train --augment``, padis3d.training.augment): exact
symmetries, ranges kept, nothing drawn when off, deterministic and resumable, recorded."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from padis3d.errors import PadisError
from padis3d.priors.checkpoint import read_checkpoint
from padis3d.training.augment import Augment, canonical_items, parse_item, zoom
from padis3d.training.data import PatchSampler
from padis3d.training.loop import TrainSettings, new_state, resume_state, train
from tests.prior.prior_helpers import blob_images, tiny_config
from tests.reliability.helpers import run_cli

ALL = Augment.from_items(["flips", "rot90", "scale", "intensity"])
TINY_NET = ["--features", "16", "32", "--size", "16", "--patch-sizes", "8", "16", "--batch", "2", "--threads", "1",
            "--no-progress"]


def ramp(n: int = 6, size: int = 8) -> torch.Tensor:
    """``(n, 1, size, size)`` images of distinct values (a permutation of them is identifiable)."""
    return torch.arange(n * size * size, dtype=torch.float32).reshape(n, 1, size, size) / (n * size * size)


def dihedral(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 symmetries of the square applied to ``x`` ``(C, H, W)``."""
    return [torch.rot90(y, k, dims=(-2, -1)) for y in (x, x.flip(-1)) for k in range(4)]


def test_flips_and_rot90_are_exact_symmetries_of_each_image_and_reach_all_eight():
    x = ramp(64)
    out = Augment(flips=True, rot90=True).apply(x, torch.Generator().manual_seed(0))
    seen = set()
    for a, b in zip(x, out):
        match = [i for i, d in enumerate(dihedral(a)) if torch.equal(d, b)]
        assert len(match) == 1  # bit-exact, one of the 8 symmetries
        seen.add(match[0])
    assert seen == set(range(8))
    for kind in ("flips", "rot90"):  # each alone: a permutation of the values, not always the identity
        out = Augment.from_items([kind]).apply(x, torch.Generator().manual_seed(1))
        assert all(torch.equal(a.flatten().sort().values, b.flatten().sort().values) for a, b in zip(x, out))
        assert not torch.equal(out, x)


def test_disabled_augmentation_draws_nothing_and_batches_are_the_unaugmented_crops():
    """Without --augment the sampler draws (size, images, offsets) as before and crops the zero-padded
    images: rebuilt here from the same generator, bit for bit, in patch and whole modes."""
    from tiling.grid import TileGrid

    images = blob_images(5, 16, seed=1)
    assert Augment.from_items(None) is None and Augment.from_items([]) is None
    for sizes, probs in (([8, 16], [0.4, 0.6]), ([None], [1.0])):
        sampler = PatchSampler(images, sizes, probs, batch=3)
        g, ref = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
        for _ in range(6):
            b = sampler.sample(g)
            k = int(torch.multinomial(torch.tensor(probs, dtype=torch.float64), 1, generator=ref))
            grid, n = TileGrid((16, 16), sizes[k]), sampler.batch_sizes[k]
            idx = torch.randint(5, (n,), generator=ref)
            off = torch.stack([torch.randint(c - p + 1, (n,), generator=ref)
                               for c, p in zip(grid.canvas_shape, grid.tile)], 1)
            canvas = grid.pad_image(images)
            want = torch.stack([canvas[i, :, o[0]:o[0] + grid.tile[0], o[1]:o[1] + grid.tile[1]]
                                for i, o in zip(idx.tolist(), off.tolist())])
            assert torch.equal(b.patches, want)
        assert torch.equal(g.get_state(), ref.get_state())  # no extra draw


def test_same_seed_same_augmented_batches_other_seed_other_batches():
    images = blob_images(6, 16, seed=2)
    plain = PatchSampler(images, [8, 16], batch=4)
    aug = PatchSampler(images, [8, 16], batch=4, augment=ALL)

    def batches(sampler, seed):
        g = torch.Generator().manual_seed(seed)
        return [sampler.sample(g) for _ in range(5)]

    a, b, c, d = batches(aug, 3), batches(aug, 3), batches(aug, 4), batches(plain, 3)
    assert all(torch.equal(x.patches, y.patches) and torch.equal(x.positions, y.positions) for x, y in zip(a, b))
    assert any(not torch.equal(x.patches, y.patches) for x, y in zip(a, c))
    # the augmentation draws after the crop: the first batch has the unaugmented size and positions, other content
    assert a[0].size == d[0].size and torch.equal(a[0].positions, d[0].positions)
    assert not torch.equal(a[0].patches, d[0].patches)


def test_scale_jitter_keeps_size_and_range_and_magnifies_about_the_centre():
    disc = torch.zeros(1, 1, 32, 32)
    yy, xx = torch.meshgrid(torch.arange(32) - 15.5, torch.arange(32) - 15.5, indexing="ij")
    disc[0, 0][yy ** 2 + xx ** 2 < 6 ** 2] = 0.8
    assert torch.allclose(zoom(disc, torch.tensor([1.0])), disc, atol=1e-5)
    area = float((disc > 0.4).sum())
    for s in (1.4, 0.7):
        out = zoom(disc, torch.tensor([s]))
        assert out.shape == disc.shape and float(out.min()) >= 0 and float(out.max()) <= 0.8 + 1e-6
        assert abs(float((out > 0.4).sum()) / area - s * s) < 0.15 * s * s  # area scales with s^2
        assert torch.allclose(out, out.flip(-1).flip(-2), atol=1e-5)  # centred: the symmetry is kept
    # zooming out leaves a zero border; the jitter keeps any batch in [0, 1] at its size
    assert float(zoom(torch.ones(1, 1, 16, 16), torch.tensor([0.75]))[0, 0, 0].abs().max()) == 0.0
    images = blob_images(32, 16, seed=3)
    out = Augment(scale=2.0).apply(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and float(out.min()) >= 0 and float(out.max()) <= float(images.max()) + 1e-6
    assert not torch.allclose(out, images, atol=1e-3)


def test_scale_factors_are_log_uniform_within_the_range():
    from padis3d.training.augment import log_uniform

    f = log_uniform(math.sqrt(2), 20_000, torch.Generator().manual_seed(0))
    assert float(f.min()) >= 2 ** -0.5 and float(f.max()) <= 2 ** 0.5
    hist = np.histogram(np.log(f.numpy()), bins=4, range=(-math.log(2) / 2, math.log(2) / 2))[0]
    assert hist.min() > 0.9 * 5000  # flat in log s


def test_intensity_jitter_is_a_clipped_affine_window_map_within_the_range():
    images = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    aug = Augment(intensity=1.5)
    out = aug.apply(images, torch.Generator().manual_seed(1))
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    slopes = []
    for x, y in zip(images.flatten(1), out.flatten(1)):
        inside = (y > 0) & (y < 1)
        a, c = np.polyfit(x[inside].double().numpy(), y[inside].double().numpy(), 1)
        assert np.allclose(a * x[inside].numpy() + c, y[inside].numpy(), atol=1e-5)  # one affine map per image
        assert 1 / 1.5 - 1e-4 <= a <= 1.5 + 1e-4 and abs(c - 0.5 * (1 - a)) <= aug.intensity_shift + 1e-4
        slopes.append(a)
    assert min(slopes) < 0.8 and max(slopes) > 1.25  # the range is used, not a constant


def test_slab_channels_share_the_draw_and_3d_or_non_square_rot90_is_refused():
    slab = blob_images(8, 16, seed=4).repeat(1, 3, 1, 1)
    out = ALL.apply(slab, torch.Generator().manual_seed(0))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])
    with pytest.raises(PadisError, match="2 spatial axes"):
        PatchSampler(torch.rand(1, 1, 8, 8, 8), [8], augment=ALL)
    with pytest.raises(PadisError, match="square"):
        PatchSampler(torch.rand(2, 1, 8, 16), [8], augment=Augment(rot90=True))
    PatchSampler(torch.rand(2, 1, 8, 16), [8], augment=Augment(flips=True, scale=1.2))  # fine without rot90


def test_items_are_checked_and_written_in_the_order_applied():
    assert canonical_items(["intensity=1.50", "Flips", "scale"]) == ["flips", "scale", "intensity=1.5"]
    assert Augment.from_items(["scale=1.5"]).scale == 1.5 and Augment.from_items(["scale"]).scale == math.sqrt(2)
    for bad, why in [("shear", "unknown"), ("flips=2", "takes no value"), ("scale=x", "number"),
                     ("scale=0.5", r"\[1, 4\]"), ("intensity=nan", r"\[1, 4\]")]:
        with pytest.raises(PadisError, match=why):
            parse_item(bad)
    with pytest.raises(PadisError, match="more than once"):
        canonical_items(["scale", "scale=2"])


def settings(steps: int) -> TrainSettings:
    return TrainSettings(steps=steps, lr=2e-3, lr_warmup_steps=2, ema_halflife_patches=50, log_every=2,
                         checkpoint_every=1e9, progress=False, seed=5)


def test_resumed_augmented_run_continues_bit_identically(tmp_path):
    sampler = PatchSampler(blob_images(4, 16), [8, 16], batch=4, augment=ALL)
    full = train(new_state(tiny_config(), settings(8)), sampler, settings(8), tmp_path / "a", {})
    train(new_state(tiny_config(), settings(3)), sampler, settings(3), tmp_path / "b", {})
    state, _ = resume_state(tmp_path / "b" / "state.pt", settings(8))
    resumed = train(state, sampler, settings(8), tmp_path / "b", {})
    for a, b in [(full.model, resumed.model), (full.ema, resumed.ema)]:
        for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(pa, pb), name
    assert torch.equal(full.generator.get_state(), resumed.generator.get_state())
    plain = train(new_state(tiny_config(), settings(8)), PatchSampler(blob_images(4, 16), [8, 16], batch=4),
                  settings(8), tmp_path / "c", {})
    assert any(not torch.equal(pa, pb) for pa, pb in zip(plain.model.parameters(), full.model.parameters()))


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "imgs.npy"
    np.save(path, blob_images(4, 16)[:, 0].numpy())
    return path


def test_cli_records_the_augmentation_in_meta_identity_and_model_card(data_file, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--data", str(data_file), "--out", str(out), "--steps", "2", *TINY_NET,
            "--augment", "intensity", "scale=1.5", "rot90", "flips"]
    assert run_cli(argv)[0] == 0
    meta = read_checkpoint(out / "prior.pt")["meta"]
    assert meta["augment"] == {"kinds": ["flips", "rot90", "scale", "intensity"], "flips": True, "rot90": True,
                               "scale": 1.5, "intensity": 1.25, "intensity_shift": 0.1}
    assert meta["run_identity"]["options"]["augment"] == ["flips", "rot90", "scale=1.5", "intensity"]
    card = (out / "prior.md").read_text()
    assert "* augmentation: flips, rot90, scale, intensity: " in card and "[0.667, 1.500]" in card
    # the same augmentation in another order resumes; another augmentation is refused
    assert run_cli(argv[:6] + ["3"] + argv[7:-5] + ["--augment", "flips", "rot90", "intensity", "scale=1.5",
                                                     "--resume"])[0] == 0
    rc, err = run_cli(argv[:6] + ["4"] + argv[7:-5] + ["--augment", "flips", "--resume"])
    assert rc == 2 and "--augment" in err and len(err.strip().splitlines()) == 1


def test_cli_without_augment_records_none(data_file, tmp_path):
    out = tmp_path / "run"
    assert run_cli(["train", "--data", str(data_file), "--out", str(out), "--steps", "1", *TINY_NET])[0] == 0
    meta = read_checkpoint(out / "prior.pt")["meta"]
    assert meta["augment"] is None and meta["run_identity"]["options"]["augment"] is None
    assert "* augmentation: none" in (out / "prior.md").read_text()


@pytest.mark.parametrize("extra, why", [(["--augment", "shear"], "unknown augmentation"),
                                        (["--augment", "scale", "scale=2"], "more than once"),
                                        (["--augment", "scale=9"], r"\[1, 4\]"),
                                        (["--mode", "cube", "--augment", "flips"], "--mode patch, whole or slab")])
def test_cli_refuses_bad_augment_in_one_line(data_file, tmp_path, extra, why):
    import re

    rc, err = run_cli(["train", "--data", str(data_file), "--out", str(tmp_path / "run"), "--steps", "1",
                       *TINY_NET, *extra])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and re.search(why, err), err
    assert not (tmp_path / "run").exists()
