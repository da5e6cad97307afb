"""The held-out choice between DDS, DDS with ADMM-TV's weight and ADMM-TV (issue 28): measured on every set.

For each image and task (128², CT 20 / CT 8 noiseless, deblur / SR x4 with σ = 0.01), the three candidates of
:func:`padis3d.image.holdout.holdout_candidates` (shipped prior ``chest128_patch``, DDS at the CLI's defaults)
are run on all measurements, and :func:`padis3d.solvers.holdout_choice.choose_by_holdout` (15% held out,
seed 0) picks one from runs on the kept part. Rows: each candidate, the choice, and the oracle (the best
candidate by PSNR, which no method can know). Sets: ``train`` (chest CT training slices 0-99) and
``ellipses`` (random-ellipse phantoms, seeds 7000 + i) are the only ones anything may be tuned on;
``test`` (chest test slices 115, 120, 125) and ``other`` (scikit-image camera, coins, moon, Shepp-Logan) are
reported only; ``test64`` and ``test256`` are the test slices resampled to 64² and 256² (other pixel spacings
than the prior learned; ADMM-TV at its weight for that size).

Resumable: one line per (set, image, task) in ``OUT.jsonl``; ``OUT.md`` is rewritten from it.

    OMP_NUM_THREADS=1 nice python recipes/holdout_choice.py --set train --images 60 90 95
    OMP_NUM_THREADS=1 nice python recipes/holdout_choice.py --set ellipses --images 0 1 2
    OMP_NUM_THREADS=1 nice python recipes/holdout_choice.py --set other
    OMP_NUM_THREADS=1 nice python recipes/holdout_choice.py --set test
    OMP_NUM_THREADS=1 nice python recipes/holdout_choice.py --set test64
    OMP_NUM_THREADS=1 nice python recipes/holdout_choice.py --set test256 --tasks ct20 deblur
    python recipes/holdout_choice.py --report
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
sys.path.insert(0, str(ROOT / "recipes"))

import padis3d  # noqa: E402
from padis3d.baselines import tv_weight  # noqa: E402
from padis3d.baselines.tasks import make_task  # noqa: E402
from padis3d.image.holdout import holdout_candidates  # noqa: E402
from padis3d.io.sample_data import TEST_SLICES, chest_ct_slices  # noqa: E402
from padis3d.metrics import psnr, ssim  # noqa: E402
from padis3d.priors.factory import patch_prior_from  # noqa: E402
from padis3d.solvers.holdout_choice import choose_by_holdout  # noqa: E402
from padis3d.solvers.reconstruct import SamplerSettings, reconstruct  # noqa: E402
from tv_in_dds import OTHER, ellipse_image, other_image  # noqa: E402

TASKS = ("ct20", "ct8", "deblur", "sr4")
SETS = {"train": (["60", "90", "95"], 128), "ellipses": (["0", "1", "2"], 128), "test": (["115", "120", "125"], 128),
        "other": (list(OTHER), 128), "test64": (["115", "120", "125"], 64), "test256": (["115", "120", "125"], 256)}
CANDIDATES = ("dds", "dds+tv", "admm-tv")


def candidates_of(cells: list[dict]) -> tuple[str, ...]:
    """The candidates of these records: the default three, and an ``--extra-prior`` one first if present."""
    extra = sorted({k for c in cells for k in c["rows"]} - {*CANDIDATES, "choice"})
    return (*CANDIDATES[:1], *extra, *CANDIDATES[1:])


def open_results(out: Path) -> tuple[Path, Path, list[dict]]:
    """``(OUT.jsonl, OUT.md, the records so far)`` of a resumable recipe writing to ``out``."""
    jsonl, md = out.with_suffix(".jsonl"), out.with_suffix(".md")
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    return jsonl, md, [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()] if jsonl.exists() else []


def truth_and_seed(set_name: str, name: str, size: int) -> tuple[torch.Tensor, int]:
    """``(1, 1, size, size)`` truth in [0, 1] and its measurement-noise seed."""
    if set_name in ("train", "test", "test64", "test256"):
        k = int(name)
        if (set_name == "train") == (k in TEST_SLICES) or (set_name == "train" and not 0 <= k <= 99):
            raise SystemExit(f"slice {k} does not belong to the set {set_name!r}")
        return torch.from_numpy(chest_ct_slices([k], size))[:, None], k
    if set_name == "ellipses":
        return ellipse_image(int(name), size)
    return torch.from_numpy(other_image(name, size))[None, None], 1000 + OTHER.index(name)


def measure_one(prior, set_name: str, name: str, task_name: str, size: int, fraction: float,
                extra: tuple[str, object] | None = None) -> dict:
    task = make_task(task_name, size)
    truth, seed = truth_and_seed(set_name, name, size)
    y = task.measure(truth, seed=seed)
    baseline = task.baseline(y)
    settings = SamplerSettings.for_task(task_name, "dds", "cpu")
    lam = tv_weight(task_name, size)
    candidates = holdout_candidates(prior, settings, baseline, lam)
    if extra is not None:  # an experiment: DDS with another prior as a fourth candidate
        other = extra[1]
        candidates.insert(1, (extra[0], lambda op, yy: reconstruct(other, op, yy, settings, baseline=baseline)))
    full: dict[str, torch.Tensor] = {}
    seconds: dict[str, float] = {}
    for cname, method in candidates:  # every candidate on all measurements: its own row (and the oracle)
        t0 = time.perf_counter()
        full[cname] = method(task.op, y)
        seconds[cname] = time.perf_counter() - t0

    def cached(cname: str, method):
        return lambda op, yy: full[cname] if op is task.op else method(op, yy)

    t0 = time.perf_counter()
    choice = choose_by_holdout([(c, cached(c, m)) for c, m in candidates], task.op, y, fraction=fraction, seed=0)
    choice_seconds = time.perf_counter() - t0 + seconds[choice.chosen]
    ref = truth[0, 0].numpy()

    def score(x: torch.Tensor) -> dict:
        img = x[0, 0].clamp(0, 1).numpy()
        return {"psnr": psnr(img, ref), "ssim": ssim(img, ref)}

    rows = {c: score(full[c]) | {"seconds": seconds[c]} for c in full}
    rows["choice"] = score(choice.image) | {"seconds": choice_seconds}
    return {"set": set_name, "image": name, "task": task_name, "size": size, "noise_seed": seed, "tv_lambda": lam,
            "settings": settings.to_dict(), "rows": rows, "chosen": choice.chosen, "heldout_loss": choice.losses,
            "split": choice.split}


SET_NAMES = {"train": "chest, training slices", "ellipses": "random ellipses", "test": "chest, test slices",
             "test64": "chest test slices at 64²", "test256": "chest test slices at 256²",
             "other": "scikit-image pictures"}


def _groups(cells: list[dict]) -> list[tuple[str, str, list[dict]]]:
    groups: dict[tuple, list[dict]] = {}
    for c in cells:
        groups.setdefault((c["set"], c["task"]), []).append(c)
    order = {s: i for i, s in enumerate(SETS)}
    return [(s, t, sorted(g, key=lambda c: c["image"]))
            for (s, t), g in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], TASKS.index(kv[0][1])))]


def _mean(g: list[dict], row: str) -> float:
    return statistics.mean(c["rows"][row]["psnr"] for c in g)


def report(cells: list[dict]) -> str:
    """Markdown: the summary (the README's table) and the detail with every candidate and the oracle."""
    lines = ["# Held-out choice: DDS, DDS with ADMM-TV's weight, or ADMM-TV (issue 28)", "",
             "`recipes/holdout_choice.py`: shipped prior `chest128_patch`, DDS at the CLI's defaults; the choice holds "
             "out 15% of the measurements (seed 0), runs each candidate on the rest and keeps the one that predicts "
             "the held-out part best, then runs it on all measurements (`padis3d reconstruct`'s default). PSNR dB, "
             "mean over the images. `train` (chest training slices) and `ellipses` may be tuned on; `test` (chest "
             "test slices 115, 120, 125), `test64` and `test256` (the same at 64² and 256²: other pixel spacings than the prior learned) and `other` (scikit-image camera, coins, "
             "moon, Shepp-Logan) are reported only. Seconds: one thread on a shared 2-core machine.", "",
             "## By set and task", "",
             "Each cell: the default (held-out choice) / ADMM-TV / DDS alone, and in brackets how often the choice "
             "took DDS, DDS+TV, ADMM-TV.", "",
             "| images | " + " | ".join(TASKS) + " |", "|---|" + "---|" * len(TASKS)]
    by_set: dict[str, dict[str, list[dict]]] = {}
    for set_name, task, g in _groups(cells):
        by_set.setdefault(set_name, {})[task] = g
    for set_name, tasks in by_set.items():
        n = max(len(g) for g in tasks.values())
        row = [f"{_mean(g, 'choice'):.2f} / {_mean(g, 'admm-tv'):.2f} / {_mean(g, 'dds'):.2f} ("
               + "/".join(str(sum(c["chosen"] == k for c in g)) for k in candidates_of(cells)) + ")"
               if (g := tasks.get(t)) else "–"
               for t in TASKS]
        lines.append(f"| {SET_NAMES[set_name]} ({n}) | " + " | ".join(row) + " |")
    lines += ["", "## Detail", "",
              "`oracle`: the best candidate per image by PSNR (not a method: it needs the truth); `worst`: the "
              "largest loss of the choice against that best candidate on one image.", "",
              "| set | task | images | ADMM-TV | DDS | DDS+TV | choice | oracle | choice − ADMM-TV | choice − DDS | "
              "worst | choice s / DDS s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for set_name, task, g in _groups(cells):
        names = candidates_of(g)
        oracle = statistics.mean(max(c["rows"][k]["psnr"] for k in names) for c in g)
        worst = min(c["rows"]["choice"]["psnr"] - max(c["rows"][k]["psnr"] for k in names) for c in g)
        ratio = statistics.mean(c["rows"]["choice"]["seconds"] for c in g) / statistics.mean(
            c["rows"]["dds"]["seconds"] for c in g)
        lines.append(f"| {set_name} | {task} | {' '.join(c['image'] for c in g)} | {_mean(g, 'admm-tv'):.2f} | "
                     f"{_mean(g, 'dds'):.2f} | {_mean(g, 'dds+tv'):.2f} | {_mean(g, 'choice'):.2f} | {oracle:.2f} | "
                     f"{_mean(g, 'choice') - _mean(g, 'admm-tv'):+.2f} | {_mean(g, 'choice') - _mean(g, 'dds'):+.2f} | "
                     f"{worst:+.2f} | {ratio:.1f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "holdout_choice")
    ap.add_argument("--set", choices=tuple(SETS), default="train")
    ap.add_argument("--images", nargs="+", default=None)
    ap.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    ap.add_argument("--fraction", type=float, default=0.15)
    ap.add_argument("--checkpoint", default="chest128_patch")
    ap.add_argument("--extra-prior", default=None, metavar="PRIOR",
                    help="an experiment: DDS with this prior as a fourth candidate, named dds-PRIOR (use another --out)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    jsonl, md, cells = open_results(args.out)
    done = {(c["set"], c["image"], c["task"]) for c in cells}
    if not args.report:
        torch.set_num_threads(args.threads)
        names, size = SETS[args.set]
        loaded = padis3d.load_prior(args.checkpoint)
        prior = patch_prior_from(loaded, (size, size))
        extra = None
        if args.extra_prior:
            extra = (f"dds-{Path(args.extra_prior).stem}",
                     patch_prior_from(padis3d.load_prior(args.extra_prior), (size, size)))
        for task_name in args.tasks:
            for name in args.images or names:
                if (args.set, name, task_name) in done:
                    continue
                cell = measure_one(prior, args.set, name, task_name, size, args.fraction, extra)
                cells.append(cell)
                with jsonl.open("a") as f:
                    f.write(json.dumps(cell) + "\n")
                r = cell["rows"]
                print(f"{args.set} {name} {task_name}: TV {r['admm-tv']['psnr']:.2f} DDS {r['dds']['psnr']:.2f} "
                      f"DDS+TV {r['dds+tv']['psnr']:.2f} -> {cell['chosen']} {r['choice']['psnr']:.2f} "
                      f"({r['choice']['seconds']:.0f} s)", flush=True)
    md.write_text(report(cells))
    print(md.read_text())


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
