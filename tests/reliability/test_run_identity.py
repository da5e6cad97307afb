"""A rerun reuses nothing made under other settings or other bytes; every file read is an input
(issue 27, classes 2 and 3).

* every option of every command is declared once: in the run identity or as not affecting the
  result (with a reason); every path option is a declared input or output;
* the identity is the options plus the content of the files read, not their paths;
* a volume run on a folder that holds a run of another identity (any result-affecting option,
  other checkpoint or input bytes at the same path) is refused in one line, or recomputed with
  ``--restart``, never reused; ``--restart`` always recomputes;
* a training state made from other ``--data`` bytes is not resumed;
* no output of any command may replace one of its input files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from padis3d.cli.identity import DECLARATIONS, RunIdentity, declaration, run_identity
from padis3d.cli.main import build_parser
from padis3d.cli.options import nonempty_text, path_option
from padis3d.priors.checkpoint import FORMAT_PRIOR, atomic_save
from padis3d.priors.network import EDMDenoiser
from tests.prior.prior_helpers import blob_images, perturbed, tiny_config
from tests.reliability.helpers import ct_volume, nifti_volume, run_cli, without_option
from tests.reliability.test_every_option import TINY_NET, bases
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture


def subparsers() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def options_of(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_prior(path, seed: int):
    """A tiny untrained prior like the ``files`` fixture's ``tiny.pt``, other weights for another seed."""
    model = perturbed(EDMDenoiser(tiny_config()), seed)
    atomic_save({"format": FORMAT_PRIOR, "format_version": 1, "config": tiny_config().to_dict(),
                 "ema": model.state_dict(), "meta": {"image_shape": [32, 32], "patch_sizes": [16, 8]}}, path)
    return path


def report(out) -> dict:
    return json.loads((out / "report.json").read_text())


def volume_result(out) -> np.ndarray:
    return np.asarray(nib.load(out / "reconstruction.nii.gz").dataobj)


def one_line_refusal(rc: int, err: str, command: str = "reconstruct") -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and "Traceback" not in err, (rc, err)
    assert len(lines) == 1 and lines[0].startswith(f"padis3d {command}: error: "), err
    return lines[0]


# -- item 1: one declaration per command, checked against the parsers --------------------------------
def test_every_option_of_every_command_is_declared_exactly_once():
    parsers = subparsers()
    assert set(parsers) == set(DECLARATIONS)
    for command, parser in parsers.items():
        decl = declaration(command)
        dests = {a.dest for a in options_of(parser)}
        identity, neutral = set(decl.identity), set(decl.neutral)
        assert not dests - identity - neutral, f"{command}: declare {sorted(dests - identity - neutral)} in " \
                                               f"padis3d/cli/identity.py (identity, or neutral with a reason)"
        assert not identity & neutral, f"{command}: {sorted(identity & neutral)} both in the identity and neutral"
        assert not (identity | neutral) - dests, f"{command}: declared but not options: {(identity | neutral) - dests}"
        assert all(isinstance(r, str) and len(r) > 10 for r in decl.neutral.values()), command


def test_every_path_option_is_a_declared_input_or_output():
    for command, parser in subparsers().items():
        decl = declaration(command)
        inputs, outputs, names = set(decl.inputs), set(decl.outputs), set(decl.names)
        text = {a.dest for a in options_of(parser) if a.type in (path_option, nonempty_text)}
        assert not text - inputs - outputs - names, f"{command}: {sorted(text - inputs - outputs - names)} take " \
                                                    "a path or name: declare them as inputs, outputs or names"
        assert not inputs & outputs and outputs <= set(decl.neutral), command
        assert inputs <= {a.dest for a in options_of(parser)}, command


# -- the identity: options plus content ------------------------------------------------------------
def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_identity_is_the_content_of_the_files_read_not_their_paths(files, tmp_path):  # noqa: F811
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    shutil.copy(files / "tiny.pt", a)
    shutil.copy(files / "tiny.pt", b)
    base = ["reconstruct", "--task", "denoise", "--input", str(files / "image.npy"), "--out", str(tmp_path / "o")]
    first = run_identity(parse(*base, "--checkpoint", str(a)))
    assert run_identity(parse(*base, "--checkpoint", str(b))).key == first.key  # the same bytes elsewhere
    assert run_identity(parse(*base, "--checkpoint", str(a), "--threads", "3", "--no-progress")).key == first.key
    save_prior(b, seed=1)
    other = run_identity(parse(*base, "--checkpoint", str(b)))
    assert other.key != first.key and other.differences(first) == ["--checkpoint content changed"]
    span = run_identity(parse(*base, "--checkpoint", str(a), "--span-deg", "90"))
    assert span.differences(first) == ["--span-deg None -> 90.0"]
    assert RunIdentity.from_json(json.loads(json.dumps(span.to_json()))).key == span.key


def test_a_folder_input_hashes_its_files_names_and_bytes(tmp_path):
    folder = tmp_path / "pngs"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"one")
    (folder / "b.png").write_bytes(b"two")
    args = ["train", "--data", str(folder), "--out", str(tmp_path / "run")]
    first = run_identity(parse(*args))
    (folder / "b.png").rename(folder / "c.png")
    renamed = run_identity(parse(*args))
    (folder / "c.png").write_bytes(b"tw0")
    changed = run_identity(parse(*args))
    assert len({first.key, renamed.key, changed.key}) == 3
    assert changed.differences(renamed) == ["--data content changed"]


# -- item 5a: a volume rerun under any other result-affecting option is refused or recomputed ----------
VOLUME_ALTERNATIVES: dict[str, list[str]] = {
    # one valid other value per result-affecting option of `reconstruct` (a volume denoise run)
    "checkpoint": ["--checkpoint", "{root}/other.pt"], "tile": ["--tile", "8"], "sampler": ["--sampler", "padis"],
    "steps": ["--steps", "2"], "inner": ["--inner", "2"], "sigma_max": ["--sigma-max", "2"],
    "sigma_min": ["--sigma-min", "0.01"], "schedule": ["--schedule", "karras"], "budget": ["--budget", "custom"],
    "step_rule": ["--step-rule", "norm"], "step_size": ["--step-size", "0.5"], "seed": ["--seed", "1"],
    "device": ["--device", "auto"], "precision": ["--precision", "fp32"], "max_batch": ["--max-batch", "1"],
    "memory_budget_mb": ["--memory-budget-mb", "64"], "task": ["--task", "ct3d-parallel"],
    "input": ["--input", "{root}/vol2.nii.gz"], "slice": ["--slice", "3"], "axis": ["--axis", "1"],
    "orientation": ["--orientation", "SPL"], "series": ["--series", "1.2.3"], "window": ["--window", "-500", "500"],
    "size": ["--size", "16"], "measured": ["--measured", "{root}/sino.npy"], "views": ["--views", "10"],
    "span_deg": ["--span-deg", "90"], "noise": ["--noise", "0.1"], "kernel": ["--kernel", "5"],
    "factor": ["--factor", "2"], "sr_mode": ["--sr-mode", "nearest"], "zeta": ["--zeta", "0.2"],
    "epsilon": ["--epsilon", "0.4"], "init": ["--init", "baseline"], "eta": ["--eta", "0.5"], "rho": ["--rho", "0.5"],
    "cg_iters": ["--cg-iters", "3"], "order": ["--order", "2"], "tv": ["--tv", "0.1"],
    "holdout_choice": ["--no-holdout-choice"], "slices": ["--slices", "0", "7"],
    "denoiser": ["--denoiser", "dds"], "lowres": ["--lowres", "{root}/low.pt"], "lowres_weight": ["--lowres-weight", "1"],
    "band": ["--band", "2"], "adapt": ["--adapt"], "adapt_mode": ["--adapt-mode", "norm"],
    "adapt_rank": ["--adapt-rank", "2"], "adapt_lr": ["--adapt-lr", "0.01"], "adapt_steps": ["--adapt-steps", "2"],
    "adapt_first": ["--adapt-first", "1"], "adapt_every": ["--adapt-every", "2"],
    "adapt_max_sigma": ["--adapt-max-sigma", "1"], "adapt_cg_iters": ["--adapt-cg-iters", "1"],
    "adapt_tv": ["--adapt-tv", "0.1"], "adapt_noise": ["--adapt-noise", "0.1"], "adapt_tau": ["--adapt-tau", "2"],
    "adapter": ["--adapter", "{root}/other.pt"], "adapt_validate": ["--no-adapt-validate"],
    "adapt_holdout": ["--adapt-holdout", "0.3"], "adapt_val_patience": ["--adapt-val-patience", "3"],
    "adapt_val_margin": ["--adapt-val-margin", "0.05"],
}


def with_option(argv: list[str], option: list[str]) -> list[str]:
    """``argv`` with ``option`` (its flag and values) replacing the same flag's values, if any."""
    return without_option(argv, [option[0]]) + option


@pytest.fixture(scope="module")
def root(files):  # noqa: F811
    """The tiny prior and volume of ``test_every_option``, and the other files the alternatives name."""
    from padis3d.priors.coarse_weight import CoarseWeight, save_weight
    from tests.prior.test_two_scale_factory import save

    nifti_volume(files / "vol.nii.gz", ct_volume((12, 12, 8)))
    nifti_volume(files / "vol2.nii.gz", ct_volume((12, 12, 8), seed=1))
    save_prior(files / "other.pt", seed=1)
    np.save(files / "sino.npy", np.zeros((8, 12, 12), np.float32))
    low = save(files / "low.pt", 2, 4, [16, 16], [2, 2], 5)
    save_weight(CoarseWeight((0.1, 1.0), (0.2, 0.7)), files / "tiny.pt", low)  # --lowres-weight measured works
    return files


def volume_argv(root, out, *extra: str) -> list[str]:
    command, base = bases(root)["reconstruct-volume"]
    return [command, *[str(out) if a == "OUT" else a for a in base], *extra]


@pytest.fixture(scope="module")
def finished(root, tmp_path_factory):
    """A finished denoise run's --out folder (copied for each case)."""
    out = tmp_path_factory.mktemp("finished") / "out"
    assert run_cli(volume_argv(root, out))[0] == 0
    return out


def test_every_result_affecting_option_has_an_alternative():
    decl = declaration("reconstruct")
    assert set(VOLUME_ALTERNATIVES) == set(decl.identity), set(decl.identity) ^ set(VOLUME_ALTERNATIVES)


@pytest.mark.parametrize("dest", sorted(VOLUME_ALTERNATIVES))
def test_a_volume_rerun_under_another_option_is_never_reused(root, finished, tmp_path, dest):
    """The rerun on a folder holding another run exits 2 in one line leaving the old results as they
    were, or exits 0 having recomputed everything: what a fresh run on another folder gives."""
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    shutil.copytree(finished, out)
    option = [a.format(root=root) for a in VOLUME_ALTERNATIVES[dest]]
    argv = with_option(volume_argv(root, out), option)
    before = {p.name: digest(p) for p in out.iterdir() if p.is_file()}
    rc, err = run_cli(argv)
    if rc != 0:
        one_line_refusal(rc, err)
        assert {p.name: digest(p) for p in out.iterdir() if p.is_file()} == before
        return
    rep = report(out)
    assert rep["resumed_from_step"] == 0 and rep["prepared_reused"] is False, rep
    assert run_cli([str(fresh) if a == str(out) else a for a in argv])[0] == 0
    assert np.array_equal(volume_result(out), volume_result(fresh))


CT = ["--task", "ct3d-parallel", "--views", "8", "--steps", "2", "--sampler", "dds"]


@pytest.mark.parametrize("option", [["--span-deg", "90"], ["--views", "12"]])
def test_limited_angle_rerun_is_refused_then_recomputed_with_restart(root, tmp_path, option):
    out = tmp_path / "ct"
    assert run_cli(volume_argv(root, out, *CT))[0] == 0
    first = volume_result(out)
    assert report(out)["geometry"] == {"views": 8, "span_deg": 180.0}
    assert report(out)["identity"]["options"]["views"] == 8
    rc, err = run_cli(volume_argv(root, out, *with_option(CT, option)))
    line = one_line_refusal(rc, err)
    assert option[0] in line and "--restart" in line, line
    assert np.array_equal(volume_result(out), first)
    assert run_cli(volume_argv(root, out, *with_option(CT, option), "--restart"))[0] == 0
    rep = report(out)
    assert rep["resumed_from_step"] == 0 and rep["prepared_reused"] is False
    recorded = rep["identity"]["options"][option[0][2:].replace("-", "_")]
    assert recorded == (float(option[1]) if option[0] == "--span-deg" else int(option[1]))
    assert run_cli(volume_argv(root, tmp_path / "fresh", *with_option(CT, option)))[0] == 0
    assert np.array_equal(volume_result(out), volume_result(tmp_path / "fresh"))
    assert not np.array_equal(volume_result(out), first)


# -- item 5b: other bytes at the same path ---------------------------------------------------------------
def test_checkpoint_bytes_replaced_at_the_same_path_are_refused_then_recomputed(root, tmp_path):
    prior = tmp_path / "prior.pt"
    shutil.copy(root / "tiny.pt", prior)
    out = tmp_path / "out"
    argv = with_option(volume_argv(root, out), ["--checkpoint", str(prior)])
    assert run_cli(argv)[0] == 0
    first = volume_result(out)
    shutil.copy(root / "other.pt", prior)
    line = one_line_refusal(*run_cli(argv))
    assert "--checkpoint content changed" in line and "--restart" in line, line
    assert np.array_equal(volume_result(out), first)
    assert run_cli([*argv, "--restart"])[0] == 0
    assert run_cli(with_option(volume_argv(root, tmp_path / "fresh"), ["--checkpoint", str(root / "other.pt")]))[0] == 0
    assert np.array_equal(volume_result(out), volume_result(tmp_path / "fresh"))
    assert not np.array_equal(volume_result(out), first)


def test_input_bytes_replaced_with_the_same_size_and_time_are_refused(root, tmp_path):
    inp = tmp_path / "vol.nii"  # uncompressed: the other volume has the same size
    nifti_volume(inp, ct_volume((12, 12, 8)))
    stat = inp.stat()
    out = tmp_path / "out"
    argv = with_option(volume_argv(root, out), ["--input", str(inp)])
    assert run_cli(argv)[0] == 0
    nifti_volume(inp, ct_volume((12, 12, 8), seed=1))
    os.utime(inp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert inp.stat().st_size == stat.st_size
    line = one_line_refusal(*run_cli(argv))
    assert "--input content changed" in line, line


# -- item 5c: --restart recomputes everything; the same command resumes -------------------------------
def test_restart_recomputes_and_the_same_command_resumes(root, tmp_path):
    out = tmp_path / "out"
    argv = volume_argv(root, out, "--denoiser", "dds", "--steps", "2")
    assert run_cli(argv)[0] == 0
    first = volume_result(out)
    identity = report(out)["identity"]
    assert identity["files"]["checkpoint"]["sha256"] == digest(root / "tiny.pt")
    assert identity["files"]["input"]["sha256"] == digest(root / "vol.nii.gz")
    assert run_cli([*argv, "--threads", "2", "--no-progress"])[0] == 0  # neutral options: resumed
    assert (report(out)["resumed_from_step"], report(out)["prepared_reused"]) == (2, True)
    assert run_cli([*argv, "--restart"])[0] == 0
    assert (report(out)["resumed_from_step"], report(out)["prepared_reused"]) == (0, False)
    assert np.array_equal(volume_result(out), first)


def test_threads_do_not_change_the_numbers(root, tmp_path):
    """--threads is declared neutral: a fresh run with other threads gives the same volume."""
    argv = ["--denoiser", "dds", "--steps", "2"]
    assert run_cli(volume_argv(root, tmp_path / "one", *argv))[0] == 0
    assert run_cli(with_option(volume_argv(root, tmp_path / "two", *argv), ["--threads", "2"]))[0] == 0
    assert np.array_equal(volume_result(tmp_path / "one"), volume_result(tmp_path / "two"))


def test_a_2d_report_records_the_identity(root, tmp_path):
    out = tmp_path / "out"
    argv = ["reconstruct", "--task", "deblur", "--checkpoint", str(root / "tiny.pt"), "--input", str(root / "image.npy"),
            "--size", "16", "--steps", "1", "--sampler", "dds", "--threads", "1", "--no-progress", "--out", str(out)]
    assert run_cli(argv)[0] == 0
    identity = report(out)["identity"]
    assert identity["options"]["task"] == "deblur" and identity["options"]["size"] == 16
    assert identity["files"]["checkpoint"]["sha256"] == digest(root / "tiny.pt")
    assert identity["files"]["input"]["sha256"] == digest(root / "image.npy") and identity["files"]["measured"] is None
    assert identity["key"] == run_identity(parse(*argv)).key


# -- item 3: a training state made from other --data bytes is not resumed -------------------------------
TRAIN = [*TINY_NET, "--threads", "1", "--no-progress", "--checkpoint-minutes", "0"]


def test_train_resume_with_other_data_bytes_is_refused(tmp_path):
    data, out = tmp_path / "imgs.npy", tmp_path / "run"
    np.save(data, blob_images(4, 16)[:, 0].numpy())
    assert run_cli(["train", "--data", str(data), "--out", str(out), "--steps", "1", *TRAIN])[0] == 0
    state = digest(out / "state.pt")
    np.save(data, blob_images(4, 16)[:, 0].numpy()[::-1])
    line = one_line_refusal(*run_cli(["train", "--data", str(data), "--out", str(out), "--steps", "2", "--resume",
                                      *TRAIN]), "train")
    assert "--data content changed" in line, line
    assert digest(out / "state.pt") == state
    np.save(data, blob_images(4, 16)[:, 0].numpy())  # the bytes it was made from: resumed, given by path too
    assert run_cli(["train", "--data", str(data), "--out", str(out), "--steps", "2", "--resume",
                    str(out / "state.pt"), "--threads", "2", *TRAIN])[0] == 0
    assert digest(out / "state.pt") != state


# -- item 4 / 5d: no output may replace an input ------------------------------------------------------
def case_argv(root, tmp_path, command: str, dest: str) -> tuple[list[str], object]:
    """A run of ``command`` whose input ``dest`` is a file that one of its outputs would replace:
    (argv, that input file)."""
    out = tmp_path / "OUT"
    out.mkdir()
    tiny = str(root / "tiny.pt")
    if command == "train":
        data = tmp_path / "imgs.npy"
        np.save(data, blob_images(4, 16)[:, 0].numpy())
        train = ["train", "--data", str(data), "--steps", "1", *TRAIN]
        if dest == "data":
            target = out / "prior.pt"
            shutil.copy(data, target)
            return [*with_option(train, ["--data", str(target)]), "--out", str(out)], target
        run = tmp_path / "R"
        assert run_cli([*train, "--out", str(run)])[0] == 0
        state = run / "state.pt"
        return [*train, "--steps", "2", "--out", str(tmp_path / "R2"), "--resume", str(state), "--export",
                str(state)], state
    if command == "sample":
        target = out / "sample_000.png"
        shutil.copy(tiny, target)
        return ["sample", "--checkpoint", str(target), "--size", "16", "--count", "1", "--steps", "1",
                "--threads", "1", "--no-progress", "--out", str(out)], target
    if command == "demo":
        target = out / "demo.json"
        shutil.copy(tiny, target)
        return ["demo", "--smoke", "--no-progress", "--slices", "118", "--checkpoint", str(target),
                "--out", str(out)], target
    assert command == "reconstruct"
    if dest == "lowres":
        target = out / "panels.png"
        shutil.copy(root / "low.pt", target)
        return volume_argv(root, out, "--lowres", str(target), "--lowres-weight", "1"), target
    base = ["reconstruct", "--task", "deblur", "--checkpoint", tiny, "--input", str(root / "image.npy"), "--size",
            "16", "--steps", "1", "--inner", "1", "--sampler", "dds", "--threads", "1", "--no-progress",
            "--out", str(out)]
    if dest == "adapter":  # a real adapter, made by a run into OUT, then given back as the start of a rerun
        assert run_cli([*base, "--adapt", "--adapt-steps", "1"])[0] == 0
        return [*base, "--adapt", "--adapter", str(out / "adapter.pt")], out / "adapter.pt"
    target = out / {"input": "reconstruction.npy", "checkpoint": "report.json", "measured": "comparison.png"}[dest]
    source = {"input": root / "image.npy", "checkpoint": root / "tiny.pt", "measured": root / "image.npy"}[dest]
    shutil.copy(source, target)
    return with_option(base, [f"--{dest}", str(target)]), target


INPUT_CASES = [(c, d) for c in sorted(DECLARATIONS) for d in declaration(c).inputs]


@pytest.mark.parametrize("command, dest", INPUT_CASES, ids=[f"{c} --{d}" for c, d in INPUT_CASES])
def test_an_output_that_would_replace_an_input_is_refused(root, tmp_path, command, dest):
    argv, target = case_argv(root, tmp_path, command, dest)
    before = digest(target)
    line = one_line_refusal(*run_cli(argv), command)
    assert "would overwrite the input" in line, line
    assert digest(target) == before


@pytest.mark.parametrize("where", ["own folder", "own folder, bare --resume", "another folder"])
def test_train_export_onto_the_resumed_state_is_refused(tmp_path, where):
    data, run = tmp_path / "imgs.npy", tmp_path / "R"
    np.save(data, blob_images(4, 16)[:, 0].numpy())
    train = ["train", "--data", str(data), "--steps", "1", *TRAIN]
    assert run_cli([*train, "--out", str(run)])[0] == 0
    state = run / "state.pt"
    before = digest(state)
    resume = ["--resume"] if where == "own folder, bare --resume" else ["--resume", str(state)]
    out = tmp_path / "R2" if where == "another folder" else run
    line = one_line_refusal(*run_cli([*train, "--steps", "2", "--out", str(out), *resume, "--export", str(state)]),
                            "train")
    assert "would overwrite the input" in line and str(state) in line, line
    assert digest(state) == before
    assert run_cli([*train, "--steps", "2", "--out", str(run), *resume])[0] == 0  # its own run replaces it
