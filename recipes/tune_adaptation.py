"""Does test-time adaptation help DDS with the shipped chest prior? A small grid (issue 15).

On chest CT TRAINING slices only (0-99; the test slices 110-132 are refused), one task (default
CT 20, noiseless unless ``--ct-sigma``), DDS (``--dds legacy``, the default and the grid's first
setting: 100 geometric levels from noise at σ = 10 to 0.005, η = 0.85, 5 CG steps, ρ = 1;
``--dds cpu``: today's CPU defaults, 50 levels from the FBP at σ = 0.5, η = 1), with and without adaptation
(:class:`padis3d.adapt.TestTimeAdapter`) for each configuration given as
``name:mode:rank:lr[:cg]`` (``none`` = plain DDS). Results are appended to ``--out`` (JSON
lines; a configuration already there is skipped, so an interrupted run resumes).

    nice -n 15 .venv/bin/python recipes/tune_adaptation.py --slices 90 \\
        --configs none lora4:lora:4:1e-3 lora4-lr1e-4:lora:4:1e-4 norm:norm:0:1e-3 all:all:0:1e-4

``--ellipses N`` adds N random-ellipse phantoms (held out from the ellipse training set): out
of distribution for the chest prior, and allowed for tuning (issue 15: tune on training slices
or ellipses, never on the test slices).

``--prior ellipse`` (or a checkpoint path) tunes another prior than the shipped chest one: the
random-ellipse patch prior is still training, so copy it first (``cp checkpoints/ellipse128_patch.pt
/tmp/ellipse128_patch_STEPS.pt`` and pass that path) so a run uses one consistent file; the key of
every result records the prior's file name and training steps.

``--smoke``: 3 levels, 1 adaptation step, a 32² image (checks the wiring in seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from padis3d.adapt import AdaptSettings, TestTimeAdapter
from padis3d.baselines.tasks import make_task
from padis3d.io.sample_data import chest_ct_slices
from padis3d.metrics import psnr, ssim
from padis3d.priors.checkpoint import load_prior
from padis3d.priors.factory import patch_prior_from
from padis3d.solvers.common import init_state
from padis3d.solvers.dds import dds
from padis3d.solvers.schedules import geometric_sigmas

DDS_SETTINGS = {"legacy": {"levels": 100, "sigma_max": 10.0, "sigma_min": 0.005, "eta": 0.85, "cg_iters": 5,
                           "rho": 1.0, "init": "noise"},
                "cpu": {"levels": 50, "sigma_max": 0.5, "sigma_min": 0.005, "eta": 1.0, "cg_iters": 5, "rho": 1.0,
                        "init": "baseline"}}  # padis3d/solvers/defaults.py's DDS cpu row (CT 20)


def parse_config(text: str) -> dict:
    """``none`` or ``name:mode:rank:lr[:cg]`` -> a dict of AdaptSettings fields (``None`` for none)."""
    if text == "none":
        return {"name": "none", "settings": None}
    parts = text.split(":")
    if len(parts) not in (4, 5):
        raise SystemExit(f"config {text!r}: expected name:mode:rank:lr[:cg]")
    name, mode, rank, lr = parts[:4]
    fields = {"mode": mode, "rank": max(1, int(rank)), "lr": float(lr)}
    if len(parts) == 5:
        fields["cg_iters"] = int(parts[4])
    return {"name": name, "settings": fields}


def run_one(prior, task, truth: torch.Tensor, y: torch.Tensor, config: dict, args) -> dict:
    """One DDS run (adapted or not); PSNR/SSIM of the clamped estimate, wall time, adaptation log."""
    dds_cfg = DDS_SETTINGS[args.dds]
    sigmas = geometric_sigmas(dds_cfg["sigma_max"], dds_cfg["sigma_min"], args.levels)
    gen = torch.Generator().manual_seed(args.seed)
    x = init_state(prior, (1, 1), dds_cfg["sigma_max"], generator=gen,
                   baseline=task.baseline(y) if dds_cfg["init"] == "baseline" else None)
    tta = None
    if config["settings"] is not None:
        settings = AdaptSettings(**config["settings"], steps=args.steps, first=args.first, every=args.every,
                                 levels=tuple(args.adapt_levels) if args.adapt_levels else None,
                                 max_sigma=args.max_sigma,
                                 noise_sigma=args.ct_sigma if args.discrepancy and args.ct_sigma > 0 else None,
                                 validate=False)  # tunes the adapter itself; dds() has no un-adapted fallback
        tta = TestTimeAdapter(prior, task.op, y, settings)
    t0 = time.time()
    out = dds(tta.prior if tta else prior, x, sigmas, operator=task.op, y=y, rho=dds_cfg["rho"],
              cg_iters=dds_cfg["cg_iters"], eta=dds_cfg["eta"], generator=gen, adapt=tta)
    seconds = time.time() - t0
    est = out.clamp(0, 1)
    record = {"psnr": psnr(est, truth), "ssim": ssim(est[0, 0], truth[0, 0]), "seconds": round(seconds, 1),
              "residual": float((task.op(out) - y).norm())}
    if tta is not None:
        h = tta.history
        record.update(adapt_steps=len(h), loss_first=h[0].loss, loss_last=h[-1].loss, stopped=tta.stopped,
                      trainable=tta.adapter.trainable_count())
    return record


PRIORS = {"chest": "checkpoints/chest128_patch.pt", "ellipse": "checkpoints/ellipse128_patch.pt"}


def prior_identity(path: str) -> dict:
    """``{}`` for the shipped chest prior (the first grid's keys), else its file name and training steps."""
    if Path(path) == Path(PRIORS["chest"]):
        return {}
    return {"prior": Path(path).name, "prior_steps": load_prior(path).meta.get("steps")}


def run_key(text: str, args: argparse.Namespace) -> tuple[dict, str]:
    """The parsed configuration and the key of everything a result depends on (resume)."""
    config = parse_config(text)
    key = json.dumps({"task": args.task, "levels": args.levels, "steps": args.steps, "first": args.first,
                      "every": args.every, "ct_sigma": args.ct_sigma, "discrepancy": args.discrepancy,
                      "seed": args.seed, "size": args.size, "settings": config["settings"],
                      **({"adapt_levels": args.adapt_levels} if args.adapt_levels else {}),
                      **({"max_sigma": args.max_sigma} if args.max_sigma else {}),
                      **({"dds": args.dds} if args.dds != "legacy" else {}),
                      **args.prior_identity}, sort_keys=True)
    return config, key


def levels_text(key: dict) -> str:
    """Which levels adapted, as the table shows it."""
    if key["settings"] is None:
        return "-"
    if key.get("adapt_levels"):
        return ",".join(map(str, key["adapt_levels"]))
    rule = f"first {key['first']} + every {key['every']}"
    return rule + (f", σ <= {key['max_sigma']:g}" if key.get("max_sigma") else "")


def report_table(path: Path) -> str:
    """The results in ``path`` as a Markdown table (one row per run, in file order)."""
    rows = ["| prior | image | config | task | noise σ | discrepancy stop | seed | adapted levels | PSNR dB | SSIM | "
            "adapt steps | stopped | seconds |", "|" + "---|" * 13]
    for r in map(json.loads, path.read_text().splitlines()):
        k = json.loads(r["key"])
        prior = f"{k['prior'].split('_')[0]} ({k['prior_steps']} steps)" if "prior" in k else "chest"
        rows.append(f"| {prior} | {r['slice']} | {r['config']}{' (DDS ' + k['dds'] + ')' if k.get('dds') else ''} | {k['task']} | {k['ct_sigma']:g} | "
                    f"{'yes' if k['discrepancy'] else 'no'} | {k['seed']} | {levels_text(k)} | "
                    f"{r['psnr']:.2f} | {r['ssim']:.4f} | "
                    f"{r.get('adapt_steps', 0)} | {r.get('stopped') or '-'} | {r['seconds']:.0f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", default="chest",
                    help="chest, ellipse (the checkpoints/ files) or a checkpoint path (a copy of a prior in training)")
    ap.add_argument("--task", default="ct20")
    ap.add_argument("--slices", type=int, nargs="*", default=[90])
    ap.add_argument("--ellipses", type=int, default=0,
                    help="also run on this many random-ellipse phantoms (seed 1, held out from --data ellipses' "
                         "seed-0 training set): out of distribution for the chest prior, allowed for tuning")
    ap.add_argument("--configs", nargs="+", default=["none", "lora4:lora:4:1e-3"])
    ap.add_argument("--dds", choices=tuple(DDS_SETTINGS), default="legacy",
                    help="DDS settings: legacy (100 levels from noise, the first grid's) or cpu (today's defaults)")
    ap.add_argument("--levels", type=int, default=None, help="noise levels (default: the --dds setting's)")
    ap.add_argument("--steps", type=int, default=10, help="Adam steps per adapted level")
    ap.add_argument("--first", type=int, default=4)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--adapt-levels", type=int, nargs="+", default=None,
                    help="adapt at these level indices instead of --first/--every")
    ap.add_argument("--max-sigma", type=float, default=None, help="adapt only at levels with σ at most this")
    ap.add_argument("--ct-sigma", type=float, default=0.0, help="Gaussian sinogram noise (CT tasks)")
    ap.add_argument("--discrepancy", action="store_true", help="stop adapting at the noise level (needs --ct-sigma)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--out", type=Path, default=Path("results/tune_adaptation.jsonl"))
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--report", action="store_true", help="print --out as a Markdown table and exit")
    args = ap.parse_args(argv)
    args.levels = args.levels or DDS_SETTINGS[args.dds]["levels"]
    if args.report:
        print(report_table(args.out))
        return 0
    if any(not 0 <= s <= 99 for s in args.slices):
        raise SystemExit("tune on training slices 0-99 only (test slices 110-132 are for the final table)")
    if args.smoke:
        args.levels, args.steps, args.first, args.every, args.size = 3, 1, 1, 2, 32
    torch.set_num_threads(1)
    args.checkpoint = PRIORS.get(args.prior, args.prior)
    args.prior_identity = prior_identity(args.checkpoint)
    done = set()
    if args.out.exists():
        done = {(r["slice"], r["config"], r["key"]) for r in map(json.loads, args.out.read_text().splitlines())}
    names: list[int | str] = [*args.slices, *(f"ellipse{i}" for i in range(args.ellipses))]
    pending = [(name, config, key) for name in names for config, key in map(lambda t: run_key(t, args), args.configs)
               if (name, config["name"], key) not in done]
    if not pending:
        return 0
    prior = patch_prior_from(load_prior(args.checkpoint), (args.size, args.size),
                             tile=16 if args.size < 48 else "auto")
    task = make_task(args.task, args.size, ct_sigma=args.ct_sigma)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    phantoms = None
    if args.ellipses:
        from padis3d.training.phantoms import random_ellipses
        phantoms = torch.from_numpy(random_ellipses(args.ellipses, args.size, seed=1))[:, None]
    images: dict[int | str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, config, key in pending:
        if name not in images:
            truth = (phantoms[int(name[7:])][None] if isinstance(name, str)
                     else torch.from_numpy(chest_ct_slices([name], args.size))[:, None])
            images = {name: (truth, task.measure(truth, seed=args.seed))}
        truth, y = images[name]
        record = {"slice": name, "config": config["name"], "key": key, **run_one(prior, task, truth, y, config, args)}
        print(json.dumps({k: v for k, v in record.items() if k != "key"}), flush=True)
        with args.out.open("a") as f:
            f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
