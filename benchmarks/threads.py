"""Benchmark: torch's CPU thread count for the CLI, side by side: the same 2D
``padis3d reconstruct --task ct --views 20 --sampler dds`` (and, with ``--demo``, ``padis3d demo
--slices 115``) in fresh subprocesses with one thread, two threads and torch's default, the variants
alternating (so background load hits each alike). Prints per run the wall, user and system seconds,
the 1-minute load average before and after and the PSNR (threads must not change it), then the
medians and the ratios against one thread, with the core count and torch's default thread count.
Run by hand (numbers are printed, never asserted):

    python benchmarks/threads.py --runs 2 --demo [--demo-runs 1] --note "..." --out benchmarks/results/threads.txt

``reconstruct`` gets ``--threads N`` (default variant: ``--threads`` of torch's default count, since
``--threads`` itself defaults to 1); the demo has no such option and gets ``OMP_NUM_THREADS=N`` (default
variant: the variable removed). ``OMP_NUM_THREADS`` is removed
from every run's environment otherwise, so "default" is what a user gets from a plain shell.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

RECONSTRUCT = ["reconstruct", "--task", "ct", "--views", "20", "--sampler", "dds", "--no-progress"]
DEMO = ["demo", "--slices", "115", "--no-progress"]
VARIANTS = ("1", "2", "default")
DEFAULT_THREADS = [0]  # torch's default thread count, probed once in main()


def torch_default_threads() -> int:
    """torch's intra-op thread count in a fresh process without ``OMP_NUM_THREADS``."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env,
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def command_for(job: str, variant: str) -> tuple[list[str], dict[str, str]]:
    """The CLI arguments and environment of one run of ``job`` (reconstruct or demo) with ``variant``."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if job == "reconstruct":
        threads = str(DEFAULT_THREADS[0]) if variant == "default" else variant
        return RECONSTRUCT + ["--threads", threads], env
    if variant != "default":
        env["OMP_NUM_THREADS"] = variant
    return list(DEMO), env


def patch_prior_psnr(job: str, out: Path) -> float:
    """PSNR of the patch prior's reconstruction, from the run's report (``report.json`` / ``demo.json``)."""
    if job == "reconstruct":
        return float(json.loads((out / "report.json").read_text())["metrics"]["dds"]["psnr"])
    mean = json.loads((out / "demo.json").read_text())["mean"]
    return float(mean[list(mean)[-1]]["psnr"])  # the last method is the patch prior


def one_run(job: str, variant: str, out: Path) -> dict[str, float]:
    """One fresh ``padis3d JOB``: wall, user and system seconds, the load average before/after, PSNR."""
    args, env = command_for(job, variant)
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "padis3d.cli", *args, "--out", str(out)], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return {"wall_s": wall, "user_s": after.ru_utime - before.ru_utime, "sys_s": after.ru_stime - before.ru_stime,
            "load_before": load_before, "load_after": os.getloadavg()[0], "psnr": patch_prior_psnr(job, out)}


def run_job(job: str, runs: int, tmp: Path) -> None:
    """All runs of ``job``, variants alternating; per-run lines, then medians and ratios to one thread."""
    rows: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    args = " ".join(RECONSTRUCT if job == "reconstruct" else DEMO)
    how = ("--threads N; default: --threads " + str(DEFAULT_THREADS[0]) + ", torch's default" if job == "reconstruct"
           else "OMP_NUM_THREADS=N; default: no OMP_NUM_THREADS")
    print(f"\n## padis3d {args} --out TMP  (1 / 2: {how})", flush=True)
    for i in range(runs):
        for v in VARIANTS:
            r = one_run(job, v, tmp / f"{job}-{v}-{i}")
            rows[v].append(r)
            print(f"threads {v:>7}, run {i + 1}: wall {r['wall_s']:6.1f} s  user {r['user_s']:6.1f} s  "
                  f"sys {r['sys_s']:5.1f} s  (user+sys)/wall {(r['user_s'] + r['sys_s']) / r['wall_s']:.2f}  "
                  f"load {r['load_before']:.2f} -> {r['load_after']:.2f}  PSNR {r['psnr']:.2f} dB", flush=True)
    med = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in rows.items()}
    print("median          " + "".join(f"{'threads ' + v:>16}" for v in VARIANTS)
          + "".join(f"{v + ' / 1':>12}" for v in VARIANTS[1:]))
    for k in ("wall_s", "user_s", "sys_s", "psnr"):
        print(f"{k:<16}" + "".join(f"{med[v][k]:16.2f}" for v in VARIANTS)
              + "".join(f"{med[v][k] / med['1'][k]:12.2f}" for v in VARIANTS[1:]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=2, help="runs per variant (default 2)")
    p.add_argument("--demo", action="store_true", help="also time 'padis3d demo --slices 115'")
    p.add_argument("--demo-runs", type=int, default=None, help="runs per variant of the demo (default: --runs)")
    p.add_argument("--note", default="", help="what else runs on the machine, printed in the header")
    p.add_argument("--out", type=Path, default=None, help="also write the output to this file")
    args = p.parse_args()
    saved = args.out.open("w") if args.out else None

    class Tee(io.TextIOBase):
        """stdout and, line by line, ``--out`` (a stopped run keeps what it measured)."""

        def write(self, s: str) -> int:
            for stream in (sys.__stdout__, saved):
                if stream is not None:
                    stream.write(s)
                    stream.flush()
            return len(s)

    with redirect_stdout(Tee()):
        load = os.getloadavg()
        DEFAULT_THREADS[0] = torch_default_threads()
        print(f"# benchmarks/threads.py, {time.strftime('%Y-%m-%d %H:%M')}: {os.cpu_count()} cores "
              f"(os.cpu_count), torch's default {DEFAULT_THREADS[0]} threads; load average at start "
              f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)")
        if args.note:
            print(f"# machine: {args.note}")
        with tempfile.TemporaryDirectory() as tmp:
            run_job("reconstruct", args.runs, Path(tmp))
            if args.demo:
                run_job("demo", args.demo_runs or args.runs, Path(tmp))
    if saved is not None:
        saved.close()


if __name__ == "__main__":
    main()
