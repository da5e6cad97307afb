"""Model card (Markdown) written next to each shipped prior: command, data, steps, time, loss."""

from __future__ import annotations

from pathlib import Path

from padis3d.atomic import atomic_path


def write_model_card(meta: dict, config: dict, prior_path: str | Path) -> Path:
    """Write ``<prior>.md`` describing how the prior at ``prior_path`` was trained; returns its path."""
    prior_path = Path(prior_path)
    data = meta.get("data", {})
    slices = data.get("slices", [])
    slice_txt = f"{slices[0]}..{slices[-1]} ({len(slices)} slices)" if slices else "n/a"
    commands = meta.get("commands", [])
    lines = [
        f"# {prior_path.name}",
        "",
        "Patch diffusion prior (PaDIS) for padis3d: EDM-preconditioned MONAI DiffusionModelUNet, EMA weights.",
        "Load with `padis3d.load_prior(path, device=...)`.",
        "",
        "## Training commands (in order; later ones resumed the run)",
        "",
        *[f"    {c}" for c in commands],
        "",
        "## Data",
        "",
        f"* source: {data.get('source', 'n/a')}; axis: {data.get('axis', 'n/a')}; training slices: {slice_txt}"
        + (" (test slices 110-132 never used)" if "chest CT" in str(data.get("source")) else ""),
        f"* image size: {meta.get('image_shape')}; normalisation: {data.get('normalisation')}",
        f"* orientation of the training slices: {_orientation_line(meta)}",
        f"* slab: {data.get('slab', 'no')}; extra position channels: {meta.get('extra_coords', 0)}",
        *([f"* downsampled: block average by {data['downsample']} (per axis) of the {data.get('full_shape')} data, "
           f"so the prior sees {data.get('shape')}: the coarse prior of a two-scale prior "
           f"(`padis3d.priors.two_scale.two_scale_prior_from` reads the factor from the meta's `downsample`)"]
          if max(data.get("downsample", [1]) or [1]) > 1 else []),
        *([f"* phantoms: {data.get('images')} images, seed {data.get('seed')}, generator `{data['generator']}`"]
          if "generator" in data else []),
        "",
        "## Architecture",
        "",
        f"* config: `{config}`",
        f"* parameters: {meta.get('parameters', 'n/a')}",
        "",
        "## Training",
        "",
        f"* patch sizes {meta.get('patch_sizes')} (None = whole image), probabilities "
        f"{[round(p, 3) for p in meta.get('patch_probs', [])]}, batch sizes {meta.get('batch_sizes')}",
        f"* augmentation: {_augment_line(meta.get('augment'))}",
        f"* steps: {meta.get('steps')}; patches seen: {meta.get('patches_seen')}; processes: {meta.get('world_size')}",
        f"* final loss (mean of the last log interval): {meta.get('final_loss', float('nan')):.5f}",
        f"* wall time: {meta.get('wall_seconds', 0) / 3600:.2f} h; CPU time: {meta.get('cpu_seconds', 0) / 3600:.2f} h",
        f"* precision of the last run: {meta.get('precision', 'fp32')} (network forward/backward; weights, EMA and "
        f"optimizer fp32)",
        f"* settings: `{meta.get('settings')}`",
        f"* libraries: {meta.get('versions')}",
        f"* loss curve: `{prior_path.with_suffix('.loss.png').name}`",
        "",
        "## Continue training",
        "",
        "Re-run the last command with `--resume` (continues the run folder's full state.pt), or with",
        f"`--resume {prior_path.name}` to continue from these EMA weights only (fresh optimizer state).",
        "",
    ]
    out = prior_path.with_suffix(".md")
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines))
    return out


def _orientation_line(meta: dict) -> str:
    """The model card's line on the orientation the prior learned (:func:`padis3d.priors.checkpoint.data_orientation`)."""
    from padis3d.errors import PadisError
    from padis3d.priors.checkpoint import data_orientation

    try:
        o = data_orientation(meta)
    except PadisError:
        return "not recorded (trained from NIfTI/DICOM before orientations were recorded: retrain)"
    return (f"{o.get('plane')} slices in the canonical {o.get('canonical')} orientation (anterior at the top, the "
            f"patient's left on the right; padis3d.io.orientation), from {o.get('from')}"
            + (f" (stored as {o['stored']})" if o.get("stored") else ""))


def _augment_line(recorded: dict | None) -> str:
    """The model card's line on the training-time augmentation (:mod:`padis3d.training.augment`)."""
    if not recorded:
        return "none"
    from padis3d.training.augment import Augment

    fields = {k: v for k, v in recorded.items() if k in Augment.__dataclass_fields__}
    return f"{', '.join(recorded.get('kinds', []))}: {Augment(**fields).describe()}"
