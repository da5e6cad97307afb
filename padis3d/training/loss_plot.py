"""Loss-curve PNG written next to each checkpoint (matplotlib, Agg backend, atomic)."""

from __future__ import annotations

from pathlib import Path

from padis3d.atomic import save_figure


def write_loss_plot(history: list, path: str | Path, title: str = "") -> None:
    """``history`` rows ``[step, mean EDM loss, cpu seconds]`` -> log-scale loss vs step PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if history:
        steps, loss = [h[0] for h in history], [h[1] for h in history]
        ax.plot(steps, loss, lw=1)
        ax.set_yscale("log")
        cpu_h = history[-1][2] / 3600 if len(history[-1]) > 2 else float("nan")
        ax.set_title(f"{title}  step {steps[-1]}, loss {loss[-1]:.4f}, {cpu_h:.2f} CPU h", fontsize=9)
    ax.set_xlabel("step")
    ax.set_ylabel("EDM loss (mean per log interval)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
