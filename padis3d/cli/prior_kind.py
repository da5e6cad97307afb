"""The kind of prior a checkpoint holds (2D patch, whole-image, slab, 3D cube) against the kind a
``padis3d reconstruct`` task needs, checked from the file's config and meta before any data is
read: a wrong kind is one line naming both, not a tensor-shape error from deep inside sampling."""

from __future__ import annotations

from pathlib import Path

from padis3d.errors import PadisError

VOLUME_TASKS = ("ct3d-parallel", "ct3d-cone", "denoise")


def prior_kind(config: dict, meta: dict) -> str:
    """A short description of a checkpoint's prior from its stored ``config`` and ``meta``."""
    dims, channels, mode = int(config.get("spatial_dims", 2)), int(config.get("channels", 1)), meta.get("mode")
    if dims == 3:
        return "3D cube prior"
    if mode == "slab":
        return f"slab prior ({channels} slices as channels)"
    sizes = [s for s in meta.get("patch_sizes") or [] if s is not None]
    what = "2D patch prior" if sizes or mode == "patch" else "2D whole-image prior"
    return what if channels == 1 else f"{what} with {channels} channels"


def task_refuses(kind: str, task: str) -> str | None:
    """What ``task`` needs, if a prior of ``kind`` (:func:`prior_kind`) cannot serve it; else None."""
    if task in VOLUME_TASKS:
        if "whole-image" in kind or "channels" in kind and not kind.startswith("slab"):
            return "a volume task needs a one-channel 2D patch prior, a slab prior or a 3D cube prior"
        return None
    if kind not in ("2D patch prior", "2D whole-image prior"):
        return "a 2D task needs a one-channel 2D prior (patch or whole-image)"
    return None


def check_prior_kind(path: str | Path, task: str) -> None:
    """PadisError when the checkpoint at ``path`` holds a kind of prior that ``task`` cannot use (or is
    missing, unreadable, not a padis3d checkpoint: :func:`padis3d.priors.checkpoint.read_checkpoint`)."""
    from padis3d.priors.checkpoint import read_checkpoint

    ckpt = read_checkpoint(path)
    if not isinstance(ckpt.get("config"), dict) or not isinstance(ckpt.get("meta"), dict):
        raise PadisError(f"checkpoint {path} has no readable config and meta: the file is corrupt; re-copy it")
    kind = prior_kind(ckpt["config"], ckpt["meta"])
    need = task_refuses(kind, task)
    if need is not None:
        hint = "a volume task (ct3d-parallel, ct3d-cone, denoise)" if task not in VOLUME_TASKS else "a 2D task"
        raise PadisError(f"checkpoint {path} holds a {kind}; --task {task}: {need} (give another --checkpoint, "
                         f"or use the prior with {hint})")
