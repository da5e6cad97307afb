"""Sampler settings tried on TRAINING slices (never on test slices): each SPEC is a comma list of
:class:`padis3d.solvers.reconstruct.SamplerSettings` fields on top of the task's defaults
(``padis3d/solvers/defaults.py``, budget ``--budget``); prints PSNR / SSIM / seconds per spec.

    python recipes/tune_samplers.py --slice 90 --task ct20 sampler=dds,rho=1 sampler=dds,rho=10
    python recipes/tune_samplers.py --slice 90 --task ct20 sampler=padis,step_size=1.0 sampler=padis
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import padis3d  # noqa: E402
from padis3d.baselines.tasks import TASKS, make_task  # noqa: E402
from padis3d.metrics import psnr, ssim  # noqa: E402
from padis3d.priors.factory import patch_prior_from  # noqa: E402
from padis3d.solvers.reconstruct import SamplerSettings, reconstruct  # noqa: E402
from padis3d.io.sample_data import TRAIN_SLICES, chest_ct_slices  # noqa: E402

TEXT_FIELDS = ("sampler", "init", "schedule", "step_rule", "budget")
INT_FIELDS = ("steps", "inner", "cg_iters", "seed")


def parse_spec(spec: str, task: str, budget: str) -> SamplerSettings:
    """``"sampler=dds,rho=1"`` -> the defaults of (task, sampler, budget) with these fields on top."""
    kw = dict(item.split("=", 1) for item in spec.split(","))
    kw = {k: v if k in TEXT_FIELDS else int(v) if k in INT_FIELDS else float(v) for k, v in kw.items()}
    return SamplerSettings.for_task(task, kw.pop("sampler", "padis"), kw.pop("budget", budget), **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slice", type=int, default=90)
    ap.add_argument("--task", choices=TASKS, default="ct20")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "chest128_patch.pt"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budget", choices=("cpu", "paper"), default="cpu")
    ap.add_argument("--whole", action="store_true", help="the whole-image prior (checkpoints/chest128_whole.pt)")
    ap.add_argument("specs", nargs="+")
    args = ap.parse_args()
    if args.slice not in TRAIN_SLICES:
        raise SystemExit(f"tune on training slices only ({TRAIN_SLICES[0]}..{TRAIN_SLICES[-1]})")
    torch.set_num_threads(args.threads)
    task = make_task(args.task, args.size)
    x = torch.from_numpy(chest_ct_slices([args.slice], args.size))[:, None]
    y = task.measure(x, seed=args.slice)
    checkpoint = str(ROOT / "checkpoints" / "chest128_whole.pt") if args.whole else args.checkpoint
    prior = patch_prior_from(padis3d.load_prior(checkpoint), (args.size, args.size))
    for spec in args.specs:
        t0 = time.perf_counter()
        rec = reconstruct(prior, task.op, y, parse_spec(spec, args.task, args.budget),
                          baseline=task.baseline(y))[0, 0].clamp(0, 1)
        print(f"{args.slice} {args.task} {spec}: {psnr(rec, x[0, 0]):.2f} / {ssim(rec, x[0, 0]):.3f} "
              f"{time.perf_counter() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
