"""The paper's Table 1 at CPU scale: baseline, ADMM-TV, whole-image diffusion and PaDIS on
the held-out chest CT slices, for CT 20 / 8 views, deblurring and super-resolution
(PSNR / SSIM and seconds per slice). Resumable: every (task, method, slice) result is kept
in ``OUT.json`` and skipped on a rerun with the same settings.

    python recipes/table1.py --out results/table1_cpu                    # all test slices
    python recipes/table1.py --slices 110 121 132 --out results/table1_quick
    python recipes/table1.py --tune --slices 80 90 99 --tasks ct20 --out results/tune_zeta

The DPS step is set per task as ``ζ = zeta_norm / ||A||`` (the data gradient scales with
the operator norm); ``--tune`` tries multiples of it on TRAINING slices and reports the
best, which is then passed back with ``--zeta-norm TASK=VALUE``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

import padis3d
from padis3d.atomic import atomic_path, write_json
from padis3d.baselines.tasks import make_task
from padis3d.baselines.tv import admm_tv
from padis3d.baselines.tv_weights import tv_weight
from padis3d.priors.checkpoint import library_versions
from padis3d.metrics import psnr, ssim
from padis3d.priors.factory import patch_prior_from
from padis3d.solvers.reconstruct import SamplerSettings, reconstruct
from padis3d.io.sample_data import TEST_SLICES, TRAIN_SLICES, chest_ct_slices

TASKS = ("ct20", "ct8", "deblur", "sr4")
METHODS = ("baseline", "tv", "whole", "padis")
ZETA_NORM = 5.0  # ζ ||A||: 0.1 for CT 20 views at 128² (||A|| ≈ 50), best of {0.1, 0.3, 1} on training slice 90


def evaluate(method: str, task, x: torch.Tensor, y: torch.Tensor, args, priors: dict, zeta: float) -> torch.Tensor:
    if method == "baseline":
        return task.baseline(y)
    if method == "tv":
        return admm_tv(task.op, y, tv_weight(task.name, x.shape[-1]), max_iter=task.tv_iters,
                       step_ratio=task.tv_step_ratio)
    settings = SamplerSettings(steps=args.steps, inner=args.inner, sigma_max=args.sigma_max,
                               sigma_min=args.sigma_min, step_rule="norm", zeta=zeta, init=args.init, seed=args.seed)
    return reconstruct(priors[method], task.op, y, settings, baseline=task.baseline(y))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--slices", type=int, nargs="+", default=None, help="default: all test slices")
    ap.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--patch", default="checkpoints/chest128_patch.pt")
    ap.add_argument("--whole", default="checkpoints/chest128_whole.pt")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--inner", type=int, default=5)
    ap.add_argument("--sigma-max", type=float, default=3.0)
    ap.add_argument("--sigma-min", type=float, default=0.005)
    ap.add_argument("--init", choices=("noise", "baseline"), default="noise")
    ap.add_argument("--zeta-norm", nargs="*", default=[], help="TASK=VALUE overrides of ζ ||A||")
    ap.add_argument("--tune", action="store_true", help="PaDIS only, ζ ||A|| x {0.5, 1, 2}, training slices only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    slices = args.slices or (list(TRAIN_SLICES[-3:]) if args.tune else list(TEST_SLICES))
    if args.tune and set(slices) & set(TEST_SLICES):
        raise SystemExit("--tune runs on training slices only (0-99)")
    zeta_norm = {t: ZETA_NORM for t in TASKS} | {k: float(v) for k, v in (o.split("=") for o in args.zeta_norm)}
    methods = ["padis"] if args.tune else args.methods
    scales = (0.5, 1.0, 2.0) if args.tune else (1.0,)
    images = torch.from_numpy(chest_ct_slices(slices, args.size))[:, None]
    priors = {}
    if "padis" in methods:
        priors["padis"] = patch_prior_from(padis3d.load_prior(args.patch), (args.size,) * 2)
    if "whole" in methods:
        priors["whole"] = patch_prior_from(padis3d.load_prior(args.whole), (args.size,) * 2)

    path = args.out.with_suffix(".json")
    store = json.loads(path.read_text()) if path.exists() else {"results": {}}
    store["versions"], store["command"] = library_versions(), vars(args) | {"out": str(args.out)}
    for name in args.tasks:
        task = make_task(name, args.size)
        norm = task.op.norm()
        for method in methods:
            for scale in scales:
                zeta = scale * zeta_norm[name] / norm
                key_settings = {"steps": args.steps, "inner": args.inner, "sigma_max": args.sigma_max,
                                "sigma_min": args.sigma_min, "init": args.init, "zeta": round(zeta, 6),
                                "seed": args.seed, "ckpt": args.patch if method == "padis" else args.whole}
                tag = hashlib.sha1(json.dumps(key_settings, sort_keys=True).encode()).hexdigest()[:8] \
                    if method in ("whole", "padis") else "classical"
                for k, x in zip(slices, images):
                    key = f"{name}/{method}/{k}/{tag}"
                    if key in store["results"]:
                        continue
                    y = task.measure(x[None], seed=k)
                    t0 = time.perf_counter()
                    rec = evaluate(method, task, x[None], y, args, priors, zeta)[0, 0]
                    store["results"][key] = {"task": name, "method": method, "slice": k, "psnr": psnr(rec, x[0]),
                                             "ssim": ssim(rec, x[0]), "seconds": time.perf_counter() - t0,
                                             "settings": key_settings if tag != "classical" else None,
                                             "zeta_scale": scale}
                    write_json(path, store)
                    r = store["results"][key]
                    print(f"{key}: {r['psnr']:.2f} dB / {r['ssim']:.3f} in {r['seconds']:.0f} s", flush=True)
    with atomic_path(args.out.with_suffix(".md")) as tmp:
        tmp.write_text(summary(store, slices, args.tasks, methods))
    print(summary(store, slices, args.tasks, methods))


def summary(store: dict, slices: list[int], tasks: list[str], methods: list[str]) -> str:
    rows = {}
    for r in store["results"].values():
        if r["slice"] in slices and r["task"] in tasks and r["method"] in methods:
            key = (r["task"], r["method"], r.get("zeta_scale", 1.0))
            rows.setdefault(key, []).append(r)
    out = [f"Chest CT slices {', '.join(map(str, slices))}; PSNR dB / SSIM (mean), seconds per slice", "",
           "| task | method | ζ scale | PSNR | SSIM | s/slice | slices |", "|---|---|---|---|---|---|---|"]
    for (task, method, scale), rs in sorted(rows.items()):
        out.append(f"| {task} | {method} | {scale:g} | {np.mean([r['psnr'] for r in rs]):.2f} | "
                   f"{np.mean([r['ssim'] for r in rs]):.3f} | {np.mean([r['seconds'] for r in rs]):.1f} | {len(rs)} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
