"""The talk's test-time adaptation table at CPU scale (issue 15): priors pre-trained on random
ellipses only, tested on real chest CT.

Rows (DDS for every diffusion row: ``SamplerSettings.for_task(task, "dds")``, the cpu defaults:
50 levels from the baseline re-noised at σ = 0.5, η = 1; until 2026-12-02 100 levels from noise at
σ = 10, η = 0.85, which the adaptation setting was tuned with: on training slice 90 the ellipse
patch prior gains +1.85 dB from it on CT 20 and +2.95 on deblur with the new defaults,
``results/tune_adaptation.jsonl``):

* ``baseline`` (FBP-Hann / blurred / bicubic), ``ADMM-TV``, ``PnP-ADMM`` (the ellipse patch
  prior's denoiser at σ = 0.05): the same calls as ``recipes/paper2d.py`` (imported from it);
* ``whole image`` / ``patches``: DDS with the ellipse whole-image / patch prior;
* ``whole+SS`` / ``patches+SS``: the same with test-time adaptation (:data:`ADAPT`, one fixed
  setting for every task, tuned on chest TRAINING slice 90 with ``recipes/tune_adaptation.py``:
  ``results/tune_adaptation.md``, section "ellipse prior");
* ``chest patches`` / ``chest patches+SS``: the shipped chest prior (trained on chest slices
  0-99) without and with the same adaptation (CT 20).

Images: chest CT TEST slices (default 115, 120, 125 at 128²; the measurements of
``recipes/paper2d.py``: noiseless CT, σ = 0.01 for deblur / SR, noise seeded by the slice), every
task; and images of another kind that ship with scikit-image (``camera``, the Shepp-Logan
phantom, ``coins``; resized to 128² with anti-aliasing, scaled to [0, 1]; ``brain`` needs a
download, so it is not used) for CT 20, with baseline, ADMM-TV and the chest prior rows.

Resumable: one JSON line per (row, task, image) in ``OUT.jsonl`` (with PSNR, SSIM, seconds, the
prior's file, training steps and CPU hours, the sampler and adaptation settings); a rerun skips
the triples already there. The ellipse priors may still be training while this runs: each prior
is copied when its first row runs (so later rows, the whole-image ones last by default, use the
latest checkpoint), into ``--snapshots DIR`` if given, where later runs find and reuse it; every
line records the steps it used.
``--report`` writes ``OUT.md`` (tables, the issue's goals with measured gaps, the time ratio of
adapted to plain sampling) and ``OUT.png`` (CT 20 reconstructions of one slice and of the
other-kind images) from the stored results only.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python recipes/test_time_adaptation.py   # everything
    .venv/bin/python recipes/test_time_adaptation.py --report
    .venv/bin/python recipes/test_time_adaptation.py --smoke --out /tmp/tta_smoke   # seconds
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import padis3d  # noqa: E402
from padis3d.adapt import AdaptSettings, TestTimeAdapter  # noqa: E402
from padis3d.atomic import atomic_path  # noqa: E402
from padis3d.baselines.tasks import Task, make_task  # noqa: E402
from padis3d.io.sample_data import TEST_SLICES, chest_ct_slices  # noqa: E402
from padis3d.metrics import psnr, ssim  # noqa: E402
from padis3d.priors.factory import patch_prior_from  # noqa: E402
from padis3d.priors.patch import PatchPrior  # noqa: E402
from padis3d.solvers.reconstruct import SamplerSettings, reconstruct  # noqa: E402
from recipes.paper2d import CONFIGS, PNP_SIGMA, SMOKE, Row as Paper2dRow, evaluate  # noqa: E402

# One adaptation setting for every task and prior, chosen on chest TRAINING slice 90 (CT 20)
# with the ellipse patch prior (5781 steps): results/tune_adaptation.md, section "ellipse prior":
# LoRA rank 4, lr 3e-3, the CG loss (5 steps), every 5th level with σ <= 0.5: 29.17 dB against
# 27.24 without adaptation (no CG 28.32; lr 1e-3 27.84; σ <= 2 28.91; norm-only lr 1e-2 28.70).
ADAPT = AdaptSettings(mode="lora", rank=4, lr=3e-3, steps=10, first=0, every=5, max_sigma=0.5, cg_iters=5)
SMOKE_ADAPT = {"levels": (2,), "steps": 1}  # smoke: adapt once, at level 2 of 4 (σ ≈ 0.06)
SMOKE_LEVELS = 4

PRIORS = {"ellipse_patch": "checkpoints/ellipse128_patch.pt", "ellipse_whole": "checkpoints/ellipse128_whole.pt",
          "chest_patch": "checkpoints/chest128_patch.pt"}
# smoke: the shipped chest whole-image prior stands in for the ellipse one (which may not exist yet)
SMOKE_PRIORS = PRIORS | {"ellipse_whole": "checkpoints/chest128_whole.pt"}
TASKS = ("ct20", "ct60", "deblur", "sr4")
OTHER_IMAGES = ("camera", "shepp-logan", "coins")
FIGURE_TASK = "ct20"


@dataclass(frozen=True)
class Row:
    """A table row: ``method`` baseline / tv / pnp / dds; ``prior`` a key of :data:`PRIORS`
    (pnp and dds); ``adapt``: test-time adaptation; ``other``: also run on the other-kind
    images (CT 20); ``chest_tasks``: the tasks it runs on the chest slices."""

    label: str
    method: str
    prior: str | None = None
    adapt: bool = False
    other: bool = False
    chest_tasks: tuple[str, ...] = TASKS


ROWS = (Row("baseline", "baseline", other=True), Row("ADMM-TV", "tv", other=True),
        Row("PnP-ADMM", "pnp", "ellipse_patch"),
        Row("chest patches", "dds", "chest_patch", other=True, chest_tasks=("ct20",)),
        Row("chest patches+SS", "dds", "chest_patch", adapt=True, other=True, chest_tasks=("ct20",)),
        Row("patches", "dds", "ellipse_patch"), Row("patches+SS", "dds", "ellipse_patch", True),
        Row("whole image", "dds", "ellipse_whole"), Row("whole+SS", "dds", "ellipse_whole", True))
ROW_BY_LABEL = {r.label: r for r in ROWS}


@dataclass
class LoadedPrior:
    """A prior as used: the :class:`PatchPrior`, its file and training record."""

    prior: PatchPrior
    file: str
    steps: int | None
    cpu_hours: float | None


def other_image(name: str, size: int) -> np.ndarray:
    """``camera``, ``shepp-logan`` or ``coins`` from scikit-image: square (centre crop), resized to
    ``size²`` with anti-aliasing, scaled to [0, 1]; float32."""
    import skimage.data
    from skimage.transform import resize

    raw = {"camera": skimage.data.camera, "shepp-logan": skimage.data.shepp_logan_phantom,
           "coins": skimage.data.coins}[name]().astype(np.float64)
    h, w = raw.shape
    s = min(h, w)
    raw = raw[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    img = resize(raw, (size, size), anti_aliasing=True)
    img = (img - img.min()) / max(img.max() - img.min(), 1e-12)
    return img.astype(np.float32)


def image_and_seed(name: str, size: int) -> tuple[torch.Tensor, int]:
    """``(1, 1, size, size)`` truth and the measurement-noise seed (a chest slice: the slice, as in paper2d)."""
    if name.isdigit():
        return torch.from_numpy(chest_ct_slices([int(name)], size))[:, None], int(name)
    return torch.from_numpy(other_image(name, size))[None, None], 1000 + OTHER_IMAGES.index(name)


def load_snapshot(path: Path, size: int, whole: bool, snapshots: Path | None) -> LoadedPrior:
    """Load a copy of ``path`` (a prior may be rewritten by a training run while this runs).

    ``snapshots``: a folder that keeps the copy (``NAME`` of ``path``): the first run that needs the
    prior copies it there, every later run (a resumed one, or one for other slices) uses that copy,
    so every row of the table uses one checkpoint. None: a temporary copy for this process."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = (snapshots or Path(tmp)) / path.name
        if not copy.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(copy) as part:
                shutil.copyfile(path, part)
            print(f"prior {path} -> snapshot {copy}", flush=True)
        loaded = padis3d.load_prior(copy)
    meta = loaded.meta
    cpu = meta.get("cpu_seconds")
    prior = patch_prior_from(loaded, (size, size), None if whole else "auto")
    return LoadedPrior(prior, str(path), meta.get("steps"), None if cpu is None else round(cpu / 3600, 3))


def sampler_settings(task: str, smoke: bool, seed: int) -> SamplerSettings:
    """The defaults table's DDS settings (smoke: :data:`SMOKE_LEVELS` levels)."""
    return SamplerSettings.for_task(task, "dds", seed=seed, **({"steps": SMOKE_LEVELS} if smoke else {}))


def adapt_settings(task: Task, smoke: bool) -> AdaptSettings:
    """:data:`ADAPT` with the task's noise level for the discrepancy stop (none for noiseless CT)."""
    s = replace(ADAPT, noise_sigma=task.sigma if task.sigma > 0 else None)
    return replace(s, **SMOKE_ADAPT) if smoke else s


def run_dds(prior: PatchPrior, task: Task, y: torch.Tensor, settings: SamplerSettings,
            adapt: AdaptSettings | None) -> tuple[torch.Tensor, dict]:
    """DDS exactly as :func:`padis3d.solvers.reconstruct.reconstruct` (and so ``padis3d reconstruct``)
    runs it: from the task's baseline re-noised at ``sigma_max`` when ``settings.init`` is
    ``'baseline'``, with the adaptation hook when ``adapt`` is given; returns the clamped estimate
    and the adaptation record, with the start the sampler actually used."""
    tta = TestTimeAdapter(prior, task.op, y, adapt) if adapt is not None else None
    baseline = task.baseline(y) if settings.init == "baseline" else None
    out = reconstruct(prior, task.op, y, settings, baseline=baseline, adapt=tta)
    info: dict = {"started_from": "baseline" if baseline is not None else "noise"}
    if tta is not None:
        h = tta.history
        info |= {"adapt_steps": len(h), "adapt_levels": sorted({s.level for s in h}), "stopped": tta.stopped,
                 "loss_first": h[0].loss if h else None, "loss_last": h[-1].loss if h else None,
                 "trainable": tta.adapter.trainable_count()}
    return out.clamp(0, 1), info


RECORD_VERSION = 2
"""Records of version 2 ran DDS from where their settings say (``started_from``). Until then
``run_dds`` started every DDS row from pure noise at ``sigma_max`` while recording
``init='baseline'``: those records are stale, kept in the .jsonl but neither reused nor reported."""


def is_current(record: dict) -> bool:
    """A record that may be reused and reported: any non-diffusion row, or a DDS row of this version
    made with today's sampler and adaptation settings (a rerun never re-reports a result made with
    other settings)."""
    row = ROW_BY_LABEL[record["row"]]
    if row.method != "dds":
        return True
    if record.get("version") != RECORD_VERSION:
        return False
    sampler = sampler_settings(record["task"], record["smoke"], record["sampler"]["seed"]).to_dict()
    adapt = _adapt_dict(record["task"], record["size"], record["smoke"]) if row.adapt else None
    return json.loads(json.dumps(sampler)) == record["sampler"] and json.loads(json.dumps(adapt)) == record["adapt"]


@functools.lru_cache(maxsize=None)
def _adapt_dict(task: str, size: int, smoke: bool) -> dict:
    return asdict(adapt_settings(make_task(task, size), smoke))


def current_results(results: list[dict]) -> list[dict]:
    """The current records, the last one per (row, task, image)."""
    latest = {(r["row"], r["task"], r["image"]): r for r in results if r["row"] in ROW_BY_LABEL and is_current(r)}
    return list(latest.values())


def evaluate_row(row: Row, task: Task, x: torch.Tensor, y: torch.Tensor, prior: LoadedPrior | None,
                 args: argparse.Namespace) -> tuple[torch.Tensor, dict]:
    """The reconstruction of one row and what the record should say about how it was made."""
    if row.method in ("baseline", "tv", "pnp"):
        priors = {("patch", "auto"): (prior.prior, prior.steps)} if prior is not None else {}
        cfg = SMOKE if args.smoke else CONFIGS["cpu"]
        rec = evaluate(Paper2dRow(row.label, row.method), task, x, y, cfg, priors, args)
        extra = {"pnp_sigma": PNP_SIGMA, "pnp_iters": cfg.pnp_iters, "pnp_padding": "noisy"} \
            if row.method == "pnp" else {}  # records without pnp_padding: zeros on the padding (before issue 17)
        return rec, extra | ({"tv_iters": cfg.tv_iters or task.tv_iters} if row.method == "tv" else {})
    settings = sampler_settings(task.name, args.smoke, args.seed)
    adapt = adapt_settings(task, args.smoke) if row.adapt else None
    rec, info = run_dds(prior.prior, task, y, settings, adapt)
    return rec, {"sampler": settings.to_dict(), "adapt": asdict(adapt) if adapt else None, **info}


def plan(args: argparse.Namespace) -> list[tuple[Row, str, str]]:
    """The (row, task, image) triples to compute, row by row in :data:`ROWS` order (or ``--rows``')."""
    rows = [ROW_BY_LABEL[label] for label in args.rows] if args.rows else list(ROWS)
    chest = [str(k) for k in args.slices]
    out = []
    for row in rows:
        for task in [t for t in row.chest_tasks if t in args.tasks]:
            out += [(row, task, k) for k in chest]
        if row.other and "ct20" in args.tasks:
            out += [(row, "ct20", name) for name in args.images]
    return out


def read_results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def save_figure_image(path: Path, key: str, image: np.ndarray) -> None:
    """Add one reconstruction to the figure cache ``path`` (npz, float16; atomic)."""
    stored = dict(np.load(path)) if path.exists() else {}
    stored[key] = image.astype(np.float16)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **stored)


def run(args: argparse.Namespace) -> None:
    """Compute every pending (row, task, image) of the plan, appending one line each to ``OUT.jsonl``."""
    torch.set_num_threads(args.threads)
    jsonl, cache = args.out.with_suffix(".jsonl"), args.out.parent / f"{args.out.name}_images.npz"
    done = {(r["row"], r["task"], r["image"]) for r in current_results(read_results(jsonl))}
    pending = [(row, t, k) for row, t, k in plan(args) if (row.label, t, k) not in done]
    priors: dict[str, LoadedPrior | None] = {}
    paths = SMOKE_PRIORS if args.smoke else PRIORS | args.prior_paths
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    for row, task_name, image in pending:
        name = row.prior
        if name is not None and name not in priors:
            path = ROOT / paths[name] if not Path(paths[name]).is_absolute() else Path(paths[name])
            found = path.exists() or (args.snapshots is not None and (args.snapshots / path.name).exists())
            priors[name] = load_snapshot(path, args.size, name.endswith("whole"), args.snapshots) if found else None
            if priors[name] is None:
                print(f"skipping rows with prior {name}: {path} does not exist", flush=True)
        prior = priors.get(name) if name else None
        if name is not None and prior is None:
            continue
        task = make_task(task_name, args.size)
        x, seed = image_and_seed(image, args.size)
        y = task.measure(x, seed=seed)
        t0 = time.perf_counter()
        rec, extra = evaluate_row(row, task, x, y, prior, args)
        seconds = time.perf_counter() - t0
        record = {"row": row.label, "task": task_name, "image": image, "psnr": psnr(rec, x), "ssim": ssim(rec[0, 0], x[0, 0]),
                  "seconds": round(seconds, 2), "size": args.size, "smoke": args.smoke, "noise_seed": seed,
                  "version": RECORD_VERSION,
                  "prior": None if prior is None else {"file": prior.file, "steps": prior.steps,
                                                       "cpu_hours": prior.cpu_hours}, **extra}
        if task_name == FIGURE_TASK:
            save_figure_image(cache, f"{row.label}/{task_name}/{image}", rec[0, 0].numpy())
        with jsonl.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"{row.label} / {task_name} / {image}: {record['psnr']:.2f} dB / {record['ssim']:.3f} in "
              f"{seconds:.1f} s", flush=True)


# ---------------------------------------------------------------- report


def cell_means(results: list[dict], images: list[str]) -> dict[tuple[str, str], dict]:
    """``{(row, task): {psnr, ssim, seconds, n}}`` over ``images`` (only complete cells are compared)."""
    cells: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        if r["image"] in images:
            cells.setdefault((r["row"], r["task"]), []).append(r)
    return {k: {"psnr": float(np.mean([r["psnr"] for r in v])), "ssim": float(np.mean([r["ssim"] for r in v])),
                "seconds": float(np.mean([r["seconds"] for r in v])), "n": len(v)} for k, v in cells.items()}


def table(means: dict, tasks: list[str], n_images: int) -> list[str]:
    """Markdown: one line per row of :data:`ROWS` with results, ``PSNR / SSIM, s`` per task."""
    out = ["| row | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    for row in ROWS:
        vals = []
        for t in tasks:
            c = means.get((row.label, t))
            n = "" if c is None or c["n"] == n_images else f" ({c['n']}/{n_images})"
            vals.append("–" if c is None else f"{c['psnr']:.2f} / {c['ssim']:.3f}, {c['seconds']:.0f} s{n}")
        if any(v != "–" for v in vals):
            out.append(f"| {row.label} | " + " | ".join(vals) + " |")
    return out


def per_image_table(results: list[dict], task: str, images: list[str]) -> list[str]:
    """Markdown: PSNR / SSIM of each row on each image (``task``)."""
    got = {(r["row"], r["image"]): r for r in results if r["task"] == task and r["image"] in images}
    out = ["| row | " + " | ".join(images) + " |", "|---" * (len(images) + 1) + "|"]
    for row in ROWS:
        vals = [f"{got[(row.label, k)]['psnr']:.2f} / {got[(row.label, k)]['ssim']:.3f}" if (row.label, k) in got
                else "–" for k in images]
        if any(v != "–" for v in vals):
            out.append(f"| {row.label} | " + " | ".join(vals) + " |")
    return out


def goal(means: dict, n: int, a: tuple[str, str], b: tuple[str, str], margin: float, strict: bool = False) -> str:
    """One goal ``mean PSNR(a) >= mean PSNR(b) + margin`` (``>`` if strict) as a table line."""
    ca, cb = means.get(a), means.get(b)
    what = f"{a[0]} {'>' if strict else '≥'} {b[0]}" + (f" + {margin:g} dB" if margin else "") + f" ({a[1]})"
    if ca is None or cb is None or ca["n"] < n or cb["n"] < n:
        return f"| {what} | – | – | not measured (incomplete) |"
    gap = ca["psnr"] - cb["psnr"]
    met = gap > margin if strict else gap >= margin
    return f"| {what} | {ca['psnr']:.2f} vs {cb['psnr']:.2f} | {gap:+.2f} dB | {'met' if met else 'MISSED'} |"


def goals(chest: dict, other: dict, n_chest: int, n_other: int) -> list[str]:
    """The goals of issue 15 with measured gaps (chest test slices; other-kind images for the last two)."""
    out = ["| goal | PSNR dB | gap | |", "|---|---|---|---|"]
    for t in ("ct20", "ct60"):
        out.append(goal(chest, n_chest, ("patches+SS", t), ("ADMM-TV", t), 2.0))
    for t in ("deblur", "sr4"):
        out.append(goal(chest, n_chest, ("patches+SS", t), ("ADMM-TV", t), 0.0))
    for t in TASKS:
        out.append(goal(chest, n_chest, ("patches+SS", t), ("whole+SS", t), 0.0, strict=True))
    out.append(goal(chest, n_chest, ("patches+SS", "ct20"), ("patches", "ct20"), 3.0))
    out.append(goal(chest, n_chest, ("chest patches+SS", "ct20"), ("chest patches", "ct20"), 0.0))
    out.append(goal(other, n_other, ("chest patches+SS", "ct20"), ("chest patches", "ct20"), 0.0).replace(
        "(ct20)", "(ct20, other-kind images)"))
    out.append(goal(other, n_other, ("chest patches+SS", "ct20"), ("ADMM-TV", "ct20"), 0.0).replace(
        "(ct20)", "(ct20, other-kind images)"))
    return out


def time_ratios(means: dict, pairs: list[tuple[str, str]], tasks: list[str]) -> list[str]:
    """Seconds of an adapted row over its plain row, per task."""
    out = ["| adapted / plain | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    for adapted, plain in pairs:
        vals = [f"{means[(adapted, t)]['seconds'] / means[(plain, t)]['seconds']:.2f}x"
                if (adapted, t) in means and (plain, t) in means else "–" for t in tasks]
        if any(v != "–" for v in vals):
            out.append(f"| {adapted} / {plain} | " + " | ".join(vals) + " |")
    return out


def prior_lines(results: list[dict]) -> list[str]:
    """Which checkpoint (file, training steps, CPU hours) each row used."""
    used: dict[str, set] = {}
    for r in results:
        if r.get("prior"):
            p = r["prior"]
            used.setdefault(r["row"], set()).add((Path(p["file"]).name, p["steps"], p["cpu_hours"]))
    return [f"* {row}: " + "; ".join(f"`{f}` {s} steps, {h} CPU-h" for f, s, h in sorted(v, key=str))
            for row, v in used.items()]


def report(args: argparse.Namespace) -> str:
    """``OUT.md`` and ``OUT.png`` from the stored results."""
    results = [r for r in current_results(read_results(args.out.with_suffix(".jsonl"))) if r["smoke"] == args.smoke]
    chest_images = [str(k) for k in args.slices]
    chest, other = cell_means(results, chest_images), cell_means(results, list(args.images))
    ellipse_pairs = [("patches+SS", "patches"), ("whole+SS", "whole image"), ("chest patches+SS", "chest patches")]
    lines = [f"# Test-time adaptation at CPU scale (issue 15): `recipes/test_time_adaptation.py`", "",
             f"PSNR dB / SSIM, mean over the images; s = seconds per image (one thread, wall time, on a shared "
             f"machine: compare seconds only within a column). DDS "
             f"(`SamplerSettings.for_task(task, 'dds')`, {sampler_settings('ct20', args.smoke, 0).steps} levels "
             f"from the task's baseline re-noised at σ = {sampler_settings('ct20', args.smoke, 0).sigma_max:g}, as "
             f"`padis3d reconstruct` runs it) for every diffusion row; adaptation `{adapt_settings(make_task('ct20', args.size), args.smoke)}` "
             f"(deblur / SR: `noise_sigma` = 0.01, the discrepancy stop).", "",
             f"## Chest CT test slices {', '.join(chest_images)} at {args.size}² (priors pre-trained on ellipses "
             f"unless 'chest')", "", *table(chest, list(TASKS), len(chest_images)), "",
             f"## Other-kind images ({', '.join(args.images)}; scikit-image, {args.size}²), CT 20", "",
             *table(other, ["ct20"], len(args.images)), "", "Per image (PSNR dB / SSIM):", "",
             *per_image_table(results, "ct20", list(args.images)), "",
             "## Goals of issue 15 (chest test slices unless stated)", "",
             *goals(chest, other, len(chest_images), len(args.images)), "",
             "## Time: adapted over plain sampling (chest test slices)", "",
             *time_ratios(chest, ellipse_pairs, list(TASKS)), "",
             "## Priors used (file, training steps, CPU hours)", "", *prior_lines(results), ""]
    text = "\n".join(lines)
    with atomic_path(args.out.with_suffix(".md")) as tmp:
        tmp.write_text(text)
    figure(args)
    return text


def figure(args: argparse.Namespace) -> Path | None:
    """``OUT.png``: CT 20, one line per image (the middle test slice, then the other-kind images):
    truth and every row's reconstruction with its PSNR."""
    cache = args.out.parent / f"{args.out.name}_images.npz"
    if not cache.exists():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stored = dict(np.load(cache))
    images = [str(args.slices[len(args.slices) // 2])] + list(args.images)
    images = [k for k in images if any(key.endswith(f"/{FIGURE_TASK}/{k}") for key in stored)]
    labels = [r.label for r in ROWS if any(f"{r.label}/{FIGURE_TASK}/{k}" in stored for k in images)]
    if not images:
        return None
    fig, axes = plt.subplots(len(images), len(labels) + 1, figsize=(1.9 * (len(labels) + 1), 2.0 * len(images)),
                             squeeze=False)
    for ax_line, k in zip(axes, images):
        truth = image_and_seed(k, args.size)[0][0, 0].numpy()
        ax_line[0].imshow(truth, cmap="gray", vmin=0, vmax=1)
        ax_line[0].set_title(f"truth ({'slice ' + k if k.isdigit() else k})", fontsize=7)
        for ax, label in zip(ax_line[1:], labels):
            key = f"{label}/{FIGURE_TASK}/{k}"
            if key in stored:
                rec = stored[key].astype(np.float32)
                ax.imshow(rec, cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"{label}\n{psnr(rec, truth):.2f} dB", fontsize=7)
        for ax in ax_line:
            ax.axis("off")
    fig.suptitle(f"CT 20 views, {args.size}²: priors pre-trained on ellipses unless 'chest'", fontsize=9)
    fig.tight_layout()
    path = args.out.with_suffix(".png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, nargs="+", default=None, help="chest CT test slices (default 115 120 125)")
    ap.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    ap.add_argument("--rows", nargs="+", choices=[r.label for r in ROWS], default=None,
                    help="only these rows, in this order (default: all, whole-image rows last)")
    ap.add_argument("--images", nargs="*", choices=OTHER_IMAGES, default=None,
                    help="other-kind images for CT 20 (default all three; none: --images)")
    for name in PRIORS:
        ap.add_argument(f"--{name.replace('_', '-')}", default=None, help=f"checkpoint (default {PRIORS[name]})")
    ap.add_argument("--snapshots", type=Path, default=None,
                    help="keep the copies of the priors here and reuse them (one checkpoint per prior for the whole "
                         "table while the ellipse priors are still training; default: a fresh copy per process)")
    ap.add_argument("--size", type=int, default=None, help="image size (128: the tuned TV weights exist at 128 and 256)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="seconds: 1 slice, the shepp-logan image, CT 20, "
                                                          f"{SMOKE_LEVELS} DDS levels, one adaptation step")
    ap.add_argument("--report", action="store_true", help="compute nothing: write OUT.md and OUT.png")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "test_time_adaptation",
                    help="writes OUT.jsonl, OUT.md, OUT.png, OUT_images.npz")
    args = ap.parse_args(argv)
    args.slices = args.slices or ([TEST_SLICES[5]] if args.smoke else [115, 120, 125])
    bad = [k for k in args.slices if k not in TEST_SLICES]
    if bad:
        ap.error(f"slices {bad} are not test slices {TEST_SLICES[0]}..{TEST_SLICES[-1]}")
    if args.smoke:
        args.tasks = [t for t in args.tasks if t == "ct20"] if args.tasks == list(TASKS) else args.tasks
    args.images = list(args.images if args.images is not None else (["shepp-logan"] if args.smoke else OTHER_IMAGES))
    args.size = args.size or 128
    args.prior_paths = {name: getattr(args, name) for name in PRIORS if getattr(args, name)}
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.report:
        run(args)
    print(report(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
