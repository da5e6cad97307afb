"""``padis3d demo``: the five-minute tour. Held-out chest CT slices, sparse-view CT (20
views, parallel beam, 128²), reconstructed by FBP, ADMM-TV, PnP-ADMM with the shipped patch
prior's denoiser, and posterior sampling with that prior (the DDS data-consistency sampler
by default, or the paper's Algorithm 1); prints a PSNR/SSIM table and writes ``demo.png`` (truth, each method, error maps) and
``demo.json`` (metrics, settings, seconds, versions), atomically.

The demo runs fewer slices and sampler levels than ``recipes/paper2d.py`` (all 23 test
slices); it says so in its output.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from padis3d.atomic import save_figure, write_json
from padis3d.errors import PadisError
from padis3d.priors.registry import DEFAULT_PRIOR, SHIPPED

DEFAULT_CHECKPOINT = SHIPPED / f"{DEFAULT_PRIOR}.pt"


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs: test ``slices`` of the bundled chest CT at ``size``², CT ``task``
    (``ct20`` or ``ct8``), ADMM-TV with ``tv_iters`` PDHG iterations, and the patch prior with
    ``sampler``: ``dds`` (Tweedie estimate + CG data step + re-noising with ``eta``, ``steps`` network
    evaluations, from the FBP re-noised at ``sigma_max``: the cpu defaults of
    :mod:`padis3d.solvers.defaults`) or ``padis`` (the paper's Algorithm 1, ``steps x inner``
    evaluations from noise, data step ``zeta_norm / ||A||``); the network computes in ``precision``
    (:mod:`padis3d.precision`; ``auto``: bf16 where the CPU has it natively)."""

    slices: tuple[int, ...] = (115, 125)
    task: str = "ct20"
    size: int = 128
    tv_iters: int = 500
    sampler: str = "dds"
    steps: int = 50
    inner: int = 1
    sigma_max: float = 0.5
    eta: float = 1.0
    init: str = "baseline"
    zeta_norm: float = 5.0
    pnp_sigma: float = 0.05
    pnp_iters: int = 30
    seed: int = 0
    checkpoint: str = str(DEFAULT_CHECKPOINT)
    precision: str = "auto"
    tv: float | None = None  # DDS's TV weight in the data step; None: the cpu budget's for the task

    @property
    def tv_weight(self) -> float:
        """The λ of DDS's TV data step that runs (0 for the PaDIS sampler)."""
        from padis3d.solvers.defaults import DDS_TV

        return 0.0 if self.sampler != "dds" else (DDS_TV[self.task] if self.tv is None else self.tv)

    @property
    def evaluations(self) -> int:
        return self.steps * (self.inner if self.sampler == "padis" else 1)

    @classmethod
    def for_sampler(cls, sampler: str, **kw: Any) -> DemoConfig:
        """Defaults per sampler: DDS 50 levels from the FBP at σ = 0.5, η = 1; PaDIS 40 levels x 5 from
        noise at σ = 3 (200 evaluations)."""
        if sampler == "padis":
            kw = {"steps": 40, "inner": 5, "sigma_max": 3.0, "init": "noise", "eta": 0.85} | kw
        elif sampler != "dds":
            raise PadisError(f"the demo's samplers are 'dds' and 'padis', got {sampler!r}")
        return cls(sampler=sampler, **kw)

    def smoke(self) -> DemoConfig:
        """Seconds instead of minutes: one slice, 2 levels x 1 iteration, 10 TV iterations."""
        return replace(self, slices=self.slices[:1], tv_iters=10, steps=2, inner=1, pnp_iters=2)


def _reconstructions(cfg: DemoConfig, x: torch.Tensor, prior: Any, progress: bool) -> dict[str, tuple[np.ndarray, float]]:
    from padis3d.baselines.pnp import pnp_admm
    from padis3d.baselines.tasks import make_task
    from padis3d.baselines.tv import admm_tv
    from padis3d.baselines.tv_weights import tv_weight
    from padis3d.solvers.reconstruct import ProgressBar, SamplerSettings, reconstruct

    task = make_task(cfg.task, cfg.size)
    y = task.measure(x, seed=cfg.seed)
    out: dict[str, tuple[np.ndarray, float]] = {}
    t0 = time.perf_counter()
    fbp = task.baseline(y)
    out["FBP-Hann"] = (fbp[0, 0].numpy(), time.perf_counter() - t0)
    t0 = time.perf_counter()
    tv = admm_tv(task.op, y, tv_weight(cfg.task, cfg.size), max_iter=cfg.tv_iters, step_ratio=task.tv_step_ratio)
    out["ADMM-TV"] = (tv[0, 0].numpy(), time.perf_counter() - t0)
    t0 = time.perf_counter()
    pnp = pnp_admm(task.op, y, prior.image_denoiser(cfg.pnp_sigma, torch.Generator().manual_seed(cfg.seed)),
                   iters=cfg.pnp_iters, x0=fbp)
    out["PnP-ADMM"] = (pnp[0, 0].clamp(0, 1).numpy(), time.perf_counter() - t0)
    settings = SamplerSettings(sampler=cfg.sampler, steps=cfg.steps, inner=cfg.inner, sigma_max=cfg.sigma_max,
                               eta=cfg.eta, init=cfg.init, zeta=cfg.zeta_norm / task.op.norm(), seed=cfg.seed,
                               tv=cfg.tv_weight)
    t0 = time.perf_counter()
    with ProgressBar(settings.steps, f"patch prior, {cfg.sampler}", disable=not progress) as bar:
        rec = reconstruct(prior, task.op, y, settings, baseline=fbp, callback=bar)
    out[f"PaDIS+{cfg.sampler.upper()}"] = (rec[0, 0].clamp(0, 1).numpy(), time.perf_counter() - t0)
    return out


def demo_figure(path: Path, rows: list[tuple[int, np.ndarray, dict[str, tuple[np.ndarray, float]]]],
                metrics: dict[int, dict[str, dict[str, float]]]) -> None:
    """Per slice two rows: truth and each method (PSNR/SSIM in the title); below, |error|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(rows[0][2])
    fig, axes = plt.subplots(2 * len(rows), 1 + len(methods), figsize=(2.6 * (1 + len(methods)), 5.4 * len(rows)),
                             squeeze=False)
    for r, (k, truth, recs) in enumerate(rows):
        top, bottom = axes[2 * r], axes[2 * r + 1]
        top[0].imshow(truth, cmap="gray", vmin=0, vmax=1)
        top[0].set_title(f"slice {k}: truth", fontsize=9)
        bottom[0].text(0.5, 0.5, "|error|\n(0 .. 0.2)", ha="center", va="center", fontsize=9)
        for j, name in enumerate(methods, start=1):
            img = recs[name][0]
            m = metrics[k][name]
            top[j].imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1)
            top[j].set_title(f"{name}: {m['psnr']:.2f} dB / {m['ssim']:.3f}", fontsize=9)
            bottom[j].imshow(np.abs(np.clip(img, 0, 1) - truth), cmap="magma", vmin=0, vmax=0.2)
        for ax in (*top, *bottom):
            ax.set_axis_off()
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def run_demo(out_dir: str | Path = "outputs/demo", cfg: DemoConfig = DemoConfig(), progress: bool = True) -> dict:
    """Run the demo; returns the report written to ``out_dir/demo.json``."""
    import padis3d
    from padis3d.priors.checkpoint import library_versions
    from padis3d.metrics import psnr, ssim
    from padis3d.priors.factory import patch_prior_from
    from padis3d.io.sample_data import TEST_SLICES, chest_ct_slices

    bad = [k for k in cfg.slices if k not in TEST_SLICES]
    if bad:
        raise PadisError(f"slices {bad} are not held-out test slices ({TEST_SLICES[0]}..{TEST_SLICES[-1]})")
    if cfg.task not in ("ct20", "ct8"):
        raise PadisError(f"the demo runs task ct20 or ct8, got {cfg.task!r}")
    out_dir = Path(out_dir)
    loaded = padis3d.load_prior(cfg.checkpoint, precision=cfg.precision)
    prior = patch_prior_from(loaded, (cfg.size, cfg.size))
    images = chest_ct_slices(cfg.slices, cfg.size)
    rows, metrics = [], {}
    for k, truth in zip(cfg.slices, images):
        recs = _reconstructions(cfg, torch.from_numpy(truth)[None, None], prior, progress)
        metrics[k] = {name: {"psnr": psnr(img, truth), "ssim": ssim(img, truth), "seconds": sec}
                      for name, (img, sec) in recs.items()}
        rows.append((k, truth, recs))
    mean = {name: {key: float(np.mean([metrics[k][name][key] for k in cfg.slices]))
                   for key in ("psnr", "ssim", "seconds")} for name in metrics[cfg.slices[0]]}
    demo_figure(out_dir / "demo.png", rows, metrics)
    report = {"task": f"{cfg.task}: parallel-beam CT, {cfg.task[2:]} views on [0, π), noiseless, "
                      f"{cfg.size}² chest CT test slices",
              "config": asdict(cfg), "tv_weight": cfg.tv_weight, "precision": loaded.precision,
              "network_evaluations_per_slice": cfg.evaluations,
              "per_slice": {str(k): v for k, v in metrics.items()}, "mean": mean,
              "versions": library_versions(), "outputs": ["demo.png", "demo.json"]}
    write_json(out_dir / "demo.json", report)
    return report


def format_table(report: dict) -> str:
    """The mean PSNR/SSIM/seconds table of a demo report, as aligned text."""
    lines = [f"{'method':<11} {'PSNR dB':>8} {'SSIM':>6} {'s/slice':>8}"]
    for name, m in report["mean"].items():
        lines.append(f"{name:<11} {m['psnr']:>8.2f} {m['ssim']:>6.3f} {m['seconds']:>8.1f}")
    return "\n".join(lines)
