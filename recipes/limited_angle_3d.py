"""90° limited-angle parallel-beam CT of the chest CT test block (ALGORITHMS §5).

The held-out axial slices 110-132 at 128² (voxels ~2.8 x 2.8 x 2.5 mm), 90 views over
0..89°, noiseless, slice by slice. Rows: FBP-Hann, 3D ADMM-TV (isotropic TV in x, y and z;
λ of the 2D 90° task, tuned on training slices), DDS with the 2D patch prior slice by slice,
DDS with the slab prior (k adjacent slices as channels, random slab shift along z), the slab
prior alternating at random with slice-jump slabs (slices i, i+k, i+2k; DiffusionBlend++),
and, on request (``--rows``), the slab prior with TV along z in the data step (λ = ``tv_z``;
on training slices it did no better than more CG steps: ``results/tune_limited_angle_3d.md``)
and the slab prior with test-time adaptation (``slab prior + SS``, in memory: LoRA on the slab
network fitted to the measurements at the late levels, :mod:`padis3d.adapt`). Issue 17 adds the
true 3D cube prior (``cube prior``: P³ cubes, ``--cube``) and the two-scale prior (``two-scale
prior``: the slab prior, or with ``--two-scale-fine cube`` the cube prior, for the detail plus the
low-resolution prior of the block averaged by 4 per axis, ``--lowres``, for the coarse structure;
:mod:`padis3d.priors.two_scale`).
Metrics: PSNR / SSIM averaged over the axial, coronal and sagittal slices of the block.
Every row runs in a fresh process (spawned), so its peak resident memory (``VmHWM``,
:func:`padis3d.memory.peak_rss_mb`) is its own: the table gives it next to the seconds, and
``results.json`` also the peak after the process's set-up (imports, operator, measurements).
Resumable: finished rows are kept in ``OUT/results.json`` (a row is recomputed when a setting
it depends on changes, the two-scale row also when its coarse weight was re-measured);
reconstructions in ``OUT/*.npy``. Rows may be computed by separate processes at once
(``--rows``), e.g. one per core.
Writes ``OUT/table.md`` and ``OUT/planes.png`` (axial, coronal, sagittal centre planes).

    python recipes/limited_angle_3d.py --out results/limited_angle_3d
    python recipes/limited_angle_3d.py --cg-iters 15 --out results/limited_angle_3d_cg15
    python recipes/limited_angle_3d.py --rows "cube prior" "two-scale prior" --out results/limited_angle_3d
    python recipes/limited_angle_3d.py --smoke --out /tmp/la3d     # seconds: the plumbing only
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fcntl
import json
import math
import multiprocessing
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import padis3d  # noqa: E402
from padis3d.adapt import AdaptSettings, TestTimeAdapter  # noqa: E402
from padis3d.atomic import atomic_path, write_json  # noqa: E402
from padis3d.baselines.tv import admm_tv  # noqa: E402
from padis3d.baselines.tv_weights import tv_weight  # noqa: E402
from padis3d.memory import peak_rss_mb  # noqa: E402
from padis3d.priors.checkpoint import library_versions  # noqa: E402
from padis3d.metrics import volume_metrics  # noqa: E402
from padis3d.operators import ParallelBeam3D  # noqa: E402
from padis3d.cli.options import coarse_weight_option  # noqa: E402
from padis3d.priors.coarse_weight import weight_for, weight_report  # noqa: E402
from padis3d.priors.factory import two_scale_prior_from, volume_prior_from  # noqa: E402
from padis3d.solvers.reconstruct import ProgressBar  # noqa: E402
from padis3d.io.sample_data import TEST_SLICES, chest_ct_slices  # noqa: E402
from padis3d.solvers import dds, geometric_sigmas, init_state  # noqa: E402


@dataclass(frozen=True)
class Setup:
    """Block, geometry and budgets."""

    z0: int = TEST_SLICES[0]
    z1: int = TEST_SLICES[-1] + 1
    size: int = 128
    views: int = 90
    span_deg: float = 90.0
    tv_iters: int = 1000
    steps: int = 100
    sigma_max: float = 10.0
    rho: float = 1.0
    cg_iters: int = 60
    eta: float = 0.85
    tv_z: float = 0.02
    seed: int = 0
    slice_prior: str = "checkpoints/chest128_patch.pt"
    slab_prior: str = "checkpoints/chest128_slab3.pt"
    cube_prior: str = "checkpoints/chest128_cube.pt"
    lowres_prior: str = "checkpoints/chest32_lowres.pt"  # the two-scale prior's coarse prior (--downsample 4)
    two_scale_fine: str = "slab"  # the two-scale prior's fine prior: "slab" or "cube"
    # w(σ) of the two-scale prior (equation (2) of padis3d.priors.two_scale): "measured" (the table of
    # recipes/calibrate_two_scale.py for this pair of checkpoints, on training slices) or a number in [0, 1]
    lowres_weight: str = "measured"
    # slab tiles at the block's ends: "replicated" (padis3d.priors.slab_ends, issue 17); stored slab rows
    # without it had padding slices in those tiles and are recomputed
    slab_ends: str = "replicated"
    # test-time adaptation of the slab prior (row SS; issue 15): LoRA rank 4, lr 1e-3, <= 10 Adam
    # steps at every 5th level with σ <= 0.5 (the 2D setting of results/tune_adaptation.md)
    adapt_every: int = 5
    adapt_max_sigma: float = 0.5
    adapt_steps: int = 10


SMOKE = Setup(z0=110, z1=118, size=32, tv_iters=5, steps=2, adapt_every=1, adapt_steps=2)
JUMP, TV_Z, SS = "slab prior + slice-jump slabs", "slab prior + TV along z", "slab prior + SS"
CUBE, TWO = "cube prior", "two-scale prior"
ROWS = ("FBP-Hann", "ADMM-TV 3D", "2D patch prior, slice by slice", "slab prior", JUMP, CUBE, TWO, TV_Z, SS)
DEFAULT_ROWS = ROWS[:7]  # TV along z did not beat plain CG steps on training slices (results/tune_limited_angle_3d.md)
_BLOCK = ("z0", "z1", "size", "views", "span_deg")
_DDS = _BLOCK + ("steps", "sigma_max", "rho", "cg_iters", "eta", "seed")


def row_settings(row: str, s: Setup) -> dict:
    """The settings one row's result depends on: a stored row is reused only while these match."""
    keys = {"FBP-Hann": _BLOCK, "ADMM-TV 3D": _BLOCK + ("tv_iters",),
            "2D patch prior, slice by slice": _DDS + ("slice_prior",), "slab prior": _DDS + ("slab_prior", "slab_ends"),
            JUMP: _DDS + ("slab_prior",), TV_Z: _DDS + ("slab_prior", "tv_z", "slab_ends"),
            SS: _DDS + ("slab_prior", "adapt_every", "adapt_max_sigma", "adapt_steps", "slab_ends"),
            CUBE: _DDS + ("cube_prior",),
            TWO: _DDS + ("two_scale_fine", fine_prior_key(s), "lowres_prior", "lowres_weight")
            + (("slab_ends",) if s.two_scale_fine == "slab" else ())}[row]
    return {k: getattr(s, k) for k in keys}


def fine_prior_key(s: Setup) -> str:
    """The Setup field of the two-scale prior's fine prior (``slab_prior`` or ``cube_prior``)."""
    return {"slab": "slab_prior", "cube": "cube_prior"}[s.two_scale_fine]


def row_prior(row: str, s: Setup, shape: tuple[int, ...]):
    """The volume prior of a DDS row over ``shape`` ``(Z, n, n)`` and the steps of each checkpoint it loads."""
    if row == TWO:
        fine = padis3d.load_prior(ROOT / getattr(s, fine_prior_key(s)))
        coarse = padis3d.load_prior(ROOT / s.lowres_prior)
        weight = weight_for(s.lowres_weight, fine.path, coarse.path)
        return (two_scale_prior_from(fine, coarse, shape, coarse_weight=weight),
                {str(fine.path.name): fine.meta.get("steps"), str(coarse.path.name): coarse.meta.get("steps")})
    path = s.cube_prior if row == CUBE else s.slab_prior if row.startswith("slab prior") else s.slice_prior
    prior = padis3d.load_prior(ROOT / path)
    return volume_prior_from(prior, shape, slice_jump=row == JUMP), {str(prior.path.name): prior.meta.get("steps")}


def reconstruct_row(row: str, s: Setup, op: ParallelBeam3D, y: torch.Tensor, progress: bool
                    ) -> tuple[np.ndarray, dict]:
    """One row's reconstruction ``(Z, n, n)`` in [0, 1] and the training steps of the checkpoints it used."""
    if row == "FBP-Hann":
        return op.fbp(y, "hann")[0, 0].clamp(0, 1).numpy(), {}
    if row == "ADMM-TV 3D":
        return admm_tv(op, y, tv_weight("la90", 128), max_iter=s.tv_iters, step_ratio=1e4)[0, 0].numpy(), {}
    prior, steps = row_prior(row, s, tuple(op.in_shape))
    g = torch.Generator().manual_seed(s.seed)
    x = init_state(prior, (1, 1), s.sigma_max, generator=g)
    tta = None
    if row == SS:  # in memory: the out-of-core runner cannot adapt (README "Test-time adaptation")
        tta = TestTimeAdapter(prior, op, y, AdaptSettings(first=0, every=s.adapt_every, max_sigma=s.adapt_max_sigma,
                                                          steps=s.adapt_steps, seed=s.seed,
                                                          validate=False))  # dds() itself has no un-adapted fallback
        prior = tta.prior
    with ProgressBar(s.steps, row, disable=not progress) as bar:
        if tta is not None:
            tta.on_step = bar.adapt_step
        rec = dds(prior, x, geometric_sigmas(s.sigma_max, 0.005, s.steps), operator=op, y=y, rho=s.rho,
                  cg_iters=s.cg_iters, eta=s.eta, tv_z=s.tv_z if row == TV_Z else 0.0,
                  generator=g, callback=bar, adapt=tta)
    return rec[0, 0].clamp(0, 1).numpy(), steps


def block_operator(s: Setup, shape: tuple[int, ...]) -> ParallelBeam3D:
    """The limited-angle geometry of the block ``shape`` ``(Z, n, n)``."""
    return ParallelBeam3D(shape, views=s.views, span=math.radians(s.span_deg))


def row_process(row: str, s: Setup, shape: tuple[int, ...], y: torch.Tensor, threads: int, progress: bool) -> dict:
    """One row in this process (a fresh one, spawned by :func:`run_row`): the reconstruction, its
    seconds (the row only), this process's peak resident memory after set-up (imports, operator,
    measurements) and at the end (MiB, ``VmHWM``), and the checkpoints' training steps."""
    torch.set_num_threads(threads)
    op = block_operator(s, shape)
    setup_mb = peak_rss_mb()
    t0 = time.perf_counter()
    rec, steps = reconstruct_row(row, s, op, y, progress)
    return {"rec": rec, "seconds": time.perf_counter() - t0, "peak_rss_mb": round(peak_rss_mb(), 1),
            "setup_rss_mb": round(setup_mb, 1), "checkpoint_steps": steps}


def run_row(row: str, s: Setup, shape: tuple[int, ...], y: torch.Tensor, threads: int, progress: bool) -> dict:
    """:func:`row_process` in a freshly spawned process, so its peak memory is the row's alone (a
    process's high-water mark never falls, and a forked child would inherit this one's pages)."""
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(row_process, row, s, shape, y, threads, progress).result()


def planes_figure(path: Path, truth: np.ndarray, recs: dict[str, np.ndarray], metrics: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from padis3d.atomic import save_figure

    items = [("truth", truth)] + list(recs.items())
    z, yy, xx = (n // 2 for n in truth.shape)
    fig, axes = plt.subplots(3, len(items), figsize=(2.6 * len(items), 6.2), squeeze=False)
    for j, (name, v) in enumerate(items):
        for i, (plane, img) in enumerate((("axial", v[z]), ("coronal", v[:, yy][::-1]), ("sagittal", v[:, :, xx][::-1]))):
            axes[i, j].imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1, aspect="auto" if i else "equal")
            m = metrics.get(name)
            extra = f"\n{m[f'psnr_{plane}']:.2f} dB / {m[f'ssim_{plane}']:.3f}" if m else ""
            axes[i, j].set_title(f"{name}: {plane}{extra}", fontsize=7)
            axes[i, j].set_axis_off()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def table(results: dict, s: Setup) -> str:
    kind = "test" if s.z0 in TEST_SLICES and s.z1 - 1 in TEST_SLICES else "training"
    out = [f"90° limited-angle parallel-beam CT ({s.views} views on [0°, {s.span_deg:g}°)), chest CT {kind} slices "
           f"{s.z0}-{s.z1 - 1} at {s.size}²; DDS {s.steps} levels from σ = {s.sigma_max:g}, ρ = {s.rho:g}, "
           f"{s.cg_iters} CG steps, η = {s.eta:g}"
           + (f"; TV along z: λ = {s.tv_z:g}, 3 ADMM rounds" if TV_Z in results else "")
           + (f"; two-scale prior: the {s.two_scale_fine} prior for the detail, the low-resolution prior "
              f"`{Path(s.lowres_prior).name}` for the coarse structure, weight w(σ) {s.lowres_weight}"
              + (" (`recipes/calibrate_two_scale.py`, training slices)" if s.lowres_weight == "measured" else "")
              if TWO in results else "")
           + ". PSNR dB / SSIM, mean over the slices of each plane. Peak MiB: the peak resident memory (`VmHWM`) "
           "of the row's own process, a fresh one per row (Python, torch, the block's measurements and the row); "
           "- where a row was stored before it was measured.", "",
           "| method | axial | coronal | sagittal | mean of 3 | seconds | peak MiB |", "|---|---|---|---|---|---|---|"]
    for row in ROWS:
        if row in results:
            m = results[row]["metrics"]
            cells = [f"{m[f'psnr_{p}']:.2f} / {m[f'ssim_{p}']:.3f}" for p in ("axial", "coronal", "sagittal", "3views")]
            peak = results[row].get("peak_rss_mb")
            out.append(f"| {row} | " + " | ".join(cells) + f" | {results[row]['seconds']:.0f} | "
                       + ("-" if peak is None else f"{peak:.0f}") + " |")
    return "\n".join(out) + "\n"


def load_store(path: Path, s: Setup) -> dict:
    """The stored results, less rows made with other settings than ``s`` (recomputed)."""
    store = json.loads(path.read_text()) if path.exists() else {}
    results = store.get("results", {})
    for row, r in list(results.items()):
        r.setdefault("settings", {k: store["setup"].get(k) for k in row_settings(row, s)})  # stores before per-row
        if r["settings"] != row_settings(row, s):
            del results[row]
    return {**store, "setup": asdict(s), "versions": library_versions(), "results": results}


def run(args: argparse.Namespace) -> dict:
    s = SMOKE if args.smoke else Setup()
    s = replace(s, seed=args.seed, **{k: v for k, v in (("slab_prior", args.slab), ("slice_prior", args.patch),
                                                          ("cube_prior", args.cube), ("lowres_prior", args.lowres),
                                                          ("two_scale_fine", args.two_scale_fine),
                                                          ("lowres_weight", args.lowres_weight),
                                                          ("tv_z", args.tv_z), ("cg_iters", args.cg_iters))
                                 if v is not None})
    if args.block:
        s = replace(s, z0=args.block[0], z1=args.block[1])
    torch.set_num_threads(args.threads)
    weight = None
    if TWO in (args.rows or DEFAULT_ROWS):  # before any work: a measured weight must exist for this pair
        fine_path, coarse_path = ROOT / getattr(s, fine_prior_key(s)), ROOT / s.lowres_prior
        weight = weight_report(weight_for(s.lowres_weight, fine_path, coarse_path))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    store_path = out / "results.json"
    store = load_store(store_path, s)
    truth = chest_ct_slices(range(s.z0, s.z1), s.size)
    op = block_operator(s, truth.shape)
    y = op(torch.from_numpy(truth)[None, None])
    recs = {}
    for row in args.rows or DEFAULT_ROWS:
        npy = out / f"{row.split(',')[0].replace(' ', '_')}.npy"
        stored = store["results"].get(row)
        # a two-scale row is also stale when its pair's weight was re-measured since
        if stored is not None and npy.exists() and (row != TWO or stored.get("coarse_weight") == weight):
            recs[row] = np.load(npy)
            continue
        done = run_row(row, s, truth.shape, y, args.threads, not args.no_progress)
        recs[row], seconds = done.pop("rec"), done["seconds"]
        with atomic_path(npy) as tmp, open(tmp, "wb") as f:
            np.save(f, recs[row])
        result = {"metrics": volume_metrics(recs[row], truth), **done, "settings": row_settings(row, s),
                  **({"coarse_weight": weight} if row == TWO else {})}
        with open(out / ".results.lock", "w") as lock:  # rows may be computed by several processes at once
            fcntl.flock(lock, fcntl.LOCK_EX)
            store = load_store(store_path, s)
            store["results"][row] = result
            write_json(store_path, store)
        m = store["results"][row]["metrics"]
        print(f"{row}: PSNR axial/coronal/sagittal {m['psnr_axial']:.2f} / {m['psnr_coronal']:.2f} / "
              f"{m['psnr_sagittal']:.2f} dB in {seconds:.0f} s, peak {result['peak_rss_mb']:.0f} MiB", flush=True)
    store = load_store(store_path, s)  # with rows that other processes finished meanwhile
    for row in store["results"]:
        if row not in recs and (out / f"{row.split(',')[0].replace(' ', '_')}.npy").exists():
            recs[row] = np.load(out / f"{row.split(',')[0].replace(' ', '_')}.npy")
    recs = {row: recs[row] for row in ROWS if row in recs}
    planes_figure(out / "planes.png", truth, recs, {r: v["metrics"] for r, v in store["results"].items()})
    text = table(store["results"], s)
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text(text)
    print(text)
    return store


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rows", nargs="+", choices=ROWS, default=None)
    ap.add_argument("--slab", default=None, help="slab prior checkpoint (default: checkpoints/chest128_slab3.pt)")
    ap.add_argument("--patch", default=None, help="2D patch prior (default: checkpoints/chest128_patch.pt)")
    ap.add_argument("--cube", default=None, help="cube prior, row 'cube prior' (default: checkpoints/chest128_cube.pt)")
    ap.add_argument("--lowres", default=None, help="the two-scale prior's low-resolution prior, trained with "
                    "'padis3d train --downsample F' (default: checkpoints/chest32_lowres.pt)")
    ap.add_argument("--two-scale-fine", choices=("slab", "cube"), default=None,
                    help="the two-scale prior's fine prior: the slab prior (default) or the cube prior")
    ap.add_argument("--lowres-weight", default=None, type=lambda t: str(coarse_weight_option(t)), help="the two-scale prior's coarse weight w(σ): 'measured' "
                    "(default; recipes/calibrate_two_scale.py) or a number in [0, 1] (1: equation (1))")
    ap.add_argument("--tv-z", type=float, default=None, help="λ of TV along z (default 0.02)")
    ap.add_argument("--cg-iters", type=int, default=None, help="CG steps of the data step (per ADMM round with TV)")
    ap.add_argument("--block", type=int, nargs=2, default=None, metavar=("Z0", "Z1"),
                    help="axial slices Z0..Z1-1 instead of the test block (tuning on training slices)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="8 slices at 32², 2 levels, 5 TV iterations")
    ap.add_argument("--no-progress", action="store_true")
    run(ap.parse_args(argv))


if __name__ == "__main__":
    main()
