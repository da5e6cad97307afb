"""``padis3d reconstruct --adapt``: the adapter file and the report, the base checkpoint untouched,
a saved adapter continued (``--adapter``), and every misuse refused before any work, in one line."""

from __future__ import annotations

import hashlib
import json

from padis3d.adapt import load_adapter
from padis3d.priors.checkpoint import load_prior
from tests.reliability.helpers import assert_clean_failure, run_cli
from tests.solvers.test_reconstruct_cli import files, run  # noqa: F401 - the tiny prior fixture

ADAPT = ["--task", "deblur", "--sampler", "dds", "--steps", "4", "--adapt", "--adapt-first", "0", "--adapt-every", "2",
         "--adapt-max-sigma", "100",
         "--adapt-steps", "2", "--adapt-lr", "0.01", "--threads", "1",
         "--no-adapt-validate"]  # the adapter's mechanics; held-out validation: tests/adapt/test_validated_adaptation.py


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lora_b_norm(path, base) -> float:
    adapter = load_adapter(path, base)
    return float(sum(p.detach().norm() ** 2 for p in adapter.lora_b.values()) ** 0.5)


def test_adapt_writes_the_adapter_and_records_every_setting(files, tmp_path):  # noqa: F811
    before = digest(files / "tiny.pt")
    assert run(files, tmp_path / "a", *ADAPT, "--adapt-rank", "2") == 0
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    a = report["adaptation"]
    assert a["settings"]["rank"] == 2 and a["settings"]["lr"] == 0.01 and a["settings"]["first"] == 0
    assert a["settings"]["noise_sigma"] == 0.01  # the simulated deblur noise sets the discrepancy level
    assert a["adapted_levels"] == [0, 2] and 0 < a["steps_taken"] <= 4
    assert report["outputs"][-1] == "adapter.pt" and a["adapter"] == "adapter.pt"
    assert digest(files / "tiny.pt") == before  # the base checkpoint is never modified
    base = load_prior(files / "tiny.pt")
    first = lora_b_norm(tmp_path / "a" / "adapter.pt", base)
    assert first > 0  # a fresh LoRA starts at B = 0: the steps changed it
    # continued from the saved adapter: its settings (rank 2) apply, and it starts where it stopped
    assert run(files, tmp_path / "b", *ADAPT, "--adapter", str(tmp_path / "a" / "adapter.pt")) == 0
    b = json.loads((tmp_path / "b" / "report.json").read_text())["adaptation"]
    assert b["settings"]["rank"] == 2 and b["started_from"].endswith("adapter.pt")
    assert lora_b_norm(tmp_path / "b" / "adapter.pt", base) != first


def test_the_adapted_reconstruction_differs_from_the_plain_one(files, tmp_path):  # noqa: F811
    plain = ["--task", "deblur", "--sampler", "dds", "--steps", "4", "--threads", "1"]
    assert run(files, tmp_path / "p", *plain) == 0 and run(files, tmp_path / "a", *ADAPT) == 0
    import numpy as np

    p, a = (np.load(tmp_path / d / "reconstruction.npy") for d in "pa")
    assert np.isfinite(a).all() and np.abs(p - a).max() > 1e-6


def test_misuse_is_refused_before_any_work(files, tmp_path):  # noqa: F811
    tiny = str(files / "tiny.pt")
    cases = [
        (["--task", "deblur", "--adapt-lr", "0.01"], "--adapt-lr given without --adapt"),
        (["--task", "deblur", "--adapter", tiny], "--adapter given without --adapt"),
        (["--task", "deblur", "--adapt", "--sampler", "langevin"], "--sampler dds or padis"),
        (["--task", "denoise", "--adapt", "--sampler", "dds"], "out-of-core volume runner"),
        (["--task", "deblur", "--adapt", "--sampler", "dds", "--adapter", tiny], "not a padis3d adapter"),
    ]
    for extra, fragment in cases:
        out = tmp_path / "never"
        rc, err = run_cli(["reconstruct", "--checkpoint", tiny, "--input", str(files / "image.npy"), "--size", "32",
                           "--steps", "2", "--no-progress", "--out", str(out), *extra])
        assert_clean_failure(rc, err, fragment, out)


def test_the_cli_defaults_are_the_settings_defaults_and_options_override_them():
    from padis3d.adapt import AdaptSettings
    from padis3d.cli.adapt import adapt_settings
    from padis3d.cli.main import build_parser

    parse = lambda *extra: build_parser().parse_args(["reconstruct", "--out", "o", "--adapt", *extra])  # noqa: E731
    assert adapt_settings(parse(), None) == AdaptSettings(seed=0)
    assert adapt_settings(parse(), 0.02).noise_sigma == 0.02  # the simulated noise sets the discrepancy level
    given = adapt_settings(parse("--adapt-lr", "0.5", "--adapt-every", "3", "--adapt-noise", "0", "--seed", "7"), 0.02)
    assert (given.lr, given.every, given.noise_sigma, given.seed) == (0.5, 3, 0.0, 7)
    assert given.rank == AdaptSettings().rank
