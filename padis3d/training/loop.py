"""The training loop: EDM loss on random patches, Adam, EMA, gradient clipping, a guard
against non-finite loss, periodic atomic checkpoints, exact resume, and DDP under ``torchrun``.

Mixed precision (``TrainSettings.precision``): the network's forward (and so its backward)
runs under ``torch.autocast`` in bf16 or fp16 with its output cast back to fp32, so the loss,
the fp32 master weights, the EMA and Adam's moments stay fp32; fp16 (CUDA) adds dynamic loss
scaling (``torch.amp.GradScaler``, not saved: a resumed run starts a fresh scale).

Every random draw (patch size, crops, augmentation, sigma, noise) comes from one ``torch.Generator`` that is
saved in the training state, so a resumed run continues bit-identically. Under DDP every rank
draws the same global batch and trains on its contiguous share, so DDP's gradient average
equals the single-process gradient of the global batch (batch sizes are rounded up to a
multiple of the world size).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from padis3d.atomic import remove_stale_temps
from padis3d.priors.checkpoint import (FORMAT_PRIOR, FORMAT_STATE, FORMAT_VERSION, atomic_save, library_versions,
                                load_weights, read_checkpoint, warn_weights_only)
from padis3d.training.data import PatchSampler
from padis3d.errors import PadisError
from padis3d.priors.network import EDMDenoiser, PriorConfig, draw_sigma_noise, edm_loss


@dataclass
class TrainSettings:
    """Optimisation settings (stored in the checkpoint meta). Durations in seconds."""

    steps: int = 1000
    time_limit: float | None = None  # wall seconds of this run
    budget: float | None = None  # total seconds of the run folder, resumed runs included, on ``budget_clock``
    budget_clock: str = "cpu"  # "cpu": process CPU time (summed over ranks), "wall": wall time
    lr: float = 2e-4
    lr_warmup_steps: int = 200
    ema_halflife_patches: float = 20_000
    ema_rampup: float = 0.05  # EMA half-life <= this fraction of the patches seen so far (EDM)
    grad_clip: float = 5.0
    p_mean: float = -1.2
    p_std: float = 1.2
    seed: int = 0
    checkpoint_every: float = 600.0
    log_every: int = 50
    max_nonfinite: int = 20
    progress: bool = True
    precision: str = "fp32"  # the network's forward/backward (padis3d.precision); weights, EMA, Adam stay fp32


@dataclass
class TrainState:
    model: EDMDenoiser
    ema: EDMDenoiser
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int = 0
    patches_seen: int = 0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    history: list = field(default_factory=list)  # [step, mean loss since last entry, cpu_seconds]
    nonfinite_skipped: int = 0
    stopped_by: str | None = None  # "SIGINT" / "SIGTERM" when a signal ended the last train() early


def dist_info() -> tuple[int, int]:
    """(rank, world size), 0/1 without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> bool:
    """Start the process group when launched by ``torchrun`` (``WORLD_SIZE > 1``): gloo on CPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return True
    return False


def new_state(config: PriorConfig, settings: TrainSettings) -> TrainState:
    torch.manual_seed(settings.seed)
    model = EDMDenoiser(config)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    return TrainState(model, ema, opt, torch.Generator().manual_seed(settings.seed))


def resume_state(path: str | Path, settings: TrainSettings, config: PriorConfig | None = None
                 ) -> tuple[TrainState, dict]:
    """A state from a full training state (exact) or from a prior file (weights only, warns)."""
    ckpt = read_checkpoint(path)
    stored = PriorConfig.from_dict(ckpt["config"])
    if config is not None and config != stored:
        raise PadisError(f"--resume {path}: the file's architecture {stored} differs from the requested "
                         f"{config}; drop the architecture options or start a new run folder")
    state = new_state(stored, settings)
    meta = ckpt["meta"]
    load_weights(state.ema, ckpt["ema"], path)
    if ckpt["format"] == FORMAT_STATE:
        load_weights(state.model, ckpt["model"], path)
        state.optimizer.load_state_dict(ckpt["optimizer"])
        state.generator.set_state(ckpt["generator"])
    else:
        warn_weights_only(path)
        state.model.load_state_dict(ckpt["ema"])
        state.generator.manual_seed(settings.seed + int(meta.get("steps", 0)))
    state.step = int(meta.get("steps", 0))
    state.patches_seen = int(meta.get("patches_seen", 0))
    state.cpu_seconds = float(meta.get("cpu_seconds", 0.0))
    state.wall_seconds = float(meta.get("wall_seconds", 0.0))
    state.history = [list(h) for h in meta.get("history", [])]
    state.nonfinite_skipped = int(meta.get("nonfinite_skipped", 0))
    return state, meta


def build_meta(state: TrainState, settings: TrainSettings, sampler: PatchSampler, data: dict,
               extra: dict | None = None) -> dict:
    _, world = dist_info()
    last = state.history[-1][1] if state.history else float("nan")
    return {"steps": state.step, "patches_seen": state.patches_seen, "final_loss": last,
            "cpu_seconds": state.cpu_seconds, "wall_seconds": state.wall_seconds, "history": state.history,
            "nonfinite_skipped": state.nonfinite_skipped, "world_size": world,
            "patch_sizes": sampler.sizes, "patch_probs": sampler.probs.tolist(), "batch_sizes": sampler.batch_sizes,
            "image_shape": list(sampler.shape), "extra_coords": int(sampler.extra.shape[1]),
            "augment": None if getattr(sampler, "augment", None) is None else sampler.augment.to_dict(),
            "sigma_range": [0.002, 80.0], "training_sigma": {"p_mean": settings.p_mean, "p_std": settings.p_std},
            "settings": dataclasses.asdict(settings), "precision": settings.precision, "data": data,
            "versions": library_versions(),
            **(extra or {})}


def save_checkpoints(state: TrainState, meta: dict, out_dir: Path, exports: list[Path]) -> None:
    """Write ``state.pt`` (full resume state) and ``prior.pt`` (EMA + meta) with loss PNGs, and copies of
    the prior to ``exports``."""
    from padis3d.training.loss_plot import write_loss_plot
    from padis3d.training.model_card import write_model_card

    for name, net in (("weights", state.model), ("EMA weights", state.ema)):
        if not all(bool(torch.isfinite(t).all()) for t in net.state_dict().values() if t.is_floating_point()):
            raise PadisError(f"the {name} at step {state.step} are not finite: nothing was written (the last good "
                             f"checkpoint in {out_dir}, if any, is intact); lower --lr or --grad-clip")
    cfg = state.model.config.to_dict()
    ema = {k: v.clone() for k, v in state.ema.state_dict().items()}
    prior = {"format": FORMAT_PRIOR, "format_version": FORMAT_VERSION, "config": cfg, "ema": ema, "meta": meta}
    full = dict(prior, format=FORMAT_STATE, model=state.model.state_dict(),
                optimizer=state.optimizer.state_dict(), generator=state.generator.get_state())
    atomic_save(full, out_dir / "state.pt")
    for path in [out_dir / "prior.pt", *exports]:
        atomic_save(prior, path)
        write_loss_plot(meta["history"], path.with_suffix(".loss.png"), title=path.name)
        write_model_card(meta, cfg, path)


def train(state: TrainState, sampler: PatchSampler, settings: TrainSettings, out_dir: str | Path,
          data: dict, exports: list[str | Path] = (), extra_meta: dict | None = None) -> TrainState:
    """Train until ``settings.steps`` total steps, ``settings.time_limit`` seconds of this run, or the
    run folder's total ``settings.budget`` seconds (CPU or wall clock; a finished budget trains nothing)."""
    from tqdm import tqdm

    rank, world = dist_info()
    out_dir, exports = Path(out_dir), [Path(p) for p in exports]
    if rank == 0:  # temporary files of a run killed mid-checkpoint (the files themselves are whole)
        for path in [out_dir / "state.pt", out_dir / "prior.pt", *exports]:
            for sibling in (path, path.with_suffix(".loss.png"), path.with_suffix(".md")):
                remove_stale_temps(sibling)
    if world > 1:
        sampler.batch_sizes = [math.ceil(b / world) * world for b in sampler.batch_sizes]
        net = torch.nn.parallel.DistributedDataParallel(state.model)
    else:
        net = state.model
    stop = {"flag": False}
    # SIGTERM (a scheduler ending the job) or SIGINT (Ctrl-C) -> finish the step, checkpoint, return
    # (state.stopped_by names the signal). A second Ctrl-C interrupts at once. Every rank listens.
    state.stopped_by = None

    def on_signal(signum: int, _frame) -> None:
        if stop["flag"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop["flag"] = True
        state.stopped_by = signal.Signals(signum).name

    main_thread = threading.current_thread() is threading.main_thread()
    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)} if main_thread else {}
    t0, c0 = time.monotonic(), time.process_time()
    last_ckpt, wall_mark, cpu_mark = t0, t0, c0
    window, win_patches, win_t = [], 0, time.monotonic()
    bar = tqdm(total=settings.steps, initial=state.step, disable=rank != 0 or not settings.progress,
               mininterval=1.0 if os.isatty(2) else 30.0, unit="step", dynamic_ncols=True)
    net.train()
    dev = next(state.model.parameters()).device
    state.model.precision = settings.precision
    scaler = torch.amp.GradScaler(dev.type) if settings.precision == "fp16" else None

    def checkpoint() -> None:
        nonlocal wall_mark, cpu_mark, last_ckpt
        now, cpu = time.monotonic(), time.process_time()
        cpu_delta = torch.tensor([cpu - cpu_mark], dtype=torch.float64)
        if world > 1:
            dist.all_reduce(cpu_delta)
        state.cpu_seconds += float(cpu_delta)
        state.wall_seconds += now - wall_mark
        wall_mark, cpu_mark, last_ckpt = now, cpu, now
        if rank == 0:
            save_checkpoints(state, build_meta(state, settings, sampler, data, extra_meta), out_dir, exports)

    try:
        spent_before = state.cpu_seconds if settings.budget_clock == "cpu" else state.wall_seconds
        while state.step < settings.steps and (settings.budget is None or spent_before < settings.budget):
            batch = sampler.sample(state.generator)
            sigma, noise = draw_sigma_noise(tuple(batch.patches.shape), state.generator,
                                            settings.p_mean, settings.p_std)
            n = batch.patches.shape[0]
            part = slice(rank * n // world, (rank + 1) * n // world)
            pos = batch.positions[part].to(dev) if state.model.config.uses_positions else None
            loss = edm_loss(net, batch.patches[part].to(dev), pos, sigma[part].to(dev), noise[part].to(dev),
                            state.model.config.sigma_data)
            elapsed = time.monotonic() - t0
            spent = (state.cpu_seconds + (time.process_time() - cpu_mark) * world if settings.budget_clock == "cpu"
                     else state.wall_seconds + time.monotonic() - wall_mark)
            flags = torch.tensor([loss.item() / world,
                                  float(rank == 0 and time.monotonic() - last_ckpt >= settings.checkpoint_every),
                                  float(stop["flag"] or (rank == 0 and settings.time_limit is not None
                                                         and elapsed >= settings.time_limit)
                                        or (rank == 0 and settings.budget is not None and spent >= settings.budget))],
                                 dtype=torch.float64)
            if world > 1:
                dist.all_reduce(flags)
            global_loss = float(flags[0])
            state.optimizer.zero_grad(set_to_none=True)
            if math.isfinite(global_loss):
                (loss if scaler is None else scaler.scale(loss)).backward()
                if scaler is not None:
                    scaler.unscale_(state.optimizer)
                norm = torch.nn.utils.clip_grad_norm_(state.model.parameters(), settings.grad_clip)
                ok = bool(torch.isfinite(norm))
                if scaler is not None and not ok:
                    scaler.update()  # an fp16 overflow: lower the scale, skip the step
            else:
                ok = False
            if ok:
                for g in state.optimizer.param_groups:
                    g["lr"] = settings.lr * min(1.0, (state.step + 1) / max(1, settings.lr_warmup_steps))
                if scaler is None:
                    state.optimizer.step()
                else:
                    scaler.step(state.optimizer)
                    scaler.update()
                state.patches_seen += n
                update_ema(state.ema, state.model, n, state.patches_seen, settings)
                state.nonfinite_skipped = 0
                window.append(global_loss)
            else:
                state.nonfinite_skipped += 1
                if state.nonfinite_skipped >= settings.max_nonfinite:
                    raise PadisError(f"{settings.max_nonfinite} consecutive steps had a non-finite loss or "
                                     f"gradient: lower --lr or --grad-clip; the last good checkpoint is in {out_dir}")
            state.step += 1
            win_patches += n
            bar.update(1)
            if state.step % settings.log_every == 0 and window:
                state.history.append([state.step, sum(window) / len(window),
                                      state.cpu_seconds + time.process_time() - cpu_mark])
                rate = win_patches / max(1e-9, time.monotonic() - win_t)
                post = {"loss": f"{state.history[-1][1]:.4f}", "patches_s": f"{rate:.0f}"}
                if settings.time_limit is not None:  # the step total is open-ended; show when this run stops
                    post["stops_in"] = f"{max(0.0, settings.time_limit - elapsed) / 60:.0f}min"
                bar.set_postfix(post)
                window, win_patches, win_t = [], 0, time.monotonic()
            if flags[1] > 0:
                checkpoint()
            if flags[2] > 0:
                break
        checkpoint()
        if world > 1:  # no rank leaves (and tears its process group down) while rank 0 still writes
            dist.barrier()
    finally:
        bar.close()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return state


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, batch: int, seen: int, s: TrainSettings) -> None:
    """EMA with a half-life in patches, ramped up to ``ema_rampup * seen`` early in training."""
    halflife = min(s.ema_halflife_patches, s.ema_rampup * seen)
    beta = 0.5 ** (batch / max(halflife, 1e-8))
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1.0 - beta)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)
