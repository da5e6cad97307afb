"""Profile: where the time of a reconstruction goes, in fp32 and bf16, one thread. Run by hand:

    OMP_NUM_THREADS=1 python benchmarks/profile_reconstruction.py --out benchmarks/results/profile_reconstruction.txt
    OMP_NUM_THREADS=1 python benchmarks/profile_reconstruction.py --quick     # a smoke check

Scenarios: (1) 2D DDS on chest CT slice 120 at 128², 20 views (the demo's sampler: 100 levels
from σ = 10, ρ = 1, 5 CG steps); (2) Algorithm 1 (``padis``) at the CPU budget of
``padis3d/solvers/defaults.py`` (200 evaluations with the data gradient through the network);
(3) one volume band: ``padis3d reconstruct --task ct3d-parallel`` on 16 slices (110-125) as one
band, out of core through zarr, ``--volume-steps`` DDS levels.

Explicit timers wrap the existing functions for the run (monkeypatching, undone afterwards);
each category counts its own time exclusive of the categories nested inside it, so the rows
add up to the wall time. Categories: network forward (``EDMDenoiser.forward``), network
backward (``torch.autograd.grad``), tiling extract (``_Tiling.inputs``), tiling positions
(``_Tiling.positions``), tiling pad/crop, tiling scatter and rest (the rest of ``map_window`` /
``vjp_tiles`` / ``map_tiles_store``: index, allocation, writing tiles back), data step operator
(A and Aᵀ, astra), data step CG (the rest of ``conjugate_gradient``), I/O (checkpoint, chest CT
slices, zarr reads/writes, the volume preparation's reading), bookkeeping (the rest: sampler
arithmetic, noise, metrics, figures). It prints seconds and shares per category and the tiling
engine's share of the network time (goal of issue 16: at most 2 %).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# benchmarks/tiling.py is named like the package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "chest128_patch.pt"
TILING = ("tiling: extract", "tiling: positions", "tiling: pad/crop", "tiling: scatter and rest")
NETWORK = ("network forward", "network backward")
ORDER = (*NETWORK, *TILING, "data step: A, Aᵀ (astra)", "data step: CG vector ops", "I/O", "bookkeeping")


class Profile:
    """Exclusive wall time per category; a per-thread stack of open timers (dask runs band work on threads)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.local = threading.local()
        self.lock = threading.Lock()

    def _stack(self) -> list[list]:
        if not hasattr(self.local, "stack"):
            self.local.stack = []
        return self.local.stack

    @contextlib.contextmanager
    def timer(self, category: str) -> Iterator[None]:
        stack = self._stack()
        frame = [category, time.perf_counter(), 0.0]  # category, start, time of nested timers
        stack.append(frame)
        try:
            yield
        finally:
            stack.pop()
            total = time.perf_counter() - frame[1]
            with self.lock:
                self.seconds[category] += total - frame[2]
            if stack:
                stack[-1][2] += total

    def wrap(self, owner: Any, name: str, category: str, patches: list) -> None:
        """Time every call of ``owner.name`` as ``category`` (undone by :func:`unpatch`)."""
        own = name in vars(owner)
        original = inspect.getattr_static(owner, name) if isinstance(owner, type) else getattr(owner, name)
        func = original.__func__ if isinstance(original, staticmethod) else original

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.timer(category):
                return func(*args, **kwargs)
        timed.__wrapped__ = func  # type: ignore[attr-defined]
        setattr(owner, name, staticmethod(timed) if isinstance(original, staticmethod) else timed)
        patches.append((owner, name, original if own else None))


def unpatch(patches: list) -> None:
    for owner, name, original in reversed(patches):
        if original is None:  # inherited: drop the wrapper, the base class's method shows again
            delattr(owner, name)
        else:
            setattr(owner, name, original)
    patches.clear()


@contextlib.contextmanager
def instrumented(profile: Profile) -> Iterator[None]:
    """Wrap the functions of every category for the duration of the block."""
    import zarr

    from importlib import import_module  # not `import a.b as c`: padis3d.solvers.dds is also a function's name

    sample_data, checkpoint, patch, dds, pipeline, stream, store = (import_module(m) for m in (
        "padis3d.io.sample_data", "padis3d.priors.checkpoint", "padis3d.priors.patch", "padis3d.solvers.dds",
        "padis3d.volume.pipeline", "tiling.stream", "tiling.store"))
    from padis3d.operators.base import LinearOperator
    from padis3d.priors.network import EDMDenoiser
    from tiling import TileGrid

    patches: list = []
    w = profile.wrap
    try:
        w(EDMDenoiser, "forward", "network forward", patches)
        w(torch.autograd, "grad", "network backward", patches)
        w(stream._Tiling, "inputs", "tiling: extract", patches)
        w(stream._Tiling, "positions", "tiling: positions", patches)
        for name in ("pad_image", "crop"):
            w(TileGrid, name, "tiling: pad/crop", patches)
        w(stream, "map_window", "tiling: scatter and rest", patches)
        w(store, "map_window", "tiling: scatter and rest", patches)  # imported by name there
        w(patch, "vjp_tiles", "tiling: scatter and rest", patches)  # imported by name there
        # map_tiles_store is not wrapped: its band work runs in dask's worker threads (map_window, timed
        # there); its own thread only waits, which the bookkeeping row keeps
        w(LinearOperator, "_apply", "data step: A, Aᵀ (astra)", patches)
        w(dds, "conjugate_gradient", "data step: CG vector ops", patches)
        w(checkpoint, "read_checkpoint", "I/O", patches)
        w(sample_data, "chest_ct_slices", "I/O", patches)
        w(zarr.Array, "__getitem__", "I/O", patches)
        w(zarr.Array, "__setitem__", "I/O", patches)
        w(pipeline, "prepare_volume", "I/O", patches)  # reading, resizing and projecting the input
        yield
    finally:
        unpatch(patches)


def run_2d(sampler: str, precision: str, quick: bool) -> None:
    """A 2D reconstruction of chest CT slice 120 (128², 20 views) with the shipped prior."""
    import padis3d
    from padis3d.io.sample_data import chest_ct_slices
    from padis3d.operators import ParallelBeam2D
    from padis3d.priors import patch_prior_from
    from padis3d.solvers.reconstruct import SamplerSettings, reconstruct

    x = torch.from_numpy(chest_ct_slices([120], 128))[:, None]
    op = ParallelBeam2D(128, views=20)
    prior = patch_prior_from(padis3d.load_prior(CHECKPOINT, precision=precision))
    if sampler == "dds":
        settings = SamplerSettings(sampler="dds", steps=5 if quick else 100, sigma_max=10.0, rho=1.0, cg_iters=5)
    else:
        settings = SamplerSettings.for_task("ct20", "padis", "cpu", **({"steps": 2} if quick else {}))
    y = op(x)
    reconstruct(prior, op, y, settings, baseline=op.fbp(y).clamp(0, 1))


def run_volume(precision: str, steps: int) -> None:
    """One band of 16 slices through the volume CLI (in process), DDS ``steps`` levels."""
    from padis3d.cli.main import main

    with tempfile.TemporaryDirectory() as tmp:
        rc = main(["reconstruct", "--task", "ct3d-parallel", "--slices", "110", "126", "--band", "16", "--steps",
                   str(steps), "--threads", "1", "--no-progress", "--precision", precision, "--out", f"{tmp}/out"])
    if rc != 0:
        raise SystemExit(f"the volume run failed with exit code {rc}")


def warm_up() -> None:
    """Imports, astra's first projector and oneDNN's first kernels in both precisions, outside any
    profile (a cold start would otherwise land in the first scenario's bookkeeping)."""
    import padis3d
    from padis3d.operators import ParallelBeam2D
    from padis3d.priors import patch_prior_from

    op = ParallelBeam2D(128, views=20)
    op.adjoint(op(torch.zeros(1, 1, 128, 128)))
    for precision in ("fp32", "bf16"):
        prior = patch_prior_from(padis3d.load_prior(CHECKPOINT, precision=precision))
        x = prior.embed(torch.zeros(1, 1, 128, 128))
        prior.denoise(x, 1.0)
        prior.denoise_vjp(x, 1.0, lambda d: d)


def profiled(fn: Callable[[], None]) -> tuple[dict[str, float], float]:
    profile = Profile()
    with instrumented(profile):
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
    seconds = dict(profile.seconds)
    seconds["bookkeeping"] = wall - sum(seconds.values())
    return seconds, wall


def table(title: str, runs: dict[str, tuple[dict[str, float], float]]) -> list[str]:
    names = list(runs)
    lines = [title, f"{'category':<28}" + "".join(f"{n + ' s':>10} {'share':>6}" for n in names)]
    for cat in ORDER:
        lines.append(f"{cat:<28}" + "".join(f"{runs[n][0].get(cat, 0.0):>10.2f} {runs[n][0].get(cat, 0.0) / runs[n][1]:>6.1%}"
                                           for n in names))
    lines.append(f"{'wall':<28}" + "".join(f"{runs[n][1]:>10.2f} {1:>6.0%}" for n in names))
    for n in names:
        s, _ = runs[n]
        net = sum(s.get(c, 0.0) for c in NETWORK)
        til = sum(s.get(c, 0.0) for c in TILING)
        lines.append(f"{n}: tiling engine {til:.2f} s = {til / max(net, 1e-9):.2%} of the network time ({net:.2f} s)")
    if len(names) == 2:
        a, b = names
        lines.append(f"wall {a} / {b}: {runs[a][1] / runs[b][1]:.2f}x; network {a} / {b}: "
                     f"{sum(runs[a][0].get(c, 0) for c in NETWORK) / max(1e-9, sum(runs[b][0].get(c, 0) for c in NETWORK)):.2f}x")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", nargs="+", choices=("dds", "padis", "volume"), default=["dds", "padis", "volume"])
    ap.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    ap.add_argument("--volume-steps", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="5 DDS levels, 2 Algorithm-1 levels, 2 volume levels")
    ap.add_argument("--out", type=Path, default=None, help="also write the printed text here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    lines = [f"benchmarks/profile_reconstruction.py{' --quick (SMOKE)' if args.quick else ''}: one thread, "
             f"shipped chest prior, seconds (exclusive) and share of the wall time"]
    print(lines[0], flush=True)
    warm_up()
    titles = {"dds": "(1) 2D DDS, slice 120, 128², 20 views, " + ("5" if args.quick else "100") + " evaluations",
              "padis": "(2) Algorithm 1 (padis), CPU budget" + (" (2 levels)" if args.quick else
                                                                 ", 200 evaluations with the gradient through the network"),
              "volume": f"(3) volume band: ct3d-parallel, slices 110-125 (one band of 16), "
                        f"{2 if args.quick else args.volume_steps} DDS levels, zarr work arrays"}
    for scenario in args.scenarios:
        runs = {}
        for precision in args.precisions:
            if scenario == "volume":
                fn = lambda p=precision: run_volume(p, 2 if args.quick else args.volume_steps)  # noqa: E731
            else:
                fn = lambda s=scenario, p=precision: run_2d(s, p, args.quick)  # noqa: E731
            runs[precision] = profiled(fn)
        block = table(titles[scenario], runs)
        print("\n".join(block), flush=True)
        lines += block
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
