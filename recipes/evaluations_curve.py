"""PSNR against network evaluations (issue 16): DDS and Algorithm 1 (``padis``) on CT 20 views,
128², the shipped chest prior, at 10, 20, 50, 100, 200 and 1000 evaluations, geometric or Karras
σ grids; every other setting from ``padis3d/solvers/defaults.py`` (budget ``cpu``). DDS spends
one evaluation per level; Algorithm 1 keeps 5 per level (levels = evaluations / 5). Options for
DDS: ``--orders 2`` (the Heun-style step, two evaluations per level: levels = (evaluations + 1) / 2),
``--starts baseline:S`` (start from the FBP re-noised at σ = S instead of noise at σ = 10) and
``--etas`` (re-noising η); every DDS cell sets these explicitly, so the table does not move
when the defaults do.

Choose settings on the TRAINING slice (90, the default ``--slices``); the test slices (115 120
125) are for reporting only. Resumable: each finished cell is a line of ``OUT.jsonl`` keyed by
its settings, a rerun computes only what is missing; ``OUT.md`` is rewritten from it.

    OMP_NUM_THREADS=1 python recipes/evaluations_curve.py --out results/evaluations_curve \\
        --samplers dds --schedules geometric karras --slices 90 115 120 125
    OMP_NUM_THREADS=1 python recipes/evaluations_curve.py --out results/evaluations_curve \
        --orders 1 2 --starts noise baseline:0.5 --etas 0.85 1 --evaluations 20 50 --slices 90
    OMP_NUM_THREADS=1 python recipes/evaluations_curve.py --out results/evaluations_curve --report
"""

from __future__ import annotations

import argparse
import itertools
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


def settings_for(sampler: str, evaluations: int, schedule: str, order: int = 1, start: str = "noise",
                 eta: float = 0.85, task: str = "ct20") -> SamplerSettings:
    """The cpu-budget defaults of ``sampler`` for ``task`` with at most ``evaluations`` network evaluations
    on ``schedule``; DDS with step ``order``, ``start`` (``noise``: σ = 10, or ``baseline:S``) and ``eta``."""
    if sampler != "dds":
        return SamplerSettings.for_task(task, sampler, "cpu", steps=max(1, evaluations // INNER), schedule=schedule)
    init, sigma_max = ("noise", 10.0) if start == "noise" else ("baseline", float(start.split(":")[1]))
    return SamplerSettings.for_task(task, "dds", "cpu", steps=(evaluations + order - 1) // order, schedule=schedule,
                                    order=order, init=init, sigma_max=sigma_max, eta=eta)


def start_kind(text: str) -> str:
    """argparse type of ``--starts``: ``noise`` or ``baseline:S`` with ``S > 0``."""
    if text != "noise":
        kind, _, level = text.partition(":")
        try:
            ok = kind == "baseline" and float(level) > 0
        except ValueError:
            ok = False
        if not ok:
            raise argparse.ArgumentTypeError(f"{text!r}: give 'noise' or 'baseline:S' with S > 0")
    return text


def key(cell: dict) -> tuple:
    return (cell["sampler"], cell["schedule"], cell["evaluations"], cell["slice"], cell["precision"],
            cell.get("order", 1), cell.get("start", "noise"), cell.get("eta", 0.85), cell.get("task", "ct20"))


def load(path: Path) -> dict[tuple, dict]:
    if not path.exists():
        return {}
    cells = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {key(c): c for c in cells}


def listed(cells: list[dict]) -> str:
    return " ".join(str(c["slice"]) for c in sorted(cells, key=lambda c: c["slice"]))


def report(cells: dict[tuple, dict], out_md: Path) -> str:
    """Markdown: mean PSNR / SSIM per (sampler, schedule, evaluations), training slice and test slices apart."""
    rows = ["| task | sampler | schedule | step | start | η | evaluations | training slices (mean) PSNR / SSIM | training slices "
            "| test slices (mean) PSNR / SSIM | test slices | s/slice |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for c in cells.values():
        groups.setdefault((c.get("task", "ct20"), c["sampler"], c["schedule"], c.get("order", 1), c.get("start", "noise"),
                           c.get("eta", 0.85) if c["sampler"] == "dds" else "",
                           SamplerSettings(**c["settings"]).evaluations, c["precision"]), []).append(c)
    for (task, sampler, schedule, order, start, eta, n, precision), cs in sorted(
            groups.items(), key=lambda kv: (*kv[0][:5], str(kv[0][5]), kv[0][6])):
        train = [c for c in cs if c["slice"] in TRAIN_SLICES]
        test = [c for c in cs if c["slice"] in TEST_SLICES]
        fmt = (lambda g: f"{statistics.mean(c['psnr'] for c in g):.2f} / {statistics.mean(c['ssim'] for c in g):.3f}"
               if g else "")
        step = "Heun" if order == 2 else "Euler/DDIM" if sampler == "dds" else "Alg. 1"
        rows.append(f"| {task} | {sampler} | {schedule} | {step} | {start} | {eta} | {n} | {fmt(train)} | {listed(train)} | {fmt(test)} | "
                    f"{listed(test)} | "
                    f"{statistics.mean(c['seconds'] for c in cs):.0f} |")
    precisions = sorted({c["precision"] for c in cells.values()})
    text = ("# PSNR against network evaluations (CT 20 views unless the task column says otherwise; 128², "
            "shipped chest prior)\n\n"
            f"`recipes/evaluations_curve.py`; network precision {', '.join(precisions)}; one thread on a shared "
            "2-core machine (seconds are indicative). Settings: `padis3d/solvers/defaults.py`, budget cpu, with "
            "the number of levels changed (DDS: one evaluation per level, two with the Heun step but at the last; "
            "padis: 5 per level); DDS cells set their start (`noise`: σ = 10; `baseline:S`: the FBP re-noised at σ = S) and η explicitly. Choose on the "
            "training slices only; the test slices are reported, never tuned on.\n\n" + "\n".join(rows) + "\n")
    out_md.write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "evaluations_curve")
    ap.add_argument("--samplers", nargs="+", choices=("dds", "padis"), default=["dds"])
    ap.add_argument("--schedules", nargs="+", choices=("geometric", "karras"), default=["geometric"])
    ap.add_argument("--evaluations", type=int, nargs="+", default=list(EVALUATIONS))
    ap.add_argument("--orders", type=int, nargs="+", choices=(1, 2), default=[1], help="DDS step order(s)")
    ap.add_argument("--starts", type=start_kind, nargs="+", default=["noise"], help="DDS start(s): noise, baseline:S")
    ap.add_argument("--tasks", nargs="+", choices=("ct20", "ct8", "ct60", "deblur", "sr4"), default=["ct20"])
    ap.add_argument("--etas", type=float, nargs="+", default=[0.85], help="DDS re-noising η value(s) in [0, 1]")
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
        tasks = {t: make_task(t, 128) for t in args.tasks}
        images = dict(zip(args.slices, chest_ct_slices(args.slices, 128)))
        for sampler in args.samplers:
            variants = (list(itertools.product(args.orders, args.starts, args.etas)) if sampler == "dds"
                        else [(1, "noise", 0.85)])
            for task_name, schedule, (order, start, eta), n, k in itertools.product(
                    args.tasks, args.schedules, variants, args.evaluations, args.slices):
                task = tasks[task_name]
                cell = {"task": task_name, "sampler": sampler, "schedule": schedule, "evaluations": n, "slice": k,
                        "precision": loaded.precision, "order": order, "start": start, "eta": eta}
                if key(cell) in cells:
                    continue
                settings = settings_for(sampler, n, schedule, order, start, eta, task_name)
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
                print(f"{task_name} {sampler} {schedule} order {order} {start} η {eta} {settings.evaluations:>5} evals slice {k}: {cell['psnr']:.2f} dB "
                      f"{cell['ssim']:.3f} ({cell['seconds']:.0f} s)", flush=True)
    print(report(cells, md))


if __name__ == "__main__":
    main()
