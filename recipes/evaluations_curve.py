"""PSNR against network evaluations (issue 16): DDS and Algorithm 1 (``padis``) on CT 20 views,
128², the shipped chest prior, at 10, 20, 50, 100, 200 and 1000 evaluations, geometric or Karras
σ grids; every other setting from ``padis3d/solvers/defaults.py`` (budget ``cpu``). DDS spends
one evaluation per level; Algorithm 1 keeps 5 per level (levels = evaluations / 5).

Choose settings on the TRAINING slice (90, the default ``--slices``); the test slices (115 120
125) are for reporting only. Resumable: each finished cell is a line of ``OUT.jsonl`` keyed by
its settings, a rerun computes only what is missing; ``OUT.md`` is rewritten from it.

    OMP_NUM_THREADS=1 python recipes/evaluations_curve.py --out results/evaluations_curve \\
        --samplers dds --schedules geometric karras --slices 90 115 120 125
    OMP_NUM_THREADS=1 python recipes/evaluations_curve.py --out results/evaluations_curve --report
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import padis3d  # noqa: E402
from padis3d.baselines.tasks import make_task  # noqa: E402
from padis3d.io.sample_data import TEST_SLICES, TRAIN_SLICES, chest_ct_slices  # noqa: E402
from padis3d.metrics import psnr, ssim  # noqa: E402
from padis3d.priors.factory import patch_prior_from  # noqa: E402
from padis3d.solvers.reconstruct import SamplerSettings, reconstruct  # noqa: E402

EVALUATIONS = (10, 20, 50, 100, 200, 1000)
INNER = 5  # Algorithm 1's evaluations per level (the cpu budget's)


def settings_for(sampler: str, evaluations: int, schedule: str) -> SamplerSettings:
    """The cpu-budget defaults of ``sampler`` for CT 20 with ``evaluations`` network evaluations on ``schedule``."""
    steps = evaluations if sampler == "dds" else max(1, evaluations // INNER)
    return SamplerSettings.for_task("ct20", sampler, "cpu", steps=steps, schedule=schedule)


def key(cell: dict) -> tuple:
    return cell["sampler"], cell["schedule"], cell["evaluations"], cell["slice"], cell["precision"]


def load(path: Path) -> dict[tuple, dict]:
    if not path.exists():
        return {}
    cells = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {key(c): c for c in cells}


def report(cells: dict[tuple, dict], out_md: Path) -> str:
    """Markdown: mean PSNR / SSIM per (sampler, schedule, evaluations), training slice and test slices apart."""
    rows = ["| sampler | schedule | evaluations | training slice 90 PSNR / SSIM | test slices (mean) PSNR / SSIM "
            "| test slices | s/slice |", "|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for c in cells.values():
        groups.setdefault((c["sampler"], c["schedule"], c["evaluations"], c["precision"]), []).append(c)
    for (sampler, schedule, n, precision), cs in sorted(groups.items()):
        train = [c for c in cs if c["slice"] in TRAIN_SLICES]
        test = [c for c in cs if c["slice"] in TEST_SLICES]
        fmt = (lambda g: f"{statistics.mean(c['psnr'] for c in g):.2f} / {statistics.mean(c['ssim'] for c in g):.3f}"
               if g else "")
        rows.append(f"| {sampler} | {schedule} | {n} | {fmt(train)} | {fmt(test)} | "
                    f"{' '.join(str(c['slice']) for c in sorted(test, key=lambda c: c['slice']))} | "
                    f"{statistics.mean(c['seconds'] for c in cs):.0f} |")
    precisions = sorted({c["precision"] for c in cells.values()})
    text = ("# PSNR against network evaluations (CT 20 views, 128², shipped chest prior)\n\n"
            f"`recipes/evaluations_curve.py`; network precision {', '.join(precisions)}; one thread on a shared "
            "2-core machine (seconds are indicative). Settings: `padis3d/solvers/defaults.py`, budget cpu, with "
            "the number of levels changed (DDS: one evaluation per level; padis: 5 per level). Choose on the "
            "training slice only; the test slices are reported, never tuned on.\n\n" + "\n".join(rows) + "\n")
    out_md.write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "evaluations_curve")
    ap.add_argument("--samplers", nargs="+", choices=("dds", "padis"), default=["dds"])
    ap.add_argument("--schedules", nargs="+", choices=("geometric", "karras"), default=["geometric"])
    ap.add_argument("--evaluations", type=int, nargs="+", default=list(EVALUATIONS))
    ap.add_argument("--slices", type=int, nargs="+", default=[90])
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "chest128_patch.pt"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report", action="store_true", help="only rewrite OUT.md from OUT.jsonl")
    args = ap.parse_args()
    jsonl, md = args.out.with_suffix(".jsonl"), args.out.with_suffix(".md")
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    cells = load(jsonl)
    if not args.report:
        torch.set_num_threads(args.threads)
        loaded = padis3d.load_prior(args.checkpoint, precision=args.precision)
        prior = patch_prior_from(loaded, (128, 128))
        task = make_task("ct20", 128)
        images = dict(zip(args.slices, chest_ct_slices(args.slices, 128)))
        for sampler in args.samplers:
            for schedule in args.schedules:
                for n in args.evaluations:
                    for k in args.slices:
                        cell = {"sampler": sampler, "schedule": schedule, "evaluations": n, "slice": k,
                                "precision": loaded.precision}
                        if key(cell) in cells:
                            continue
                        settings = settings_for(sampler, n, schedule)
                        truth = images[k]
                        x = torch.from_numpy(truth)[None, None]
                        y = task.measure(x, seed=0)
                        t0 = time.perf_counter()
                        rec = reconstruct(prior, task.op, y, settings, baseline=task.baseline(y))
                        img = rec[0, 0].clamp(0, 1).numpy()
                        cell |= {"psnr": psnr(img, truth), "ssim": ssim(img, truth),
                                 "seconds": time.perf_counter() - t0, "settings": settings.to_dict()}
                        cells[key(cell)] = cell
                        with jsonl.open("a") as f:
                            f.write(json.dumps(cell) + "\n")
                        print(f"{sampler} {schedule} {n:>5} evals slice {k}: {cell['psnr']:.2f} dB "
                              f"{cell['ssim']:.3f} ({cell['seconds']:.0f} s)", flush=True)
    print(report(cells, md))


if __name__ == "__main__":
    main()
