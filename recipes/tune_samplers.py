"""Sampler settings tried on TRAINING slices (never on test slices): each SPEC is a comma list of
:class:`padis3d.reconstruct.SamplerSettings` fields; prints PSNR / SSIM / seconds per spec.

    python recipes/tune_samplers.py --slice 90 --task ct20 sampler=dds,steps=100,sigma_max=10,rho=1 \\
        sampler=dds,steps=100,sigma_max=10,rho=10
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

TEXT_FIELDS = ("sampler", "init", "schedule")
INT_FIELDS = ("steps", "inner", "cg_iters", "seed")


def parse_spec(spec: str) -> SamplerSettings:
    """``"sampler=dds,steps=100,rho=1"`` -> SamplerSettings."""
    kw = dict(item.split("=", 1) for item in spec.split(","))
    return SamplerSettings(**{k: v if k in TEXT_FIELDS else int(v) if k in INT_FIELDS else float(v)
                              for k, v in kw.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slice", type=int, default=90)
    ap.add_argument("--task", choices=TASKS, default="ct20")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "chest128_patch.pt"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("specs", nargs="+")
    args = ap.parse_args()
    if args.slice not in TRAIN_SLICES:
        raise SystemExit(f"tune on training slices only ({TRAIN_SLICES[0]}..{TRAIN_SLICES[-1]})")
    torch.set_num_threads(args.threads)
    task = make_task(args.task, args.size)
    x = torch.from_numpy(chest_ct_slices([args.slice], args.size))[:, None]
    y = task.measure(x, seed=args.slice)
    prior = patch_prior_from(padis3d.load_prior(args.checkpoint), (args.size, args.size))
    for spec in args.specs:
        t0 = time.perf_counter()
        rec = reconstruct(prior, task.op, y, parse_spec(spec), baseline=task.baseline(y))[0, 0]
        print(f"{args.slice} {args.task} {spec}: {psnr(rec, x[0, 0]):.2f} / {ssim(rec, x[0, 0]):.3f} "
              f"{time.perf_counter() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
