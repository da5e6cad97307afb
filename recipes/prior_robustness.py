"""Does a prior travel? DDS at the CLI's defaults with each prior on every set (issue 28 §3).

For each checkpoint, set, image and task (the sets of ``recipes/holdout_choice.py``: chest ``train`` and
``test`` slices at 128², ``test256`` (another pixel spacing), ``ellipses`` and ``other``), the PSNR/SSIM of
DDS with the table's settings (no held-out choice, so the prior alone is compared). Used to decide whether
the augmented prior (``recipes/train_cpu_priors.sh patch-aug``) replaces the shipped one: it must cost
<= 0.3 dB on the chest test slices and gain elsewhere. Nothing is tuned here.

Resumable: one line per (checkpoint, set, image, task) in ``OUT.jsonl``; ``OUT.md`` is rewritten from it.

    OMP_NUM_THREADS=1 nice python recipes/prior_robustness.py --checkpoints chest128_patch RUNS/chest128_patch_aug/prior.pt \\
        --set test --tasks ct20 ct8 deblur sr4
    python recipes/prior_robustness.py --report
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
sys.path.insert(0, str(ROOT / "recipes"))

import padis3d  # noqa: E402
from holdout_choice import SETS, TASKS, open_results, truth_and_seed  # noqa: E402
from padis3d.baselines.tasks import make_task  # noqa: E402
from padis3d.metrics import psnr, ssim  # noqa: E402
from padis3d.priors.factory import patch_prior_from  # noqa: E402
from padis3d.solvers.reconstruct import SamplerSettings, reconstruct  # noqa: E402


def label(checkpoint: str) -> str:
    """A prior's row name: its shipped name, or its run folder's name for a ``.../prior.pt``."""
    p = Path(checkpoint)
    return p.parent.name if p.name == "prior.pt" else p.stem


def report(cells: list[dict]) -> str:
    priors = list(dict.fromkeys(c["prior"] for c in cells))
    lines = ["# DDS with each prior on every set (issue 28 §3)", "",
             "`recipes/prior_robustness.py`: DDS at the CLI's defaults (`SamplerSettings.for_task(task, 'dds')`, no "
             "held-out choice), PSNR dB mean over the images each prior was run on (SSIM in the jsonl). Nothing is "
             "tuned here.", "",
             "| set | task | images | " + " | ".join(priors) + " |", "|---|---|---|" + "---|" * len(priors)]
    keys = list(dict.fromkeys((c["set"], c["task"]) for c in cells))
    order = {s: i for i, s in enumerate(SETS)}
    for set_name, task in sorted(keys, key=lambda k: (order[k[0]], TASKS.index(k[1]))):
        by_prior = {p: {c["image"]: c["psnr"] for c in cells if (c["set"], c["task"], c["prior"]) == (set_name, task, p)}
                    for p in priors}
        common = set.intersection(*(set(v) for v in by_prior.values() if v)) if any(by_prior.values()) else set()
        if not common:
            continue
        cols = [f"{statistics.mean(by_prior[p][i] for i in common):.2f}" if set(common) <= set(by_prior[p]) else "–"
                for p in priors]
        lines.append(f"| {set_name} | {task} | {' '.join(sorted(common))} | " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "prior_robustness")
    ap.add_argument("--checkpoints", nargs="+", default=["chest128_patch"])
    ap.add_argument("--set", choices=tuple(SETS), default="test")
    ap.add_argument("--images", nargs="+", default=None)
    ap.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    jsonl, md, cells = open_results(args.out)
    done = {(c["prior"], c["set"], c["image"], c["task"]) for c in cells}
    if not args.report:
        torch.set_num_threads(args.threads)
        names, size = SETS[args.set]
        for checkpoint in args.checkpoints:
            loaded = padis3d.load_prior(checkpoint)
            prior = patch_prior_from(loaded, (size, size))
            steps = loaded.meta.get("steps")
            for task_name in args.tasks:
                task = make_task(task_name, size)
                settings = SamplerSettings.for_task(task_name, "dds", "cpu")
                for name in args.images or names:
                    if (label(checkpoint), args.set, name, task_name) in done:
                        continue
                    truth, seed = truth_and_seed(args.set, name, size)
                    y = task.measure(truth, seed=seed)
                    t0 = time.perf_counter()
                    x = reconstruct(prior, task.op, y, settings, baseline=task.baseline(y))
                    img, ref = x[0, 0].clamp(0, 1).numpy(), truth[0, 0].numpy()
                    cell = {"prior": label(checkpoint), "checkpoint": str(checkpoint), "steps": steps,
                            "cpu_hours": round(loaded.meta.get("cpu_seconds", 0) / 3600, 3),
                            "set": args.set, "image": name, "task": task_name, "size": size, "noise_seed": seed,
                            "psnr": psnr(img, ref), "ssim": ssim(img, ref), "seconds": time.perf_counter() - t0,
                            "settings": settings.to_dict()}
                    cells.append(cell)
                    with jsonl.open("a") as f:
                        f.write(json.dumps(cell) + "\n")
                    print(f"{cell['prior']} {args.set} {name} {task_name}: {cell['psnr']:.2f} dB", flush=True)
    md.write_text(report(cells))
    print(md.read_text())


if __name__ == "__main__":
    main()
