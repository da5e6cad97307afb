"""TV inside DDS's data step (issue 28 §4): tune λ on chest TRAINING slices, report on other-kind images.

DDS at the CLI's defaults (``SamplerSettings.for_task(task, "dds")``, budget cpu: 50 levels from the
baseline, the shipped prior ``chest128_patch``) with the data step
``min ½||Ax - y||² + ρ/2||x - D||² + λ TV(x)`` (:mod:`padis3d.solvers.tv_data_step`), for
λ = factor x the task's ADMM-TV weight (:data:`padis3d.baselines.TV_WEIGHTS`, 128²), against ADMM-TV
itself (:func:`padis3d.baselines.admm_tv`, its tuned weight). Tasks CT 20 / CT 8 views (noiseless),
deblur and SR x4 (σ = 0.01), all 128².

Sets: ``train`` = chest CT training slices (0-99; default 90 95), the only images λ is chosen on;
``ellipses`` = random-ellipse phantoms (synthetic, seed 7000 + i, unlike the chest: allowed for tuning the
behaviour on unlike data); ``other`` = scikit-image's camera, coins, moon and the Shepp-Logan phantom (centre-cropped square,
resized to 128² with anti-aliasing, scaled to [0, 1]): reported, never tuned on. The test slices
(110-132) are refused. ``--tuned`` adds, per task, the factor with the best mean training PSNR among
those already in the results (ties: the smaller factor).

Resumable: each finished run is a line of ``OUT.jsonl`` keyed by (set, image, task, method, λ); a rerun
computes only what is missing; ``OUT.md`` is rewritten from it (``--report``: only that).

    OMP_NUM_THREADS=1 nice python recipes/tv_in_dds.py --set train --images 90 95 --factors 0 0.1 0.3 1 --admm
    OMP_NUM_THREADS=1 nice python recipes/tv_in_dds.py --set other --images camera shepp-logan coins moon \\
        --factors 0 --tuned --admm
    python recipes/tv_in_dds.py --report
    OMP_NUM_THREADS=1 python recipes/tv_in_dds.py --penalty-check   # the ADMM penalty's evidence (~1 min)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import padis3d  # noqa: E402
from padis3d.baselines import admm_tv, tv_weight  # noqa: E402
from padis3d.baselines.tasks import make_task  # noqa: E402
from padis3d.io.sample_data import TEST_SLICES, chest_ct_slices  # noqa: E402
from padis3d.metrics import psnr, ssim  # noqa: E402
from padis3d.priors.factory import patch_prior_from  # noqa: E402
from padis3d.solvers.reconstruct import SamplerSettings, reconstruct  # noqa: E402

TASKS = ("ct20", "ct8", "deblur", "sr4")
OTHER = ("camera", "coins", "moon", "shepp-logan")
SIZE = 128


def other_image(name: str, size: int = SIZE) -> np.ndarray:
    """A scikit-image picture ``(size, size)`` float32 in [0, 1] (centre-cropped square, anti-aliased resize)."""
    import skimage.data
    from skimage.transform import resize

    raw = {"camera": skimage.data.camera, "coins": skimage.data.coins, "moon": skimage.data.moon,
           "shepp-logan": skimage.data.shepp_logan_phantom}[name]().astype(np.float64)
    h, w = raw.shape
    s = min(h, w)
    raw = raw[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    img = resize(raw, (size, size), anti_aliasing=True)
    return ((img - img.min()) / max(img.max() - img.min(), 1e-12)).astype(np.float32)


def ellipse_image(k: int, size: int = SIZE) -> tuple[torch.Tensor, int]:
    """Random-ellipse phantom ``k`` as ``(1, 1, size, size)`` in [0, 1] (seed 7000 + k) and its noise seed 2000 + k."""
    from padis3d.training.phantoms import random_ellipses

    return torch.from_numpy(random_ellipses(1, size, seed=7000 + k)).reshape(1, 1, size, size), 2000 + k


def image_and_seed(set_name: str, name: str) -> tuple[torch.Tensor, int]:
    """``(1, 1, 128, 128)`` truth and its measurement-noise seed (a chest slice: its index; else 1000 + i)."""
    if set_name == "train":
        k = int(name)
        if k in TEST_SLICES or not 0 <= k <= 99:
            raise SystemExit(f"slice {k} is not a training slice (0-99): λ is tuned on training slices only")
        return torch.from_numpy(chest_ct_slices([k], SIZE))[:, None], k
    if set_name == "ellipses":
        return ellipse_image(int(name), SIZE)
    return torch.from_numpy(other_image(name))[None, None], 1000 + OTHER.index(name)


def key(c: dict) -> tuple:
    return c["set"], c["image"], c["task"], c["method"], c["lam"]


def load(path: Path) -> dict[tuple, dict]:
    if not path.exists():
        return {}
    return {key(c): c for c in (json.loads(line) for line in path.read_text().splitlines() if line.strip())}


def mean_psnr(cells: list[dict]) -> float:
    return statistics.mean(c["psnr"] for c in cells)


def tuned_factor(cells: dict[tuple, dict], task: str) -> float | None:
    """The DDS factor with the best mean training PSNR over the training images every factor has."""
    train = [c for c in cells.values() if c["set"] == "train" and c["task"] == task and c["method"] == "dds"]
    by_factor: dict[float, dict[str, float]] = {}
    for c in train:
        by_factor.setdefault(c["factor"], {})[c["image"]] = c["psnr"]
    if not by_factor:
        return None
    common = set.intersection(*(set(v) for v in by_factor.values()))
    if not common:
        return None
    return max(sorted(by_factor), key=lambda f: statistics.mean(by_factor[f][i] for i in common))


def report(cells: dict[tuple, dict], md: Path) -> str:
    """Markdown: per task and set, mean PSNR / SSIM of DDS per λ and of ADMM-TV over each row's images, and
    the change against DDS with λ = 0 on the same images."""
    lines = ["# TV inside DDS's data step (issue 28 §4)", "",
             "`recipes/tv_in_dds.py`: DDS at the CLI's defaults (budget cpu, 50 levels from the baseline), prior "
             "`chest128_patch`, 128², data step `min ½||Ax - y||² + ρ/2||x - D||² + λ TV(x)` (3 ADMM rounds of "
             "5 CG steps), λ = factor x the task's ADMM-TV weight; ADMM-TV at its tuned weight. λ is chosen on the "
             "chest TRAINING slices only (`train`; the tuned factor: best mean PSNR over the slices every factor "
             "was run on); `other` (scikit-image camera, coins, moon, Shepp-Logan) is reported, never tuned on. "
             "PSNR dB / SSIM, mean over the row's images; Δ: against DDS with λ = 0 on the same images. One thread "
             "on a shared 2-core machine (seconds indicative).", ""]
    for task in TASKS:
        tuned = tuned_factor(cells, task)
        for set_name in ("train", "ellipses", "other"):
            rows = [c for c in cells.values() if c["task"] == task and c["set"] == set_name]
            if not rows:
                continue
            groups: dict[tuple, list[dict]] = {}
            for c in rows:
                groups.setdefault((c["method"], c["factor"]), []).append(c)
            plain = {c["image"]: c["psnr"] for c in groups.get(("dds", 0.0), [])}
            lines += [f"## {task}, {set_name} images" + (f" (tuned factor {tuned:g})" if tuned is not None else ""),
                      "", "| method | factor | λ | PSNR | SSIM | Δ PSNR vs λ = 0 | images | s/image |",
                      "|---|---|---|---|---|---|---|---|"]
            for (method, factor), g in sorted(groups.items(), key=lambda kv: (kv[0][0] != "dds", kv[0][1])):
                g = sorted(g, key=lambda c: c["image"])
                shared = [c for c in g if c["image"] in plain]
                delta = (f"{statistics.mean(c['psnr'] - plain[c['image']] for c in shared):+.2f}"
                         + ("" if len(shared) == len(g) else f" ({len(shared)} shared)") if shared else "")
                mark = " (tuned)" if method == "dds" and factor == tuned else ""
                lines.append(f"| {method}{mark} | {factor:g} | {g[0]['lam']:.3g} | {mean_psnr(g):.2f} | "
                             f"{statistics.mean(c['ssim'] for c in g):.3f} | {delta} | "
                             f"{' '.join(c['image'] for c in g)} | {statistics.mean(c['seconds'] for c in g):.0f} |")
            lines.append("")
    text = "\n".join(lines) + "\n"
    md.write_text(text)
    return text


def penalty_check(slice_index: int = 90, rounds: int = 3, cg_iters: int = 5) -> str:
    """The evidence for the ADMM penalty default (:data:`padis3d.solvers.tv_data_step.SHRINK_SCALE`): on a
    training slice with ``x0`` = truth + N(0, 0.03²) standing in for the Tweedie estimate, the objective gap
    ``(f - f*)/(f(x0) - f*)`` after ``rounds`` ADMM rounds of ``cg_iters`` CG steps, per penalty β, against
    ``cg_iters`` plain CG steps (``f*``: 150 rounds of 10 CG steps)."""
    from padis3d.solvers.dds import data_consistency
    from padis3d.solvers.defaults import DDS_RHO
    from padis3d.solvers.tv_data_step import data_consistency_tv, tv_data_objective

    truth = torch.from_numpy(chest_ct_slices([slice_index], SIZE))[:, None]
    x0 = truth + 0.03 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(0))
    lines = ["| task | λ | plain CG | β = ρ | β = λ/0.1 | β = λ/0.05 | β = λ/0.03 (default) | β = λ/0.02 | β = λ/0.01 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in ("ct20", "deblur", "sr4"):
        task, rho = make_task(name, SIZE), DDS_RHO[name]
        y = task.measure(truth, seed=slice_index)
        for factor in (0.1, 0.3, 1.0):
            lam = factor * tv_weight(name, SIZE)

            def f(x: torch.Tensor) -> float:
                return float(tv_data_objective(task.op, y, x, x0, rho, lam, [1, 1]))
            best = f(data_consistency_tv(task.op, y, x0, rho, 10, lam, [1, 1], admm_iters=150))
            gap = lambda x: f"{(f(x) - best) / (f(x0) - best):.3f}"  # noqa: E731
            row = [gap(data_consistency(task.op, y, x0, rho, cg_iters))]
            for beta in (rho, lam / 0.1, lam / 0.05, lam / 0.03, lam / 0.02, lam / 0.01):
                row.append(gap(data_consistency_tv(task.op, y, x0, rho, cg_iters, lam, [1, 1], rounds, penalty=beta)))
            lines.append(f"| {name} | {lam:.3g} | " + " | ".join(row) + " |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "tv_in_dds")
    ap.add_argument("--set", choices=("train", "ellipses", "other"), default="train")
    ap.add_argument("--images", nargs="+", default=None, help="training slices (0-99) or other-kind names "
                    f"{OTHER} (default: 90 95, or all four)")
    ap.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    ap.add_argument("--factors", type=float, nargs="*", default=[0.0, 0.1, 0.3, 1.0],
                    help="λ / the task's ADMM-TV weight")
    ap.add_argument("--tuned", action="store_true", help="also the best training factor per task")
    ap.add_argument("--admm", action="store_true", help="also ADMM-TV at its tuned weight")
    ap.add_argument("--checkpoint", default="chest128_patch")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report", action="store_true", help="only rewrite OUT.md from OUT.jsonl")
    ap.add_argument("--penalty-check", action="store_true", help="only print the ADMM penalty evidence table "
                    "(objective gaps of the data step on training slice 90; writes OUT_penalty.md)")
    args = ap.parse_args()
    if args.penalty_check:
        torch.set_num_threads(args.threads)
        table = penalty_check()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}_penalty.md").write_text(
            "# ADMM penalty of the TV data step: objective gap (f - f*)/(f(x0) - f*) after 3 rounds of 5 CG steps\n\n"
            "`python recipes/tv_in_dds.py --penalty-check`; chest TRAINING slice 90, x0 = truth + N(0, 0.03²), "
            "λ = 0.1, 0.3, 1 x the task's ADMM-TV weight, ρ the DDS default; f*: 150 rounds of 10 CG steps.\n\n"
            + table + "\n")
        return
    jsonl, md = args.out.with_suffix(".jsonl"), args.out.with_suffix(".md")
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    cells = load(jsonl)
    if not args.report:
        torch.set_num_threads(args.threads)
        images = args.images or {"train": ["90", "95"], "ellipses": ["0", "1", "2"]}.get(args.set, list(OTHER))
        if args.set == "other" and not set(images) <= set(OTHER):
            raise SystemExit(f"other-kind images are {OTHER}")
        loaded = padis3d.load_prior(args.checkpoint, precision=args.precision)
        prior = patch_prior_from(loaded, (SIZE, SIZE))
        for task_name in args.tasks:
            task = make_task(task_name, SIZE)
            weight = tv_weight(task_name, SIZE)
            factors = list(args.factors)
            tuned = tuned_factor(cells, task_name) if args.tuned else None
            if args.tuned and tuned is None:
                print(f"{task_name}: no training results to tune on; --tuned skipped", flush=True)
            if tuned is not None and tuned not in factors:
                factors.append(tuned)
            runs = [("dds", f) for f in factors] + [("admm-tv", 1.0)] * args.admm
            for name in images:
                truth, seed = image_and_seed(args.set, name)
                y = task.measure(truth, seed=seed)
                baseline = task.baseline(y)
                for method, factor in runs:
                    lam = factor * weight
                    cell = {"set": args.set, "image": name, "task": task_name, "method": method, "factor": factor,
                            "lam": lam}
                    if key(cell) in cells:
                        continue
                    t0 = time.perf_counter()
                    if method == "dds":
                        settings = SamplerSettings.for_task(task_name, "dds", "cpu", tv=lam)
                        rec = reconstruct(prior, task.op, y, settings, baseline=baseline)
                        extra = {"settings": settings.to_dict(), "precision": loaded.precision}
                    else:
                        rec = admm_tv(task.op, y, lam, max_iter=task.tv_iters, step_ratio=task.tv_step_ratio)
                        extra = {"iterations": task.tv_iters}
                    img, ref = rec[0, 0].clamp(0, 1).numpy(), truth[0, 0].numpy()
                    cell |= {"psnr": psnr(img, ref), "ssim": ssim(img, ref), "seconds": time.perf_counter() - t0,
                             "noise_seed": seed, **extra}
                    cells[key(cell)] = cell
                    with jsonl.open("a") as f:
                        f.write(json.dumps(cell) + "\n")
                    print(f"{args.set} {name} {task_name} {method} λ {lam:.3g}: {cell['psnr']:.2f} dB "
                          f"{cell['ssim']:.3f} ({cell['seconds']:.0f} s)", flush=True)
    print(report(cells, md))


if __name__ == "__main__":
    main()
