"""Run the documented mutants (tests/mutation/mutants.py) against the unit tests of their modules.

    python tests/mutation/run.py                 # all mutants, a table on stdout
    python tests/mutation/run.py --only CG       # the mutants whose name contains "CG"
    python tests/mutation/run.py --out results/mutation.md

Each mutant is applied to a private copy of the checkout (the working tree is never touched),
the mutant's tests run there with ``pytest -x``, and the copy is restored. A mutant is *killed*
when its tests fail, *survived* when they pass, *stale* when its original line is no longer in
the file. Exit code 1 if any mutant survived or is stale. Hand-written instead of mutmut or
cosmic-ray: those mutate every line of a module and run the whole selection per mutant, which
is hours on two cores here; a curated list of plausible bugs with targeted tests runs in minutes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.mutation.mutants import MUTANTS, Mutant  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def copy_checkout(dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files of the checkout, copied to ``dest``."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for name in files:
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def checkout_of(copy: Path, rev: str) -> None:
    """Replace the copy by git revision ``rev`` (code and tests, to measure an older suite on
    its own code), keeping this runner and its mutant list."""
    saved = Path(tempfile.mkdtemp()) / "mutation"
    shutil.copytree(copy / "tests" / "mutation", saved)
    for child in copy.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(copy)], input=archive, check=True)
    shutil.rmtree(copy / "tests" / "mutation", ignore_errors=True)
    shutil.copytree(saved, copy / "tests" / "mutation")


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, float]:
    """('passed' | 'failed' | 'no tests', seconds) of ``pytest -x`` over those of ``tests`` that
    exist inside ``copy``; a timeout counts as failed (a mutant that hangs its tests is caught)."""
    t0 = time.perf_counter()
    present = [t for t in tests if (copy / t).exists()]
    if not present:
        return "no tests", 0.0
    env = {**os.environ, "PYTHONPATH": str(copy)}
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *present],
                              cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        status = {0: "passed", 1: "failed"}.get(proc.returncode, "no tests" if proc.returncode == 5 else "error")
    except subprocess.TimeoutExpired:
        status = "failed"
    return status, time.perf_counter() - t0


def run_mutant(copy: Path, m: Mutant, timeout: float) -> tuple[str, float]:
    path = copy / m.file
    text = path.read_text()
    if text.count(m.original) != 1:
        return "stale", 0.0
    try:
        path.write_text(text.replace(m.original, m.mutated))
        status, seconds = run_tests(copy, m.tests, timeout)
    finally:
        path.write_text(text)
    return {"failed": "killed", "passed": "survived", "no tests": "survived"}.get(status, "error"), seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help="run the mutants whose name contains this text")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant's tests")
    p.add_argument("--out", type=Path, default=None, help="also write the table (Markdown) here")
    p.add_argument("--rev", default=None, metavar="REV",
                   help="run on git revision REV's code and tests (to measure the suite before a change; "
                        "a mutant whose line REV does not have is stale)")
    args = p.parse_args(argv)
    chosen = [m for m in MUTANTS if args.only.lower() in m.name.lower()]
    rows, counts = [], {"killed": 0, "survived": 0, "stale": 0, "error": 0}
    with tempfile.TemporaryDirectory(prefix="padis3d-mutants-") as tmp:
        copy = Path(tmp)
        copy_checkout(copy)
        if args.rev:
            checkout_of(copy, args.rev)
        broken = set()
        for tests in sorted({m.tests for m in chosen}):  # unmutated they must pass, or a kill means nothing
            status, _ = run_tests(copy, tests, args.timeout)
            if status not in ("passed", "no tests"):
                broken.add(tests)
                print(f"the unmutated tests fail ({status}): {' '.join(tests)}; their mutants are errors",
                      file=sys.stderr)
        for m in chosen:
            status, seconds = ("error", 0.0) if m.tests in broken else run_mutant(copy, m, args.timeout)
            counts[status] += 1
            rows.append(f"| {m.name} | `{m.file}` | {status} | {seconds:.1f} |")
            print(rows[-1], flush=True)
    table = "\n".join(["| mutant | file | result | test seconds |", "|---|---|---|---|", *rows])
    summary = (f"{counts['killed']} of {len(chosen)} killed, {counts['survived']} survived, "
               f"{counts['stale']} stale, {counts['error']} errors"
               + (f" (code and tests of {args.rev})" if args.rev else ""))
    print(summary)
    if args.out:
        command = " ".join(["python tests/mutation/run.py", *(argv if argv is not None else sys.argv[1:])])
        args.out.write_text(f"# Mutation run\n\nCommand: `{command}`\n\n{table}\n\n{summary}\n")
    return 0 if counts["killed"] == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
