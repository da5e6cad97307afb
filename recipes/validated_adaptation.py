"""Self-validated test-time adaptation against today's adaptation and none (issue 28 §1), tuned on chest CT
TRAINING slices only (0-99); ``--images SET:NAME`` reports it on the other sets of
``recipes/holdout_choice.py`` (``test:120``, ``other:camera``, ``ellipses:0``), which nothing is tuned on.

For each (slice, task, method): ``padis3d.reconstruct_image`` with the shipped ``chest128_patch`` prior,
DDS at the CLI defaults (``SamplerSettings.for_task(task, "dds")``) and the CLI's measurements (noiseless
CT 20, deblur with σ = 0.01; the adaptation's discrepancy level set to the simulated noise, as the CLI
does). Methods: ``plain`` (no adaptation), ``adapt`` (``AdaptSettings(validate=False)``, today's
defaults), ``validated`` (``validate=True``, held-out fraction ``--holdout``).

Resumable: one JSON line per result in ``OUT.jsonl`` (PSNR, SSIM, seconds, and for validated runs the
curve, the round chosen and the decision); a rerun skips what is there. ``OUT.md``: the table.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python recipes/validated_adaptation.py --slices 90 95 --tasks ct20 deblur
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python recipes/validated_adaptation.py --slices --images test:115 \
        other:camera other:coins other:moon other:shepp-logan --tasks ct20 deblur --methods plain validated
    .venv/bin/python recipes/validated_adaptation.py --report
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

METHODS = ("plain", "adapt", "validated")
TASKS = {"ct20": ("ct", {"views": 20}), "ct8": ("ct", {"views": 8}), "deblur": ("deblur", {}), "sr4": ("sr", {})}


def run_one(prior, image, task: str, method: str, holdout: float, seed: int, overrides: dict | None = None) -> dict:
    """One reconstruction; its JSON record. ``overrides``: AdaptSettings fields of a ``validated:LABEL`` method."""
    import padis3d
    from padis3d.adapt import AdaptSettings
    from padis3d.image.tasks import default_noise

    name, kw = TASKS[task]
    noise = default_noise(name)
    adapt = None if method == "plain" else AdaptSettings(validate=method.startswith("validated"), holdout=holdout,
                                                         noise_sigma=noise or None, seed=seed, **(overrides or {}))
    r = padis3d.reconstruct_image(image, name, prior=prior, sampler="dds", adapt=adapt, holdout_choice=False, seed=seed,
                                  **kw)
    record = {"psnr": r.metrics["dds"]["psnr"], "ssim": r.metrics["dds"]["ssim"], "seconds": r.seconds,
              "noise": r.noise}
    if r.adapter is not None:
        record["adapt_seconds"] = r.adapter.seconds
        record["steps"] = sum(h.taken for h in r.adapter.history)
        record["stopped"] = r.adapter.stopped
        if r.adapter.validation is not None:
            record["validation"] = r.adapter.validation.to_report()
    return record


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def report(results: list[dict], holdout: float) -> str:
    """The markdown table: PSNR (dB) and seconds per slice and task, the mean gain over plain."""
    lines = ["# Self-validated adaptation on chest CT training slices", "",
             f"Shipped chest128_patch prior, DDS at the CLI defaults, held-out fraction {holdout:g}. PSNR dB "
             "(seconds). `validated`: decision (round chosen / held-out loss un-adapted -> adapted).", "",
             f"| slice | task | {' | '.join(methods(results))} | decision |", "|---|---|" + "---|" * len(methods(results))
             + "---|"]
    cells = {(r["slice"], r["task"], r["method"]): r for r in results if r.get("holdout", holdout) == holdout
             or not r["method"].startswith("validated")}
    keys = sorted({(s, t) for s, t, _ in cells}, key=lambda k: (isinstance(k[0], str), str(k[0]).zfill(3), k[1]))
    names = methods(results)
    gains: dict[str, list[float]] = {m: [] for m in names[1:]}
    times: dict[str, list[float]] = {m: [] for m in names[1:]}
    for s, t in keys:
        row = [cells.get((s, t, m)) for m in names]
        text = [f"{c['psnr']:.2f} ({c['seconds']:.0f} s)" if c else "" for c in row]
        v = row[2]["validation"] if len(row) > 2 and row[2] else None
        decision = (f"{v['decision']} ({v['chosen_round']} / {v['heldout_unadapted']:.3g} -> "
                    f"{v['heldout_adapted']:.3g}){' resampled' * v['resampled_unadapted']}" if v else "")
        lines.append(f"| {s} | {t} | {' | '.join(text)} | {decision} |")
        for m, c in zip(names[1:], row[1:]):
            if c and row[0]:
                gains[m].append(c["psnr"] - row[0]["psnr"])
                times[m].append(c["seconds"] / row[0]["seconds"])
    lines += [""] + [f"* {m} - plain: mean {sum(g) / len(g):+.2f} dB, worst {min(g):+.2f} dB over {len(g)} pairs; "
                     f"time {sum(times[m]) / len(times[m]):.1f}x plain" for m, g in gains.items() if g]
    return "\n".join(lines) + "\n"


def methods(results: list[dict]) -> list[str]:
    """The columns: plain, adapt, validated, then each ``validated:LABEL`` found."""
    extra = sorted({r["method"] for r in results} - set(METHODS))
    return [*METHODS, *extra]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--slices", type=int, nargs="*", default=[90, 95])
    p.add_argument("--images", nargs="*", default=[], metavar="SET:NAME",
                   help="reported only: test:115, other:camera, ellipses:0, ... (recipes/holdout_choice.py's sets)")
    p.add_argument("--tasks", nargs="+", default=["ct20", "deblur"], choices=sorted(TASKS))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--holdout", type=float, default=0.15)
    p.add_argument("--variant", nargs="+", default=None, metavar="LABEL FIELD=VALUE",
                   help="also a validated run with these AdaptSettings fields, as method validated:LABEL "
                        "(e.g. --variant cheap steps=5 every=10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "validated_adaptation")
    p.add_argument("--report", action="store_true", help="only write OUT.md from OUT.jsonl")
    args = p.parse_args(argv)
    variant = None
    if args.variant:
        variant = (f"validated:{args.variant[0]}",
                   {k: float(v) if "." in v or "e" in v else int(v) for k, v in (a.split("=", 1) for a in args.variant[1:])})
        args.methods = [*args.methods, variant[0]]
    if any(not 0 <= s <= 99 for s in args.slices):
        p.error("training slices only (0-99)")
    jsonl, md = args.out.with_suffix(".jsonl"), args.out.with_suffix(".md")
    if not args.report:
        import torch

        import padis3d
        from padis3d.io.sample_data import chest_ct_slices

        torch.set_num_threads(1)
        prior = padis3d.load_prior("chest128_patch")
        done = {(r["slice"], r["task"], r["method"], r.get("holdout")) for r in read(jsonl)}
        jsonl.parent.mkdir(parents=True, exist_ok=True)
        sys.path.insert(0, str(ROOT / "recipes"))
        from holdout_choice import truth_and_seed

        images = [(s, chest_ct_slices([s])[0]) for s in args.slices]
        images += [(item, truth_and_seed(*item.split(":", 1), 128)[0][0, 0].numpy()) for item in args.images]
        for s, image in images:
            for task in args.tasks:
                for method in args.methods:
                    hold = args.holdout if method.startswith("validated") else None
                    if (s, task, method, hold) in done:
                        continue
                    over = variant[1] if variant and method == variant[0] else None
                    record = {"slice": s, "task": task, "method": method, "holdout": hold, "overrides": over,
                              **run_one(prior, image, task, method, args.holdout, args.seed, over)}
                    with jsonl.open("a") as f:
                        f.write(json.dumps(record) + "\n")
                    print(f"slice {s} {task} {method}: {record['psnr']:.2f} dB, {record['seconds']:.0f} s", flush=True)
    md.write_text(report(read(jsonl), args.holdout))
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
