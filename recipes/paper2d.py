"""The paper's Table 1 and ablations at CPU scale (or the paper's geometry with ``--config gpu``).

Studies (``--studies``, default all):

* ``main``: CT 20 / 8 views, deblur 9x9, SR x4 on the held-out chest CT slices; rows
  baseline (FBP / blurred / bicubic), ADMM-TV, PnP-ADMM (the patch prior's denoiser at a
  fixed σ), whole-image diffusion and the patch prior, each diffusion prior with the paper's
  Algorithm 1 (DPS + Langevin) and with the DDS data step (Tweedie + CG, DDIM re-noising).
* ``patch-size``: CT 20 with the patch prior at reconstruction tiles 16 / 32 / 48 / whole.
* ``sampler``: CT 20 with the patch prior: Langevin, predictor-corrector, VE-DDNM, PaDIS (Algorithm 1)
  on the same budget, DDS; and PaDIS at the paper's budget (1000 evaluations).
* ``positions``: CT 20, patch priors trained with and without position channels (same data, same budget).
* ``data-size``: CT 20, patch vs whole-image priors trained on 12 / 25 / 50 / 100 slices.

The ablation priors are trained here, each to the same total budget ``--train-budget H``
(CPU hours on CPU, so other jobs on the machine do not change it; wall hours on CUDA),
``--train-jobs J`` at a time, in resumable run folders under ``--runs``; a prior that has
its budget is reused. Resumable: each (study, task, row, slice) result is kept in
``OUT.json`` (keyed by the settings and the prior's training steps) and skipped on a rerun.
Writes ``OUT.md`` and the figures ``OUT_ablations.png`` and ``OUT_reconstructions.png``.

    python recipes/paper2d.py --out results/paper2d                       # everything (CPU-hours)
    python recipes/paper2d.py --studies main --slices 115 125 --out results/paper2d_quick
    python recipes/paper2d.py --studies main --slices 115 120 125 --patch checkpoints/chest128_patch_bf16.pt \\
        --out results/paper2d_patch_bf16                                   # another patch prior
    python recipes/paper2d.py --smoke --out /tmp/paper2d_smoke            # seconds: the plumbing only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import padis3d  # noqa: E402
from padis3d.atomic import atomic_path, write_json  # noqa: E402
from padis3d.baselines.pnp import pnp_admm  # noqa: E402
from padis3d.baselines.tasks import make_task  # noqa: E402
from padis3d.baselines.tv import admm_tv  # noqa: E402
from padis3d.baselines.tv_weights import tv_weight  # noqa: E402
from padis3d.priors.checkpoint import library_versions, read_checkpoint  # noqa: E402
from padis3d.metrics import psnr, ssim  # noqa: E402
from padis3d.priors.factory import patch_prior_from  # noqa: E402
from padis3d.solvers.reconstruct import SamplerSettings, reconstruct  # noqa: E402
from padis3d.io.sample_data import TEST_SLICES, chest_ct_slices  # noqa: E402
from recipes.paper2d_figures import ablation_figure, reconstruction_figure  # noqa: E402


@dataclass(frozen=True)
class Config:
    """Geometry, checkpoints and sampler budgets of one configuration."""

    size: int = 128
    patch: str = "checkpoints/chest128_patch.pt"
    whole: str = "checkpoints/chest128_whole.pt"
    train_preset: str = "cpu"
    budget: str = "cpu"  # sampler budget of padis3d/solvers/defaults.py (cpu: 200 evaluations, paper: 1000)
    overrides: dict = field(default_factory=dict)  # SamplerSettings fields on top of the defaults (smoke)
    tv_iters: int | None = None  # None: the task's default (500; 1000 for 90°)
    pnp_iters: int = 30


CONFIGS = {
    "cpu": Config(),
    # The paper: 256², P = 56, ~59M parameters (trained here with --train-budget on CUDA);
    # the paper's budget (1000 evaluations for Algorithm 1 and its ablation samplers).
    "gpu": Config(size=256, patch="runs/paper-gpu_patch/prior.pt", whole="runs/paper-gpu_whole/prior.pt",
                  train_preset="paper-gpu", budget="paper"),
}
SMOKE = replace(CONFIGS["cpu"], overrides={"steps": 2, "inner": 2}, tv_iters=5, pnp_iters=2)
# Sampler settings per (task, sampler, budget): padis3d/solvers/defaults.py (chosen on training slices).
PNP_SIGMA = 0.05  # the prior's denoiser noise level inside PnP-ADMM


@dataclass(frozen=True)
class Row:
    """One table row: ``method`` in baseline / tv / pnp / diffusion; for diffusion the prior
    (``patch``, ``whole`` or a checkpoint name to train), the tile at reconstruction and the sampler."""

    label: str
    method: str
    prior: str = "patch"
    tile: str = "auto"
    sampler: str = "padis"
    budget: str | None = None  # None: the configuration's


def diffusion(label: str, prior: str = "patch", sampler: str = "padis", tile: str = "auto",
              budget: str | None = None) -> Row:
    return Row(label, "diffusion", prior, tile, sampler, budget)


SAMPLER_ROWS = (("Langevin", "langevin"), ("predictor-corrector", "pc"), ("VE-DDNM", "ddnm"),
                ("PaDIS (Algorithm 1)", "padis"), ("DDS", "dds"))
STUDIES: dict[str, tuple[tuple[str, ...], list[Row]]] = {
    "main": (("ct20", "ct8", "deblur", "sr4"), [
        Row("baseline", "baseline"), Row("ADMM-TV", "tv"), Row("PnP-ADMM (patch denoiser)", "pnp"),
        diffusion("whole image, DPS", "whole"), diffusion("whole image, DDS", "whole", "dds"),
        diffusion("PaDIS (patches), DPS", "patch"), diffusion("PaDIS (patches), DDS", "patch", "dds")]),
    "patch-size": (("ct20",), [diffusion(f"tile {t}", "patch", "dds", t) for t in ("16", "32", "48", "whole")]),
    "sampler": (("ct20",), [diffusion(label, "patch", s) for label, s in SAMPLER_ROWS]
                + [diffusion("PaDIS, paper budget", "patch", "padis", budget="paper")]),
    "positions": (("ct20",), [diffusion("with positions", "patch100", "dds"),
                              diffusion("without positions", "nopos", "dds")]),
    "data-size": (("ct20",), [diffusion(f"{kind} {n} slices", f"{kind}{n}", "dds")
                              for n in (12, 25, 50, 100) for kind in ("patch", "whole")]),
}


def train_args(name: str, cfg: Config, smoke: bool) -> list[str]:
    """``padis3d train`` options for prior ``patch``, ``whole``, ``nopos``, ``patchN`` or ``wholeN``
    (N training slices)."""
    base = ["--preset", cfg.train_preset, "--threads", "1", "--seed", "0", "--checkpoint-minutes", "10"]
    if cfg.train_preset == "paper-gpu":
        base += ["--device", "cuda"]
    if smoke:
        base += ["--size", "32", "--features", "8", "16", "--patch-sizes", "8", "16", "--steps", "2", "--no-progress"]
    if name == "nopos":
        return base + ["--mode", "patch", "--no-positions"]
    kind, n = name[:5], name[5:]
    return base + ["--mode", kind] + (["--subset", n] if n else []) + (["--batch", "2"] if kind == "whole" else [])


def run_folder(name: str, cfg: Config, args: argparse.Namespace) -> Path:
    return args.runs / f"{'smoke' if args.smoke else cfg.train_preset}_{name}"


def shipped(name: str, cfg: Config, args: argparse.Namespace) -> Path | None:
    """The configuration's shipped checkpoint for ``patch`` / ``whole`` if it exists."""
    path = ROOT / getattr(cfg, name) if name in ("patch", "whole") else None
    return path if path is not None and path.exists() else None


def train_command(name: str, cfg: Config, args: argparse.Namespace) -> list[str] | None:
    """The ``padis3d train`` command that brings prior ``name`` to its budget, or None if it has it
    (or is shipped, or no budget was given)."""
    out = run_folder(name, cfg, args)
    if shipped(name, cfg, args) is not None:
        return None
    if (out / "prior.pt").exists():
        if args.smoke or args.train_budget <= 0:
            return None
        meta = read_checkpoint(out / "prior.pt")["meta"]
        spent = meta.get("cpu_seconds" if cfg.train_preset == "cpu" else "wall_seconds", 0.0)
        if spent >= args.train_budget * 3600:
            return None
    if args.train_budget <= 0 and not args.smoke:
        return None
    cmd = [sys.executable, "-m", "padis3d.cli.train", *train_args(name, cfg, args.smoke), "--out", str(out)]
    if not args.smoke:
        cmd += ["--steps", "1000000", "--budget-hours", str(args.train_budget), "--no-progress"]
    return cmd + (["--resume"] if (out / "state.pt").exists() else [])


def train_missing(names: list[str], cfg: Config, args: argparse.Namespace) -> None:
    """Train the priors that lack their budget, ``--train-jobs`` processes at a time (logs in the run folders)."""
    todo = [(n, c) for n in dict.fromkeys(names) if (c := train_command(n, cfg, args)) is not None]
    running: list[tuple[str, subprocess.Popen]] = []
    while todo or running:
        while todo and len(running) < max(1, args.train_jobs):
            name, cmd = todo.pop(0)
            folder = run_folder(name, cfg, args)
            folder.mkdir(parents=True, exist_ok=True)
            print(f"training {name}: {' '.join(cmd)}  (log: {folder / 'train.log'})", flush=True)
            with open(folder / "train.log", "a") as log:
                running.append((name, subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)))
        time.sleep(0.2 if args.smoke else 5)
        for name, proc in list(running):
            if proc.poll() is not None:
                running.remove((name, proc))
                if proc.returncode:
                    raise SystemExit(f"training {name} failed (exit {proc.returncode}): see "
                                     f"{run_folder(name, cfg, args) / 'train.log'}")
                print(f"trained {name}", flush=True)


def checkpoint(name: str, cfg: Config, args: argparse.Namespace) -> Path | None:
    """The checkpoint file of prior ``name`` (shipped or trained under ``--runs``), None if not trained."""
    path = shipped(name, cfg, args) or run_folder(name, cfg, args) / "prior.pt"
    if not path.exists():
        print(f"skipping rows with prior {name!r}: not trained yet (pass --train-budget H)", flush=True)
        return None
    return path


def evaluate(row: Row, task, x: torch.Tensor, y: torch.Tensor, cfg: Config, priors: dict, args) -> torch.Tensor:
    tv_iters = cfg.tv_iters or task.tv_iters
    if row.method == "baseline":
        return task.baseline(y)
    if row.method == "tv":
        return admm_tv(task.op, y, tv_weight(task.name, x.shape[-1]), max_iter=tv_iters, step_ratio=task.tv_step_ratio)
    prior = priors[("patch" if row.method == "pnp" else row.prior, row.tile)][0]
    if row.method == "pnp":
        return pnp_admm(task.op, y, prior.image_denoiser(PNP_SIGMA, torch.Generator().manual_seed(args.seed)),
                        iters=cfg.pnp_iters,
                        x0=task.baseline(y)).clamp(0, 1)
    return reconstruct(prior, task.op, y, row_settings(row, task.name, cfg, args),
                       baseline=task.baseline(y)).clamp(0, 1)


def row_settings(row: Row, task: str, cfg: Config, args: argparse.Namespace) -> SamplerSettings:
    """The defaults table's settings for a diffusion row (its budget, else the configuration's)."""
    return SamplerSettings.for_task(task, row.sampler, row.budget or cfg.budget, seed=args.seed, **cfg.overrides)


def load_priors(rows: list[Row], cfg: Config, args) -> dict:
    """``{(prior name, tile): (PatchPrior, training steps)}`` for the rows' priors (training what lacks its budget)."""
    train_missing(["patch" if r.method == "pnp" else r.prior for r in rows if r.method in ("pnp", "diffusion")],
                  cfg, args)
    priors = {}
    for row in rows:
        name = "patch" if row.method == "pnp" else row.prior
        if row.method in ("pnp", "diffusion") and (name, row.tile) not in priors:
            path = checkpoint(name, cfg, args)
            if path is not None:
                tile = None if row.tile == "whole" else row.tile if row.tile == "auto" else int(row.tile)
                loaded = padis3d.load_prior(path)
                steps = None if shipped(name, cfg, args) else loaded.meta.get("steps")
                priors[(name, row.tile)] = (patch_prior_from(loaded, (cfg.size,) * 2, tile), steps)
    return priors


def run(args: argparse.Namespace) -> dict:
    cfg = SMOKE if args.smoke else CONFIGS[args.config]
    if args.patch is not None:
        cfg = replace(cfg, patch=str(args.patch))
    torch.set_num_threads(args.threads)
    slices = args.slices or ([TEST_SLICES[0]] if args.smoke else list(TEST_SLICES))
    bad = [k for k in slices if k not in TEST_SLICES]
    if bad:
        raise SystemExit(f"slices {bad} are not test slices {TEST_SLICES[0]}..{TEST_SLICES[-1]}")
    images = torch.from_numpy(chest_ct_slices(slices, cfg.size))[:, None]
    path = args.out.with_suffix(".json")
    store = json.loads(path.read_text()) if path.exists() else {"results": {}}
    store["versions"], store["config"] = library_versions(), asdict(cfg)
    store["commands"] = sorted(set(store.get("commands", [])) | {" ".join(sys.argv)})
    computed: dict[str, np.ndarray] = {}  # figure reconstructions made by the main study's rows
    labels = {study: {r.label for r in rows} for study, (_, rows) in STUDIES.items()}
    for key in [key for key, r in store["results"].items() if r["row"] not in labels.get(r["study"], ())]:
        del store["results"][key]  # rows that no longer exist (renamed samplers)
    for study in [] if args.report else args.studies:
        tasks, rows = STUDIES[study]
        rows = [r for r in rows if args.rows is None or r.label in args.rows]
        tasks = [t for t in tasks if args.tasks is None or t in args.tasks]
        priors = load_priors(rows, cfg, args)
        for name in tasks:
            task = make_task(name, cfg.size)
            for row in rows:
                if row.method in ("pnp", "diffusion") and prior_key(row) not in priors:
                    continue
                tag = result_tag(row, name, cfg, args, priors)
                for key in [key for key in store["results"] if key.startswith(f"{study}/{name}/{row.label}/")
                            and not key.endswith(f"/{tag}")]:
                    del store["results"][key]  # this row with other settings, on any slice
                for k, x in zip(slices, images):
                    key = f"{study}/{name}/{row.label}/{k}/{tag}"
                    if key in store["results"]:
                        continue
                    same = [r for r in store["results"].values() if r.get("tag") == tag and r["slice"] == k]
                    if same:  # the same computation under another study or label
                        store["results"][key] = same[0] | {"study": study, "row": row.label}
                    else:
                        y = task.measure(x[None], seed=k)
                        t0 = time.perf_counter()
                        rec = evaluate(row, task, x[None], y, cfg, priors, args)[0, 0]
                        store["results"][key] = {"study": study, "task": name, "row": row.label, "slice": k,
                                                 "psnr": psnr(rec, x[0]), "ssim": ssim(rec, x[0]),
                                                 "seconds": time.perf_counter() - t0, "tag": tag}
                        if study == "main" and row.label in FIGURE_ROWS:
                            computed[f"{name}/{row.label}/{k}/{tag}"] = rec.numpy().astype(np.float16)
                    write_json(path, store)
                    r = store["results"][key]
                    print(f"{key}: {r['psnr']:.2f} dB / {r['ssim']:.3f} in {r['seconds']:.1f} s", flush=True)
    text = summary(store, slices, list(STUDIES), cfg)  # every study with results, not only this run's
    with atomic_path(args.out.with_suffix(".md")) as tmp:
        tmp.write_text(text)
    print(text)
    ablation_figure(store, slices, STUDIES, args.out.parent / f"{args.out.name}_ablations.png")
    if "main" in args.studies:
        k = slices[len(slices) // 2]
        recs = figure_reconstructions(k, images[slices.index(k)], cfg, args, computed)
        if recs:
            reconstruction_figure(recs, k, args.out.parent / f"{args.out.name}_reconstructions.png")
    return store


def prior_key(row: Row) -> tuple[str, str]:
    return ("patch" if row.method == "pnp" else row.prior), row.tile


def result_tag(row: Row, task: str, cfg: Config, args: argparse.Namespace, priors: dict) -> str:
    """Hash of everything a result depends on, not the row's label (studies share results): the
    method, the prior (a prior trained here: also its training steps), the sampler settings."""
    spec: dict = {"method": row.method, "seed": args.seed, "task": task, "size": cfg.size, "smoke": args.smoke}
    if row.method == "tv":
        spec["tv_iters"] = cfg.tv_iters
    if row.method in ("pnp", "diffusion"):
        name = prior_key(row)[0]
        spec |= {"prior": name, "tile": row.tile, "file": str(getattr(cfg, name, run_folder(name, cfg, args)))}
    if row.method == "pnp":
        # image_denoiser puts noise on the canvas padding since issue 17 (zeros before): rows from then are recomputed
        spec |= {"pnp_iters": cfg.pnp_iters, "pnp_sigma": PNP_SIGMA, "pnp_padding": "noisy"}
    if row.method == "diffusion":
        spec["settings"] = row_settings(row, task, cfg, args).to_dict()
    steps = priors.get(prior_key(row), (None, None))[1]
    if steps is not None:
        spec["prior_steps"] = steps
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]


FIGURE_ROWS = ("baseline", "ADMM-TV", "PnP-ADMM (patch denoiser)", "whole image, DPS", "PaDIS (patches), DPS",
               "PaDIS (patches), DDS")


def figure_reconstructions(k: int, x: torch.Tensor, cfg: Config, args: argparse.Namespace,
                           computed: dict[str, np.ndarray] | None = None) -> dict:
    """``{task: {"truth" | row label: (H, W) array}}`` on slice ``k`` for the figure rows of the main
    study; cached in ``OUT_reconstructions.npz`` (keyed like the results; ``computed``: made by this
    run's main study), computed unless ``--report``. Rows not computed here (``--report``, or
    outside ``--rows``) whose image with these settings is missing take the one cached under the
    same task, row and slice (an earlier run's; the tables' numbers are unaffected)."""
    cache = args.out.parent / f"{args.out.name}_reconstructions.npz"
    stored = dict(np.load(cache)) if cache.exists() else {}
    fresh = bool(computed)
    stored |= computed or {}
    tasks, rows = STUDIES["main"]
    rows = [r for r in rows if r.label in FIGURE_ROWS]
    priors = {} if args.report else load_priors(rows, cfg, args)
    out = {}
    for name in [t for t in tasks if args.tasks is None or t in args.tasks]:
        task = make_task(name, cfg.size)
        out[name] = {"truth": x[0].numpy()}
        for row in rows:
            key = f"{name}/{row.label}/{k}/{result_tag(row, name, cfg, args, priors)}"
            wanted = args.rows is None or row.label in args.rows or row.method in ("baseline", "tv")
            if key not in stored and (args.report or not wanted):
                key = next((c for c in sorted(stored) if c.startswith(f"{name}/{row.label}/{k}/")), key)
            if key not in stored and wanted and not args.report and (row.method not in ("pnp", "diffusion")
                                                                     or prior_key(row) in priors):
                print(f"figure: {key}", flush=True)
                stored[key] = evaluate(row, task, x[None], task.measure(x[None], seed=k), cfg, priors,
                                       args)[0, 0].numpy().astype(np.float16)
                fresh = True
            if key in stored:
                out[name][row.label] = stored[key].astype(np.float32)
    if fresh:
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **stored)
    return {t: v for t, v in out.items() if len(v) > 1}


def budget_note(budget: str) -> str:
    per = SamplerSettings.for_task("ct20", "padis", budget).evaluations
    return f"{per} network evaluations for Algorithm 1, Langevin, PC and VE-DDNM, " \
           f"{SamplerSettings.for_task('ct20', 'dds', budget).evaluations} for DDS"


def summary(store: dict, slices: list[int], studies: list[str], cfg: Config) -> str:
    """Markdown tables (mean PSNR / SSIM and seconds per slice) for each study."""
    out = [f"Chest CT test slices {', '.join(map(str, slices))} at {cfg.size}²; PSNR dB / SSIM, mean over "
           f"slices; s = seconds per slice. Samplers: padis3d/solvers/defaults.py, budget {cfg.budget!r} "
           f"({budget_note(cfg.budget)}) unless a row names another.", ""]
    for study in studies:
        tasks, rows = STUDIES[study]
        cells: dict[tuple[str, str], list[dict]] = {}
        for r in store["results"].values():
            if r["study"] == study and r["slice"] in slices:
                cells.setdefault((r["row"], r["task"]), []).append(r)
        if not cells:
            continue
        out += [f"### {study}", "", "| row | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
        for row in rows:
            vals = []
            for t in tasks:
                rs = cells.get((row.label, t), [])
                n = "" if len(rs) == len(slices) else f" ({len(rs)}/{len(slices)})"
                vals.append(f"{np.mean([r['psnr'] for r in rs]):.2f} / {np.mean([r['ssim'] for r in rs]):.3f}, "
                            f"{np.mean([r['seconds'] for r in rs]):.0f} s{n}" if rs else "–")
            if any(v != "–" for v in vals):
                out.append(f"| {row.label} | " + " | ".join(vals) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    ap.add_argument("--patch", type=Path, default=None,
                    help="the patch prior's checkpoint (default: the configuration's, e.g. checkpoints/chest128_patch.pt)")
    ap.add_argument("--studies", nargs="+", choices=list(STUDIES), default=list(STUDIES))
    ap.add_argument("--tasks", nargs="+", default=None, help="restrict the tasks of every study")
    ap.add_argument("--rows", nargs="+", default=None, help="restrict to these row labels")
    ap.add_argument("--slices", type=int, nargs="+", default=None, help="default: all 23 test slices")
    ap.add_argument("--train-budget", type=float, default=0.0,
                    help="total hours per ablation prior, resumed runs included (CPU hours on CPU, wall hours on "
                         "CUDA); 0: only use priors already trained")
    ap.add_argument("--train-jobs", type=int, default=1, help="ablation priors trained at once (one thread each)")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs", help="training run folders (resumable)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="seconds: 1 slice, 2 sampler levels, tiny ablation nets")
    ap.add_argument("--report", action="store_true", help="compute nothing: write OUT.md from the results in OUT.json")
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    args = ap.parse_args(argv)
    if args.patch is not None and not (ROOT / args.patch).is_file():
        ap.error(f"--patch: no checkpoint {args.patch}")
    run(args)


if __name__ == "__main__":
    main()
