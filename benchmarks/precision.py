"""Benchmark: fp32 against bf16 (and bf16 + channels_last) for the shipped 2D patch prior,
side by side in one run, one thread. Run by hand (ratios are printed, never asserted):

    OMP_NUM_THREADS=1 python benchmarks/precision.py --out benchmarks/results/precision.txt
    OMP_NUM_THREADS=1 python benchmarks/precision.py --quick     # a smoke check: seconds

(a) one network evaluation of 9 tiles of 48² (one 128² slice), ``torch.inference_mode``:
    median of interleaved repeats, so background load hits every variant alike; largest
    difference of the denoised tiles from fp32;
(b) ``padis3d demo`` end to end (the DDS demo on test slices 115 and 125), one after the other:
    ``before`` = the demo before issue 16 (fp32, DDS 100 levels from noise at σ = 10, η = 0.85),
    ``fp32`` and ``bf16`` = today's defaults (DDS 50 levels from the FBP at σ = 0.5, η = 1) in each
    precision: seconds and PSNR/SSIM of every method, ratios against ``before``;
(c) training at the ``cpu`` preset (128² chest CT training slices, patches 16/32/48, batch 8)
    for ``--train-seconds`` CPU seconds each: steps per CPU second and the loss at equal steps
    (the same seed, so both see the same batches).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

# benchmarks/tiling.py is named like the package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "chest128_patch.pt"


def evaluation_times(repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per evaluation and max |D - D_fp32| per variant."""
    import padis3d

    g = torch.Generator().manual_seed(0)
    x = torch.rand(9, 1, 48, 48, generator=g)
    pos = torch.rand(9, 2, 48, 48, generator=g) * 2 - 1
    sigma = torch.full((9,), 0.5)
    fp32 = padis3d.load_prior(CHECKPOINT)
    bf16 = padis3d.load_prior(CHECKPOINT, precision="bf16")
    cl = padis3d.load_prior(CHECKPOINT, precision="bf16")
    cl.model.to(memory_format=torch.channels_last)
    variants = {"fp32": lambda: fp32(x, sigma, pos), "bf16": lambda: bf16(x, sigma, pos),
                "bf16+channels_last": lambda: cl(x.contiguous(memory_format=torch.channels_last), sigma,
                                                 pos.contiguous(memory_format=torch.channels_last))}
    times: dict[str, list[float]] = {k: [] for k in variants}
    with torch.inference_mode():
        ref = variants["fp32"]()
        diff = {k: float((fn() - ref).abs().max()) for k, fn in variants.items()}  # also the warm-up
        for _ in range(repeats):
            for k, fn in variants.items():
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}, diff


DEMO_BEFORE = {"precision": "fp32", "steps": 100, "sigma_max": 10.0, "eta": 0.85, "init": "noise"}


def demo_runs(quick: bool) -> dict[str, dict]:
    """``run_demo`` before issue 16 and with today's defaults in fp32 and bf16 (``quick``: smoke configs)."""
    from padis3d.cli.demo import DemoConfig, run_demo

    out = {}
    for name, change in (("before", DEMO_BEFORE), ("fp32", {"precision": "fp32"}), ("bf16", {"precision": "bf16"})):
        cfg = replace(DemoConfig(), **change)
        cfg = cfg.smoke() if quick else cfg
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            report = run_demo(tmp, cfg, progress=False)
        report["total_seconds"] = time.perf_counter() - t0
        out[name] = report
    return out


def training_runs(cpu_seconds: float, quick: bool) -> dict[str, object]:
    """The cpu preset's training for ``cpu_seconds`` of CPU time per precision, same seed."""
    from padis3d.priors.network import CPU_CONFIG
    from padis3d.training.data import PatchSampler, chest_ct_training_images
    from padis3d.training.loop import TrainSettings, new_state, train

    images, info = chest_ct_training_images(64 if quick else 128)
    out = {}
    for precision in ("fp32", "bf16"):
        sampler = PatchSampler(images, [16, 32, 48] if not quick else [16, 32], [0.2, 0.3, 0.5] if not quick
                               else [0.5, 0.5], batch=8)
        s = TrainSettings(steps=10**9, budget=cpu_seconds, budget_clock="cpu", lr=2e-4, ema_halflife_patches=20_000,
                          log_every=5, checkpoint_every=1e9, progress=False, seed=0, precision=precision)
        with tempfile.TemporaryDirectory() as tmp:
            state = train(new_state(CPU_CONFIG, s), sampler, s, tmp, info)
        out[precision] = state
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--train-seconds", type=float, default=60.0, help="CPU seconds of training per precision")
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--quick", action="store_true", help="few repeats, the demo's smoke config, 10 s of training")
    ap.add_argument("--out", type=Path, default=None, help="also write the printed text here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        args.repeats, args.train_seconds = 3, 10.0
    from padis3d.precision import auto_precision

    lines = [f"benchmarks/precision.py: one thread; CPU capability {torch.backends.cpu.get_cpu_capability()}; "
             f"auto picks {auto_precision('cpu')[0]}"]

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    say(lines.pop())
    med, diff = evaluation_times(args.repeats)
    say(f"\n(a) one evaluation, 9 tiles of 48², shipped chest prior, inference_mode, median of {args.repeats}")
    say(f"{'variant':<20} {'ms':>8} {'x fp32':>7} {'max |D - D_fp32|':>17}")
    for k, t in med.items():
        say(f"{k:<20} {t * 1e3:>8.1f} {med['fp32'] / t:>7.2f} {diff[k]:>17.2e}")
    if not args.skip_demo:
        runs = demo_runs(args.quick)
        say(f"\n(b) padis3d demo end to end{' (SMOKE config)' if args.quick else ''}: mean over slices "
            f"{runs['fp32']['config']['slices']}; before = fp32, DDS 100 levels from noise (σ 10, η 0.85); "
            "fp32 / bf16 = today's DDS 50 levels from the FBP (σ 0.5, η 1)")
        say(f"{'method':<11} " + " ".join(f"{v + ' PSNR/SSIM':>17} {v + ' s':>8}" for v in runs)
            + " " + " ".join(f"{'dPSNR ' + v:>11} {'x ' + v:>7}" for v in list(runs)[1:]))
        for name, m in runs["before"]["mean"].items():
            cells = " ".join(f"{r['mean'][name]['psnr']:>11.2f}/{r['mean'][name]['ssim']:.3f} "
                             f"{r['mean'][name]['seconds']:>8.1f}" for r in runs.values())
            gains = " ".join(f"{runs[v]['mean'][name]['psnr'] - m['psnr']:>+11.3f} "
                             f"{m['seconds'] / max(runs[v]['mean'][name]['seconds'], 1e-9):>7.2f}"
                             for v in list(runs)[1:])
            say(f"{name:<11} {cells} {gains}")
        total = {v: r["total_seconds"] for v, r in runs.items()}
        say("demo total: " + ", ".join(f"{v} {t:.1f} s" for v, t in total.items()) + "; before / now: "
            + ", ".join(f"{v} {total['before'] / total[v]:.2f}x" for v in list(runs)[1:]))
    if not args.skip_train:
        states = training_runs(args.train_seconds, args.quick)
        say(f"\n(c) training, cpu preset (batch 8, patches 16/32/48), {args.train_seconds:.0f} CPU s each, seed 0")
        rate = {p: s.step / max(s.cpu_seconds, 1e-9) for p, s in states.items()}
        for p, s in states.items():
            say(f"{p}: {s.step} steps in {s.cpu_seconds:.1f} CPU s = {rate[p]:.3f} steps/CPU-s "
                f"({rate[p] * 3600:.0f} per CPU-hour)")
        say(f"bf16 / fp32 steps per CPU second: {rate['bf16'] / rate['fp32']:.2f}x")
        h32 = {h[0]: h[1] for h in states["fp32"].history}
        common = [(k, h32[k], v) for k, v in ((h[0], h[1]) for h in states["bf16"].history) if k in h32]
        if common:
            say("loss at equal steps (mean over each 5-step window): step fp32 bf16")
            for k, a, b in common:
                say(f"  {k:>5} {a:.6f} {b:.6f}")
            say(f"mean over the common windows: fp32 {statistics.mean(a for _, a, _ in common):.6f}, "
                f"bf16 {statistics.mean(b for _, _, b in common):.6f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
