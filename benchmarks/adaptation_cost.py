"""Benchmark: what test-time adaptation costs (issue 15), measured side by side in one run.

(a) Memory at 512²: ``padis3d reconstruct --task ct --size 512`` under ``--memory-budget-mb``, plain
    DDS and DDS with ``--adapt``, each in a fresh subprocess; peak resident memory (``VmHWM``
    polled from outside, or the run's own report if larger) against the run's allowance
    (budget + model + start-up overhead [+ adaptation's fixed cost]) x 1.1.
(b) Time at 128²: DDS with the CPU defaults (100 levels) on CT 20, plain and adapted (the
    adaptation options given, default: the AdaptSettings defaults), wall seconds and their ratio,
    and the share of the adapted run spent in adaptation (two processes one after the other: a
    change of machine load between them changes the ratio).
(c) Per call, in one process, interleaved (minimum of repeats, so load hits all alike): one
    network evaluation of the 128² image (9 tiles), the same through the adapter, and one Adam
    step of adaptation, in fp32 and bf16: the Adam step's cost in network evaluations.

Training slice 90 of the chest CT (timing and memory only; no quality is judged here). Run by hand:

    python benchmarks/adaptation_cost.py                     # all parts (~8 min on one idle core)
    python benchmarks/adaptation_cost.py --part memory --size 256 --steps 2   # quicker
    python benchmarks/adaptation_cost.py --adapt-args "--adapt-first 0 --adapt-every 5 --adapt-max-sigma 0.5"
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from padis3d.memory import wait_polling_peak  # noqa: E402


def run(argv: list[str], out: Path) -> tuple[float, dict]:
    """``padis3d reconstruct ARGV --out OUT`` in a subprocess: (peak MiB, report.json)."""
    proc = subprocess.Popen([sys.executable, "-m", "padis3d", "reconstruct", *argv, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    polled = wait_polling_peak(proc, 0.02)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr.read().decode()[-2000:])
    report = json.loads((out / "report.json").read_text())
    return max(polled, report["memory"]["peak_rss_mb"]), report


def memory_part(args: argparse.Namespace, tmp: Path) -> None:
    import numpy as np

    from padis3d.io.sample_data import chest_ct_slices

    # the slice as a file: reading the bundled volume itself peaks above the sampler (the whole NIfTI)
    np.save(tmp / "slice90.npy", chest_ct_slices([90], args.size)[0].astype(np.float32))
    base = ["--task", "ct", "--views", "20", "--input", str(tmp / "slice90.npy"), "--size", str(args.size),
            "--sampler", "dds",
            "--steps", str(args.steps), "--threads", "1", "--memory-budget-mb", str(args.budget_mb),
            "--no-progress", "--checkpoint", args.checkpoint]
    adapt = ["--adapt", "--adapt-first", str(args.steps), "--adapt-steps", "2"]  # every level, 2 Adam steps
    print(f"(a) memory at {args.size}², budget {args.budget_mb} MiB, {args.steps} DDS levels")
    print("| run | peak MiB | allowance MiB | overhead MiB | model MiB | adaptation fixed MiB | within |")
    print("|---|---|---|---|---|---|---|")
    for name, extra in (("plain DDS", []), ("DDS + adaptation", adapt)):
        peak, report = run(base + extra, tmp / name.replace(" ", "_"))
        m = report["memory"]
        print(f"| {name} | {peak:.0f} | {m['allowance_mb']:.0f} | {m['overhead_mb']:.0f} | {m['model_mb']:.1f} | "
              f"{m.get('adaptation_fixed_mb', 0):.0f} | {'yes' if peak <= m['allowance_mb'] else 'NO'} |")


def time_part(args: argparse.Namespace, tmp: Path) -> None:
    base = ["--task", "ct", "--views", "20", "--slice", "90", "--sampler", "dds", "--threads", "1", "--no-progress",
            "--checkpoint", args.checkpoint]
    adapt = ["--adapt", *shlex.split(args.adapt_args)]
    print(f"\n(b) time at 128², CT 20, DDS CPU defaults; adaptation: {' '.join(adapt)}")
    rows = {}
    for name, extra in (("plain", []), ("adapted", adapt)):
        _, report = run(base + extra, tmp / f"time_{name}")
        rows[name] = report
    plain, adapted = rows["plain"]["seconds"], rows["adapted"]["seconds"]
    a = rows["adapted"]["adaptation"]
    print("| run | seconds | PSNR dB (slice 90) | Adam steps | adapted levels | adaptation seconds |")
    print("|---|---|---|---|---|---|")
    for name, report in rows.items():
        psnr = report["metrics"]["dds"]["psnr"]
        extra = (f"{a['steps_taken']} | {len(a['adapted_levels'])} | {a['seconds']:.1f}" if name == "adapted"
                 else "- | - | -")
        print(f"| {name} | {report['seconds']:.1f} | {psnr:.2f} | {extra} |")
    print(f"time ratio adapted / plain: {adapted / plain:.2f}x; adaptation is {a['seconds'] / adapted:.0%} of the "
          f"adapted run; {a['seconds'] / max(a['steps_taken'], 1) / (plain / 100):.1f} DDS levels per Adam step")


def step_part(args: argparse.Namespace) -> None:
    import time

    import torch

    from padis3d import load_prior
    from padis3d.adapt import AdaptSettings, TestTimeAdapter
    from padis3d.io.sample_data import chest_ct_slices
    from padis3d.operators import ParallelBeam2D
    from padis3d.priors.factory import patch_prior_from

    torch.set_num_threads(1)
    image = torch.from_numpy(chest_ct_slices([90], 128))[:, None]
    op = ParallelBeam2D(128, views=20)
    y = op(image)
    print("\n(c) per call at 128² (9 tiles), one thread, minimum of 5 interleaved repeats")
    print("| precision | network evaluation ms | through the adapter ms | Adam step ms | Adam step / evaluation |")
    print("|---|---|---|---|---|")
    for precision in ("fp32", "bf16"):
        prior = patch_prior_from(load_prior(args.checkpoint, precision=precision), (128, 128), "auto")
        x = prior.embed(image) + 0.1 * torch.randn((1, 1, *prior.state_shape), generator=torch.Generator().manual_seed(0))
        tta = TestTimeAdapter(prior, op, y, AdaptSettings(steps=1, patience=100))
        calls = {"plain": lambda: prior.denoise(x, 0.1, shift=(3, 4)),
                 "adapted": lambda: tta.prior.denoise(x, 0.1, shift=(3, 4)), "step": lambda: tta.adapt(x, 0.1)}
        best = {k: float("inf") for k in calls}
        for _ in range(6):  # the first round warms up
            for k, fn in calls.items():
                t0 = time.perf_counter()
                fn()
                best[k] = min(best[k], time.perf_counter() - t0) if _ else best[k]
        print(f"| {precision} | {best['plain'] * 1e3:.0f} | {best['adapted'] * 1e3:.0f} | {best['step'] * 1e3:.0f} | "
              f"{best['step'] / best['plain']:.1f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("memory", "time", "step", "all"), default="all")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--steps", type=int, default=3, help="DDS levels of the memory runs")
    p.add_argument("--budget-mb", type=float, default=64.0)
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "chest128_patch.pt"))
    p.add_argument("--adapt-args", default="", help="adaptation options of the timed run (default: AdaptSettings)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("memory", "all"):
            memory_part(args, Path(tmp))
        if args.part in ("time", "all"):
            time_part(args, Path(tmp))
        if args.part in ("step", "all"):
            step_part(args)


if __name__ == "__main__":
    main()
