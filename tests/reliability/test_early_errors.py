"""Issue 27, class 5: one clear line, as early as possible, never a traceback. Each case is a run that
used to end in a traceback, a late or a wrong message, or an option silently ignored; each must now be
exit 2 with one line ``padis3d CMD: error: ...`` that names what is wrong (and the minimum, for inputs too
small), raised before the work it does not need (no prior loaded, no data prepared), leaving nothing."""

from __future__ import annotations

import argparse
import gzip
import io

import nibabel as nib
import numpy as np
import pytest
import torch

from padis3d.cli.applicability import ALL, APPLIES, HARMLESS, unlisted_options
from padis3d.cli.main import build_parser
from padis3d.cli.options import MIN_SIDE
from padis3d.errors import PadisError
from padis3d.priors.checkpoint import FORMAT_PRIOR, atomic_save
from tests.prior.prior_helpers import blob_images, tiny_config
from tests.reliability.helpers import assert_clean_failure, ct_volume, nifti_volume, run_cli
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture

TRAIN = ["--features", "16", "32", "--size", "16", "--patch-sizes", "8", "16", "--batch", "2", "--steps", "1",
         "--threads", "1", "--no-progress"]


def quick(files, out, task="deblur", *extra):  # noqa: F811
    """A quick reconstruct argv on the tiny prior (2D: ``--inner 1``; volumes: ``--band 4``)."""
    volume = task in ("ct3d-parallel", "ct3d-cone", "denoise")
    return ["reconstruct", "--task", task, "--checkpoint", str(files / "tiny.pt"), "--size", "16", "--steps", "1",
            *(["--band", "4"] if volume else ["--inner", "1"]), "--threads", "1", "--no-progress",
            "--out", str(out), *extra]


def refuse(*_a, **_k):
    raise AssertionError("work started before the error")


@pytest.fixture
def no_work(monkeypatch):
    """Fail if the prior is loaded, the 2D reference read or a volume prepared: the error must come first."""
    import padis3d
    import padis3d.cli.reconstruct as rec
    import padis3d.priors.checkpoint as ckpt
    import padis3d.volume.pipeline as pipeline

    for module, name in ((ckpt, "load_prior"), (padis3d, "load_prior"), (rec, "_reference_image"),
                         (pipeline, "prepare_volume")):
        monkeypatch.setattr(module, name, refuse)


# -- tracebacks ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def niftis(tmp_path_factory):
    """A truncated uncompressed .nii, and headers that claim 4000^3 voxels over a few bytes (.nii, .nii.gz)."""
    root = tmp_path_factory.mktemp("niftis")
    nifti_volume(root / "good.nii", ct_volume())
    raw = (root / "good.nii").read_bytes()
    (root / "truncated.nii").write_bytes(raw[: len(raw) // 2])
    header = nib.load(root / "good.nii").header.copy()
    header.set_data_shape((4000, 4000, 4000))
    buf = io.BytesIO()
    header.write_to(buf)
    buf.write(b"\0" * 1000)
    (root / "huge.nii").write_bytes(buf.getvalue())
    (root / "huge.nii.gz").write_bytes(gzip.compress(buf.getvalue()))
    return root


@pytest.mark.parametrize("name, task, fragment", [
    ("truncated.nii", "deblur", "the file holds 6320 bytes: it is truncated"),
    ("truncated.nii", "denoise", "the file holds 6320 bytes: it is truncated"),
    ("huge.nii", "deblur", "claims 4000x4000x4000 voxels"),
    ("huge.nii", "denoise", "claims 4000x4000x4000 voxels"),
    ("huge.nii.gz", "deblur", "compressed bytes hold at most"),
    ("huge.nii.gz", "denoise", "compressed bytes hold at most"),
])
def test_nifti_shorter_than_its_header_is_one_line(files, niftis, tmp_path, name, task, fragment):  # noqa: F811
    rc, err = run_cli(quick(files, tmp_path / "out", task, "--input", str(niftis / name)))
    assert_clean_failure(rc, err, fragment, tmp_path / "out")


@pytest.mark.parametrize("name", ["truncated.nii", "huge.nii", "huge.nii.gz"])
def test_train_on_a_nifti_shorter_than_its_header_is_one_line(niftis, tmp_path, name):
    rc, err = run_cli(["train", "--data", str(niftis / name), "--out", str(tmp_path / "out"), *TRAIN])
    assert_clean_failure(rc, err, "its header claims", tmp_path / "out", command="train")


def test_nifti_size_is_checked_before_any_voxel_is_read(niftis, monkeypatch):
    """The header's claim is refused from the file's length alone: reading the voxels is never tried."""
    from padis3d.errors import PadisError
    from padis3d.io.nifti import read_nifti
    from padis3d.io.volume_stream import open_volume

    monkeypatch.setattr(np, "asarray", refuse)  # any read of the voxels would go through here
    for name in ("truncated.nii", "huge.nii", "huge.nii.gz"):
        for reader in (read_nifti, open_volume):
            with pytest.raises(PadisError, match="its header claims"):
                reader(niftis / name)


def test_chest_ct_slice_out_of_range_is_refused_before_any_work(files, tmp_path, no_work):  # noqa: F811
    rc, err = run_cli(quick(files, tmp_path / "out", "deblur", "--input", "chest-ct", "--slice", "133"))
    assert_clean_failure(rc, err, "--slice 133 is outside the bundled chest CT's axial slices 0..132",
                         tmp_path / "out")


def test_chest_ct_last_slice_is_accepted(tmp_path):
    from padis3d.cli.input_checks import check_plan

    check_plan(argparse.Namespace(input="chest-ct", slice=132, task="ct", kernel=9, size=16))  # the last: accepted
    with pytest.raises(PadisError, match="133"):
        check_plan(argparse.Namespace(input="chest-ct", slice=133, task="ct", kernel=9, size=16))


@pytest.mark.parametrize("payload", [{"format": "padis3d-adapter"},
                                     {"format": "padis3d-adapter", "spec": {}, "base_sha256": "x", "state": [1]}],
                         ids=["no keys", "state not tensors"])
def test_an_adapter_file_that_is_not_one_is_refused_before_any_work(files, tmp_path, no_work, payload):  # noqa: F811
    torch.save(payload, tmp_path / "fake_adapter.pt")
    rc, err = run_cli(quick(files, tmp_path / "out", "deblur", "--input", str(files / "image.npy"), "--sampler",
                            "dds", "--adapt", "--adapter", str(tmp_path / "fake_adapter.pt")))
    assert_clean_failure(rc, err, "is not a complete padis3d adapter file", tmp_path / "out")


def test_an_adapter_of_another_layout_is_one_line(files, tmp_path):  # noqa: F811
    """Right format and base, but a spec whose parameters the network lacks: not a KeyError."""
    from padis3d import load_prior
    from padis3d.adapt.adapters import Adapter, load_adapter, save_adapter
    from padis3d.errors import PadisError

    prior = load_prior(files / "tiny.pt")
    save_adapter(Adapter(prior.model, rank=2), prior, tmp_path / "a.pt")
    payload = torch.load(tmp_path / "a.pt", weights_only=True)
    payload["state"] = {"lora_a.no_such_layer": torch.zeros(2, 2)}
    torch.save(payload, tmp_path / "a.pt")
    with pytest.raises(PadisError, match="does not fit its base network"):
        load_adapter(tmp_path / "a.pt", prior)


# -- late or wrong messages ------------------------------------------------------------------------------
def window_commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [name for name, p in sub.choices.items() if any("--window" in a.option_strings for a in p._actions)]


def test_every_command_with_window_has_one():
    assert set(window_commands()) >= {"reconstruct", "train"}


@pytest.mark.parametrize("command", window_commands())
@pytest.mark.parametrize("window", [["5", "1"], ["3", "3"]])
def test_inverted_window_is_refused_at_parse_time(tmp_path, monkeypatch, command, window):
    import padis3d.cli.runner as runner

    monkeypatch.setattr(runner, "run_parsed", refuse)  # parse time: before the outputs, before the run
    rc, err = run_cli([command, "--out", str(tmp_path / "out"), "--window", *window])
    assert_clean_failure(rc, err, "argument --window: needs LO < HI", tmp_path / "out", command=command)


def test_bundled_ct_honours_and_records_window():
    from padis3d.cli.reconstruct import _reference_image
    from padis3d.io.sample_data import chest_ct_slices

    args = argparse.Namespace(input="chest-ct", slice=120, size=16, window=[-200.0, 200.0], task="ct", factor=4)
    ref = _reference_image(args)
    assert np.array_equal(ref.image, chest_ct_slices([120], 16, (-200.0, 200.0))[0])
    assert not np.array_equal(ref.image, chest_ct_slices([120], 16)[0])
    assert ref.report()["window"] == [-200.0, 200.0]
    args.window = None
    assert _reference_image(args).report()["window"] == [-1000.0, 1000.0]


def test_diverging_adaptation_says_so_and_what_to_lower(files, tmp_path):  # noqa: F811
    rc, err = run_cli(["reconstruct", "--task", "deblur", "--sampler", "dds", "--checkpoint", str(files / "tiny.pt"),
                       "--input", str(files / "image.npy"), "--size", "32", "--steps", "4", "--threads", "1",
                       "--adapt", "--adapt-mode", "lora", "--adapt-rank", "64", "--adapt-lr", "1",
                       "--adapt-steps", "50", "--adapt-first", "4", "--no-progress", "--out", str(tmp_path / "out")])
    assert_clean_failure(rc, err, "test-time adaptation diverged", tmp_path / "out")
    assert "--adapt-lr, now 1" in err and "clean the input" not in err


def test_non_finite_adapter_weights_stop_the_adaptation(files):  # noqa: F811
    """The adapter's weights are checked after every Adam step: NaN there is the adaptation diverging."""
    from padis3d import load_prior
    from padis3d.adapt import AdaptSettings, TestTimeAdapter
    from padis3d.adapt.sampling import AdaptationDiverged
    from padis3d.operators import Blur, uniform_kernel
    from padis3d.priors.factory import patch_prior_from

    prior = patch_prior_from(load_prior(files / "tiny.pt"), (16, 16), 16)
    op = Blur((16, 16), uniform_kernel(3))
    tta = TestTimeAdapter(prior, op, op(blob_images(1, 16)), AdaptSettings(steps=1, rank=1))
    step = tta.optimizer.step

    def poisoned_step(*a, **k):
        step(*a, **k)
        with torch.no_grad():
            tta.params[0].fill_(float("nan"))
    tta.optimizer.step = poisoned_step
    with pytest.raises(AdaptationDiverged, match="weights are no longer finite.*--adapt-lr"):
        tta.adapt(prior.embed(blob_images(1, 16)), 1.0, level=3)


@pytest.fixture(scope="module")
def kinds(tmp_path_factory):
    """Checkpoints whose config and meta say slab, cube, whole-image, 3-channel 2D (weights left out: the
    kind is refused from config and meta, before the weights are loaded)."""
    root = tmp_path_factory.mktemp("kinds")
    cases = {"slab": (tiny_config(channels=3), {"mode": "slab", "patch_sizes": [16]}),
             "cube": (tiny_config(spatial_dims=3, position_axes=(0, 1, 2)), {"mode": "cube", "patch_sizes": [16]}),
             "whole": (tiny_config(position_axes=()), {"mode": "whole", "patch_sizes": [None]}),
             "rgb": (tiny_config(channels=3), {"mode": "patch", "patch_sizes": [16]})}
    for name, (config, meta) in cases.items():
        atomic_save({"format": FORMAT_PRIOR, "format_version": 1, "config": config.to_dict(), "ema": {},
                     "meta": {"image_shape": [32, 32], **meta}}, root / f"{name}.pt")
    return root


@pytest.mark.parametrize("kind, task, holds", [
    ("slab", "ct", "holds a slab prior (3 slices as channels); --task ct: a 2D task needs"),
    ("cube", "deblur", "holds a 3D cube prior; --task deblur: a 2D task needs"),
    ("rgb", "sr", "holds a 2D patch prior with 3 channels; --task sr: a 2D task needs"),
    ("whole", "denoise", "holds a 2D whole-image prior; --task denoise: a volume task needs"),
    ("rgb", "ct3d-parallel", "holds a 2D patch prior with 3 channels; --task ct3d-parallel: a volume task needs"),
])
def test_wrong_kind_of_checkpoint_is_named_before_any_work(files, kinds, tmp_path, no_work, kind, task,  # noqa: F811
                                                           holds):
    volume = task in ("ct3d-parallel", "denoise")
    nifti_volume(tmp_path / "vol.nii.gz", ct_volume((12, 12, 8)))
    argv = quick(files, tmp_path / "out", task, "--input", str(tmp_path / "vol.nii.gz" if volume else
                                                                  files / "image.npy"))
    argv[argv.index("--checkpoint") + 1] = str(kinds / f"{kind}.pt")
    rc, err = run_cli(argv)
    assert_clean_failure(rc, err, holds, tmp_path / "out")


def test_slab_and_cube_kinds_serve_volume_tasks(kinds):
    from padis3d.cli.prior_kind import check_prior_kind

    for kind in ("slab", "cube"):
        check_prior_kind(kinds / f"{kind}.pt", "denoise")  # accepted for a volume task ...
        with pytest.raises(PadisError, match=f"holds a .*{kind}"):
            check_prior_kind(kinds / f"{kind}.pt", "deblur")  # ... refused for a 2D one


def test_dead_scheduler_is_found_before_the_input_is_prepared(files, tmp_path, monkeypatch):  # noqa: F811
    import padis3d.cli.scheduler as scheduler
    import padis3d.priors.checkpoint as ckpt
    import padis3d.volume.pipeline as pipeline

    monkeypatch.setattr(scheduler, "CONNECT_TIMEOUT_S", 1.0)
    monkeypatch.setattr(pipeline, "prepare_volume", refuse)
    monkeypatch.setattr(ckpt, "load_prior", refuse)
    nifti_volume(tmp_path / "vol.nii.gz", ct_volume((12, 12, 8)))
    rc, err = run_cli(quick(files, tmp_path / "out", "denoise", "--input", str(tmp_path / "vol.nii.gz"),
                            "--scheduler", "tcp://127.0.0.1:1"))
    assert_clean_failure(rc, err, "--scheduler tcp://127.0.0.1:1: cannot reach a dask scheduler", tmp_path / "out")


def parser_of(command: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def test_memory_hints_name_only_the_commands_own_options():
    from padis3d.cli.runner import MEMORY_OPTIONS, memory_hint

    for command, options in MEMORY_OPTIONS.items():
        own = {o for a in parser_of(command)._actions for o in a.option_strings}
        assert set(options) <= own, (command, set(options) - own)
        assert all(o in memory_hint(command) for o in options)


def test_train_out_of_memory_names_train_options(tmp_path, monkeypatch):
    import padis3d.cli.train as train

    def out_of_memory(*_a, **_k):
        raise MemoryError("cannot allocate 64 GiB")
    monkeypatch.setattr(train, "_images", out_of_memory)
    np.save(tmp_path / "imgs.npy", blob_images(4, 16)[:, 0].numpy())
    rc, err = run_cli(["train", "--data", str(tmp_path / "imgs.npy"), "--out", str(tmp_path / "out"), *TRAIN])
    assert_clean_failure(rc, err, "out of memory", tmp_path / "out", command="train")
    own = {o for a in parser_of("train")._actions for o in a.option_strings}
    named = {w.strip(",;()") for w in err.split() if w.startswith("--")}
    assert named and named <= own, named - own


# -- options that do not apply ---------------------------------------------------------------------------
VALUES = {  # a valid value other than the parser default, for every option that does not apply to every task
    "sampler": ["langevin"], "inner": ["2"], "schedule": ["karras"], "budget": ["paper"], "step_rule": ["norm"],
    "step_size": ["1.0"], "slice": ["3"], "axis": ["1"], "measured": ["{files}/image.npy"], "views": ["8"],
    "span_deg": ["90"], "kernel": ["3"], "factor": ["2"], "sr_mode": ["nearest"], "zeta": ["0.2"], "epsilon": ["0.4"],
    "init": ["baseline"], "order": ["2"], "tv": ["0.1"], "holdout_choice": [], "slices": ["0", "8"], "denoiser": ["dds"], "lowres": ["{files}/tiny.pt"],
    "lowres_weight": ["0.5"], "band": ["8"], "work_dir": ["{tmp}/w"], "restart": [], "scheduler": ["tcp://127.0.0.1:1"],
    "adapt": [], "adapt_mode": ["norm"], "adapt_rank": ["2"], "adapt_lr": ["0.001"], "adapt_steps": ["2"],
    "adapt_first": ["1"], "adapt_every": ["2"], "adapt_max_sigma": ["1.0"], "adapt_cg_iters": ["1"],
    "adapt_tv": ["0.1"], "adapt_noise": ["0.01"], "adapt_tau": ["1.5"], "adapter": ["{files}/tiny.pt"],
    "adapt_validate": [], "adapt_holdout": ["0.2"], "adapt_val_patience": ["3"], "adapt_val_margin": ["0.02"],
}
"""(a flag's value list is empty: giving it is the value)"""

MISAPPLIED = [(dest, task) for dest, tasks in APPLIES.items() if tasks != ALL for task in ALL if task not in tasks]


def test_every_reconstruct_option_is_in_the_table():
    assert unlisted_options(parser_of("reconstruct")) == []
    assert set(APPLIES) == {a.dest for a in parser_of("reconstruct")._actions if a.option_strings} - {"help"}
    assert {dest for dest, tasks in APPLIES.items() if tasks != ALL} <= set(VALUES)


@pytest.mark.parametrize("dest, task", MISAPPLIED, ids=[f"{d} {t}" for d, t in MISAPPLIED])
def test_an_option_the_task_does_not_use_is_refused_before_any_work(files, tmp_path, no_work, dest, task):  # noqa: F811
    volume = task in ("ct3d-parallel", "ct3d-cone", "denoise")
    nifti_volume(tmp_path / "vol.nii.gz", ct_volume((12, 12, 8)))
    option = "--" + dest.replace("_", "-")
    values = [v.replace("{files}", str(files)).replace("{tmp}", str(tmp_path)) for v in VALUES[dest]]
    base = quick(files, tmp_path / "out", task, "--input", str(tmp_path / "vol.nii.gz" if volume else
                                                               files / "image.npy"))
    if dest.startswith("adapt") and dest != "adapt":
        base.append("--adapt")  # the --adapt-* options need --adapt (its own check speaks first otherwise)
    rc, err = run_cli([*base, option, *values])
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("padis3d reconstruct: error: ") and not (tmp_path / "out").exists()
    named = {"adapt_mode", "adapt_rank", "adapt_lr", "adapt_steps", "adapt_first", "adapt_every", "adapt_max_sigma",
             "adapt_cg_iters", "adapt_tv", "adapt_noise", "adapt_tau", "adapter", "adapt", "lowres", "lowres_weight",
             "order", "adapt_validate", "adapt_holdout", "adapt_val_patience", "adapt_val_margin"}  # options whose own (older) checks speak first, each naming the option or --adapt
    assert option in err or (dest in named and ("--adapt" in err or "--lowres" in err or "--order" in err)), err


def test_harmless_values_and_defaults_are_accepted(files, tmp_path):  # noqa: F811
    """``--sampler dds`` on a volume task states what the task does; an option left at its default is not given."""
    from padis3d.cli.applicability import check_applicable

    args = build_parser().parse_args(quick(files, tmp_path / "out", "denoise", "--sampler", "dds"))
    check_applicable(args, args.sampler_option_default)
    assert "dds" in HARMLESS["sampler"]["denoise"]
    args = build_parser().parse_args(quick(files, tmp_path / "out", "denoise", "--views", "20"))  # the default
    check_applicable(args, args.sampler_option_default)


def test_noise_with_measured_is_refused(files, tmp_path, no_work):  # noqa: F811
    rc, err = run_cli(quick(files, tmp_path / "out", "deblur", "--input", str(files / "image.npy"), "--measured",
                            str(files / "image.npy"), "--noise", "0.1"))
    assert_clean_failure(rc, err, "--noise simulates measurement noise", tmp_path / "out")


# -- inputs too small to reconstruct ---------------------------------------------------------------------
def load_prior_refused(monkeypatch):
    import padis3d.priors.checkpoint as ckpt

    monkeypatch.setattr(ckpt, "load_prior", refuse)


@pytest.mark.parametrize("shape", [(2, 3), (MIN_SIDE - 1, 32), (32, MIN_SIDE - 1)])
def test_input_smaller_than_the_minimum_is_refused_with_it(files, tmp_path, monkeypatch, shape):  # noqa: F811
    load_prior_refused(monkeypatch)
    np.save(tmp_path / "small.npy", np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32))
    rc, err = run_cli(quick(files, tmp_path / "out", "deblur", "--input", str(tmp_path / "small.npy")))
    assert_clean_failure(rc, err, f"every side needs >= {MIN_SIDE} pixels", tmp_path / "out")


def test_one_voxel_nifti_is_refused_not_upsampled(files, tmp_path, monkeypatch):  # noqa: F811
    load_prior_refused(monkeypatch)
    nifti_volume(tmp_path / "one.nii.gz", np.full((1, 1, 1), 40.0, np.float32))
    rc, err = run_cli(quick(files, tmp_path / "out", "deblur", "--input", str(tmp_path / "one.nii.gz")))
    assert_clean_failure(rc, err, f"is 1x1 pixels: too small to reconstruct, every side needs >= {MIN_SIDE}",
                         tmp_path / "out")


def test_input_of_the_minimum_side_is_reconstructed(files, tmp_path):  # noqa: F811
    np.save(tmp_path / "seven.npy", np.random.default_rng(0).uniform(0, 1, (MIN_SIDE, MIN_SIDE)).astype(np.float32))
    rc, err = run_cli(quick(files, tmp_path / "out", "deblur", "--input", str(tmp_path / "seven.npy"), "--kernel", "3"))
    assert rc == 0, err


@pytest.mark.parametrize("suffix", [".npy", ".nii.gz"])
def test_constant_input_is_refused(files, tmp_path, monkeypatch, suffix):  # noqa: F811
    load_prior_refused(monkeypatch)
    path = tmp_path / f"flat{suffix}"
    if suffix == ".npy":
        np.save(path, np.full((16, 16), 3.0, np.float32))
    else:
        nifti_volume(path, np.full((16, 16, 3), 2500.0, np.float32))  # above the HU window: one value after it
    rc, err = run_cli(quick(files, tmp_path / "out", "deblur", "--input", str(path)))
    assert rc == 2 and "constant" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("shape, fragment", [((MIN_SIDE - 1, MIN_SIDE - 1, 12), "12 slices of 6x6 voxels"),
                                            ((12, 12, MIN_SIDE - 1), "6 slices of 12x12 voxels")])
def test_volume_smaller_than_the_minimum_is_refused_from_its_header(files, tmp_path, no_work, shape,  # noqa: F811
                                                                     fragment):
    nifti_volume(tmp_path / "small.nii.gz", ct_volume(shape))
    rc, err = run_cli(quick(files, tmp_path / "out", "denoise", "--input", str(tmp_path / "small.nii.gz")))
    assert_clean_failure(rc, err, f"{fragment} are too small to reconstruct: every axis needs >= {MIN_SIDE}",
                         tmp_path / "out")


def test_blur_kernel_larger_than_the_image_is_refused_before_any_work(files, tmp_path, no_work):  # noqa: F811
    rc, err = run_cli(quick(files, tmp_path / "out", "deblur", "--input", str(files / "image.npy"), "--kernel", "17"))
    assert_clean_failure(rc, err, "--kernel 17 is larger than the --size 16 image", tmp_path / "out")


def test_an_npz_archive_named_npy_is_one_clear_error(tmp_path):
    from padis3d.errors import PadisError
    from padis3d.io import read_npy

    with open(tmp_path / "a.npy", "wb") as f:
        np.savez(f, x=np.zeros((8, 8)))
    with pytest.raises(PadisError, match="not a .npy array"):
        read_npy(tmp_path / "a.npy")


@pytest.mark.parametrize("extra, message", [
    (["--sampler", "padis", "--size", "128"], "it needs the dds sampler"),
    (["--adapt", "--size", "128"], "adaptation has its own held-out validation"),
    ([], "ADMM-TV's weight was tuned at sides [64, 128, 256], not 16"),
], ids=["padis", "adapt", "size"])
def test_a_holdout_choice_that_cannot_run_is_refused_before_any_work(files, tmp_path, no_work, extra, message):  # noqa: F811
    rc, err = run_cli(quick(files, tmp_path / "out", "deblur", "--input", str(files / "image.npy"),
                            "--holdout-choice", *extra))
    assert_clean_failure(rc, err, message, tmp_path / "out")
