"""``padis3d --help`` and every subcommand's help are plain text in whole sentences (argparse prints
them as written: reST markup would show raw), the sampler options say the defaults that actually
run (``--budget``'s table for a 2D task), and ``padis3d info`` reports what this machine has and
quotes the precision benchmark's committed figures."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from pathlib import Path

import pytest

from padis3d.cli.main import DESCRIPTIONS, build_parser, main

ROOT = Path(__file__).resolve().parents[1]
MARKUP = re.compile(r"``|:(mod|func|class|data|meth|attr|doc|ref):`|\*\*")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _help_output(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


def _description_as_printed(text: str) -> str:
    """The paragraph between the usage lines and the first section of an argparse help."""
    blocks = [b for b in text.split("\n\n") if b.strip()]
    body = next(b for b in blocks[1:] if not b.lstrip().startswith(("usage:", "positional arguments:", "options:")))
    return " ".join(body.split())


COMMANDS = sorted(_subparsers(build_parser()))


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_has_a_whole_plain_text_description(command):
    argv = ["--help"] if command is None else [command, "--help"]
    text = _help_output(argv)
    assert not MARKUP.search(text), f"raw markup in 'padis3d {' '.join(argv)}':\n{text}"
    description = DESCRIPTIONS["padis3d" if command is None else command]
    printed = _description_as_printed(text)
    squeeze = lambda t: re.sub(r"\s+", "", t)   # argparse wraps lines, also after hyphens
    assert squeeze(printed) == squeeze(description), f"description printed cut or changed: {printed!r}"
    assert description.endswith(".") and description[0].isupper(), description
    for sentence in re.split(r"(?<=\.)\s+", description):   # whole sentences: each starts capitalised
        assert sentence[0].isupper() or sentence[0] in "'$-", sentence


def test_no_parser_text_holds_markup():
    """Every description, group title and option help of every parser (sphinx-argparse renders them too)."""
    def texts(parser, name):
        yield name, parser.description
        for group in parser._action_groups:
            yield f"{name} group {group.title}", group.description
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    yield f"{name} {choice.dest}", choice.help
                for sub, p in action.choices.items():
                    yield from texts(p, f"{name} {sub}")
            else:
                yield f"{name} {'/'.join(action.option_strings) or action.dest}", action.help

    found = [(where, text) for where, text in texts(build_parser(), "padis3d") if text and MARKUP.search(text)]
    assert not found, found
    assert all(_subparsers(build_parser())[c].description for c in COMMANDS)


def _option_help(command: str, option: str) -> str:
    parser = _subparsers(build_parser())[command]
    action = next(a for a in parser._actions if option in a.option_strings)
    return " ".join((action.help % {"default": action.default}).split())


def test_reconstruct_help_states_the_defaults_that_run():
    from padis3d.cli.reconstruct import settings_from_args
    from padis3d.solvers.reconstruct import SamplerSettings

    cpu = {t: SamplerSettings.for_task(t, "dds", "cpu") for t in ("ct20", "deblur", "sr4")}
    paper = SamplerSettings.for_task("ct20", "dds", "paper")
    steps = _option_help("reconstruct", "--steps")
    assert f"dds {cpu['ct20'].steps}" in steps and f"dds {paper.steps}" in steps
    assert f"padis/langevin/pc/ddnm {SamplerSettings.for_task('ct20', 'padis', 'cpu').steps}" in steps
    assert f"cpu: {cpu['ct20'].eta:g}; paper: {paper.eta:g}" in _option_help("reconstruct", "--eta")
    rho = _option_help("reconstruct", "--rho")
    assert f"CT {cpu['ct20'].rho:g}, deblur {cpu['deblur'].rho:g}, sr {cpu['sr4'].rho:g}" in rho
    assert f"dds {cpu['ct20'].sigma_max:g}" in _option_help("reconstruct", "--sigma-max")
    # ... and that is what runs: the default --budget cpu with --sampler dds on CT 20 views
    parser = _subparsers(build_parser())["reconstruct"]
    args = parser.parse_args(["--sampler", "dds", "--out", "unused"])
    run = settings_from_args(args, args.sampler_option_default)
    assert (run.steps, run.eta, run.rho, run.sigma_max) == (cpu["ct20"].steps, cpu["ct20"].eta, cpu["ct20"].rho,
                                                           cpu["ct20"].sigma_max)
    # the parser defaults (what the volume tasks and --budget custom take) are unchanged and stated
    assert f"--budget custom: {parser.get_default('steps')})" in steps
    assert "volume tasks" not in _option_help("reconstruct", "--init")   # --init does not act on volumes


def test_sample_help_states_its_own_defaults():
    steps = _option_help("sample", "--steps")
    assert "--budget" not in steps and steps.endswith(f"(default: {_subparsers(build_parser())['sample'].get_default('steps')})")


def _benchmark_ratios() -> tuple[str, str]:
    text = (ROOT / "benchmarks/results/precision.txt").read_text()
    per_eval = re.search(r"^bf16\s+[\d.]+\s+([\d.]+)\s", text, re.M).group(1)
    fp32, bf16 = map(float, re.search(r"demo total: .*fp32 ([\d.]+) s, bf16 ([\d.]+) s", text).groups())
    return per_eval, f"{fp32 / bf16:.2f}"


def test_precision_evidence_is_the_committed_benchmark():
    from padis3d.precision import AUTO_EVIDENCE

    per_eval, demo = _benchmark_ratios()
    assert f"{per_eval}x faster per network evaluation" in AUTO_EVIDENCE
    assert f"demo {demo}x faster end to end" in AUTO_EVIDENCE
    assert "benchmarks/results/precision.txt" in AUTO_EVIDENCE and "benchmarks/precision.py" in AUTO_EVIDENCE
    readme = (ROOT / "README.md").read_text()
    assert "2.15x" not in readme and "1.58x" not in readme and "AMX CPU" not in AUTO_EVIDENCE
    if "x per network evaluation" in readme:
        assert f"{per_eval}x per network evaluation" in readme and f"{demo}x for the demo" in readme


def test_info_reports_the_cpu_features_it_detects(tmp_path, monkeypatch):
    from padis3d.cli import info

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse avx512f avx512_bf16\n\n"
                       "processor\t: 1\nmodel name\t: Some CPU\nflags\t\t: fpu sse avx512f avx512_bf16\n")
    model, flags = info.cpu_description(cpuinfo)
    assert model == "Some CPU" and "avx512_bf16" in flags
    assert info.bf16_features(flags) == "avx512_bf16 yes, amx_bf16 no"
    assert info.cpu_description(tmp_path / "absent")[1] is None

    monkeypatch.setattr("padis3d.precision.cpu_bf16_flags", lambda: ["avx512_bf16"])
    line = info.precision_line("cpu")
    assert line.startswith("bf16, relying on AVX512-BF16.") and "benchmarks/results/precision.txt" in line
    monkeypatch.setattr("padis3d.precision.cpu_bf16_flags", lambda: ["amx_bf16", "avx512_bf16"])
    assert "AMX-BF16" in info.precision_line("cpu") and "not measured" in info.precision_line("cpu")
    monkeypatch.setattr("padis3d.precision.cpu_bf16_flags", lambda: [])
    assert info.precision_line("cpu").startswith("fp32")


def test_info_matches_this_machine():
    from padis3d.cli.info import bf16_features, cpu_description, environment_report

    report = environment_report()
    assert report["cpu bf16 (/proc/cpuinfo)"] == bf16_features(cpu_description()[1])
    import torch

    assert report["cpu capability (torch)"] == torch.backends.cpu.get_cpu_capability()
    assert report["torch threads"] == str(torch.get_num_threads())
