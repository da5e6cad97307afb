"""The parent process: the options, astra, running each check in a worker within the budget, the JSON."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .astra_shim import prepare_astra
from .record import write_json
from .settings import ASTRA_ENV, CAPS_S, CHECKS, RESERVE_S, ROOT, SCRIPT
from .worker import quiet_warnings, run_worker


def run_check(name: str, args: argparse.Namespace, env: dict[str, str], seconds: float, folder: Path) -> dict:
    """Run check ``name`` in a worker process for at most ``seconds``; its record (failed if it crashed,
    hung or left none)."""
    record = folder / f"{name}.json"
    cmd = [sys.executable, str(SCRIPT), "--worker", name, "--record", str(record),
           "--deadline-s", f"{seconds:.0f}", "--volume", args.volume, "--size", str(args.size),
           "--levels", str(args.levels), "--views", str(args.views), "--train-steps", str(args.train_steps)]
    if args.dry_run:
        cmd.append("--dry-run")
    t0 = time.perf_counter()
    log = folder / f"{name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=seconds)
            why = None if rc == 0 else f"the check's process ended with exit status {rc}"
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()
            why = f"stopped at its time limit of {seconds:.0f} s"
    try:
        rec = json.loads(record.read_text())
    except (OSError, ValueError):
        rec = {"check": name}
    if why is not None or rec.get("status") not in ("ok", "failed", "skipped"):
        rec.update(status="failed", reason=(why or "the check left no result") +
                   (f" (what it recorded before: {sorted(k for k in rec if k not in ('check', 'status'))})"
                    if len(rec) > 2 else ""))
        rec["log_tail"] = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    rec["seconds"] = time.perf_counter() - t0
    rec["time_limit_s"] = round(seconds)
    return rec


def run_all(args: argparse.Namespace) -> int:
    """Run the chosen checks one after the other within ``args.budget_s``, rewriting ``args.out`` after each."""
    t_start = time.perf_counter()
    names = [c for c in CHECKS if c == "environment" or not args.only or c in args.only]
    report: dict[str, Any] = {
        "script": "benchmarks/gpu_check.py", "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "dry_run": args.dry_run, "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "budget_s": args.budget_s, "order": names, "finished": False, "checks": {}}
    write_json(args.out, report)
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        folder = Path(tmp)
        report["astra"] = prepare_astra(env, args.astra_shim, folder / "shim")
        env[ASTRA_ENV] = json.dumps(report["astra"])
        for i, name in enumerate(names):
            left = args.budget_s - (time.perf_counter() - t_start)
            later = RESERVE_S.get(name, 0) if i + 1 < len(names) else 0
            seconds = min(CAPS_S[name], left - later)
            if seconds < 10:
                rec = {"check": name, "status": "skipped", "reason": f"the budget of {args.budget_s:.0f} s is spent"}
            else:
                print(f"[gpu_check] {name}: up to {seconds:.0f} s", flush=True)
                rec = run_check(name, args, env, seconds, folder)
            report["checks"][name] = rec
            print(f"[gpu_check] {name}: {rec['status']} in {rec.get('seconds', 0):.1f} s"
                  + (f" ({rec['reason'][:300]})" if rec.get("reason") else ""), flush=True)
            write_json(args.out, report)
    report["finished"] = True
    report["total_seconds"] = time.perf_counter() - t_start
    write_json(args.out, report)
    print(f"[gpu_check] wrote {args.out} ({report['total_seconds']:.0f} s)", flush=True)
    return 0


def parse_args(argv: list[str] | None = None, description: str | None = None) -> argparse.Namespace:
    """The options; ``description`` heads ``--help`` (the entry point passes its docstring's first line)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_check.json",
                    help="the JSON written (after every check)")
    ap.add_argument("--dry-run", action="store_true", help="the plan on the CPU with tiny sizes; CUDA parts skipped")
    ap.add_argument("--only", nargs="+", choices=CHECKS, metavar="NAME", help=f"run these checks: {', '.join(CHECKS)}")
    ap.add_argument("--budget-s", type=float, default=420.0, help="seconds for all checks together (default 420)")
    ap.add_argument("--size", type=int, default=256, help="side of the limited-angle volume (default 256)")
    ap.add_argument("--levels", type=int, default=20, help="most DDS levels of the limited-angle run (default 20)")
    ap.add_argument("--views", type=int, default=90, help="views over the 90 degrees (default 90)")
    ap.add_argument("--train-steps", type=int, default=20, help="timed training steps per run (default 20)")
    ap.add_argument("--volume", choices=("auto", "chest", "ellipsoids"), default="auto",
                    help="test volume: the bundled chest CT where installed (auto), or random ellipsoids")
    ap.add_argument("--astra-shim", choices=("auto", "never", "force"), default="auto",
                    help="build the cuFFT 11 shim when astra cannot load libcufft.so.11 (auto), never, or always")
    ap.add_argument("--worker", choices=CHECKS, help=argparse.SUPPRESS)
    ap.add_argument("--record", help=argparse.SUPPRESS)
    ap.add_argument("--deadline-s", type=float, default=300.0, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None, description: str | None = None) -> int:
    """Run one check (``--worker``, in a check's own process) or all the chosen ones; the exit status."""
    args = parse_args(argv, description)
    if args.worker:
        with quiet_warnings():
            return run_worker(args)
    return run_all(args)
