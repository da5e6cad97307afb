"""Figures of ``recipes/paper2d.py``: the ablations as charts and the main study's reconstructions.

Both are drawn from stored results (``OUT.json``, ``OUT_reconstructions.npz``), so
``paper2d.py --report`` redraws them without computing anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _means(store: dict, study: str, slices: list[int]) -> dict[str, float]:
    """Mean PSNR per row label over ``slices`` (rows with every slice only)."""
    cells: dict[str, list[float]] = {}
    for r in store["results"].values():
        if r["study"] == study and r["slice"] in slices:
            cells.setdefault(r["row"], []).append(r["psnr"])
    return {row: float(np.mean(v)) for row, v in cells.items() if len(v) == len(slices)}


def ablation_figure(store: dict, slices: list[int], studies: dict, path: Path) -> Path | None:
    """One panel per single-task study with results: PSNR per row (bars), and for ``data-size``
    PSNR against the number of training slices, patch vs whole-image prior. None if nothing to draw."""
    panels = [(s, _means(store, s, slices)) for s, (tasks, _) in studies.items() if len(tasks) == 1]
    panels = [(s, m) for s, m in panels if m]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    for ax, (study, means) in zip(axes[0], panels):
        labels = [r.label for r in studies[study][1] if r.label in means]
        if study == "data-size":
            for kind, marker in (("patch", "o"), ("whole", "s")):
                pts = sorted((int(lb.split()[1]), means[lb]) for lb in labels if lb.startswith(kind))
                if pts:
                    ax.plot(*zip(*pts), marker=marker, label=f"{kind} prior")
            ax.set_xscale("log")
            ax.set_xticks([12, 25, 50, 100], ["12", "25", "50", "100"])
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
            ax.set_xlabel("training slices")
            ax.legend(fontsize=8)
        else:
            vals = [means[lb] for lb in labels]
            ax.bar(range(len(vals)), vals, color="tab:blue")
            ax.set_xticks(range(len(vals)), labels, rotation=30, ha="right", fontsize=8)
            lo = min(vals)
            ax.set_ylim(lo - 2, max(vals) + 1)
            for i, v in enumerate(vals):
                ax.text(i, v + 0.1, f"{v:.2f}", ha="center", fontsize=7)
        ax.set_title(f"{study} (CT 20 views)", fontsize=10)
        ax.set_ylabel("PSNR (dB)")
    fig.suptitle(f"Ablations, mean over chest CT test slices {', '.join(map(str, slices))}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


SHORT = {"PnP-ADMM (patch denoiser)": "PnP-ADMM", "whole image, DDS": "whole-image DDS",
         "PaDIS (patches), DDS": "PaDIS DDS"}


def reconstruction_figure(recs: dict[str, dict[str, np.ndarray]], k: int, path: Path) -> Path:
    """Grid: one row per task, columns ground truth then each method, PSNR in each title."""
    from padis3d.metrics import psnr

    plt = _pyplot()
    cols = list(dict.fromkeys(c for per in recs.values() for c in per))
    fig, axes = plt.subplots(len(recs), len(cols), figsize=(2.1 * len(cols), 2.5 * len(recs)), squeeze=False)
    for i, (task, per) in enumerate(recs.items()):
        for j, col in enumerate(cols):
            ax = axes[i, j]
            ax.axis("off")
            if col not in per:
                continue
            ax.imshow(np.clip(per[col], 0, 1), cmap="gray", vmin=0, vmax=1)
            score = "" if col == "truth" else f"\n{psnr(per[col], per['truth']):.2f} dB"
            ax.set_title(f"{task}: truth" if col == "truth" else f"{SHORT.get(col, col)}{score}", fontsize=8)
    fig.suptitle(f"Chest CT test slice {k}, 128²", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
