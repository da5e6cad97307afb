"""Trainable weight deltas on a frozen denoiser: LoRA, norm layers only, or all weights.

An :class:`Adapter` holds only the *changes* ``ΔW`` to a base network's parameters; the
adapted network is evaluated with ``torch.func.functional_call(base, {name: W + ΔW})``, so
the base module and its tensors are never modified, wrapped or re-registered (another
sampler using the same loaded prior at the same time sees the original weights). Modes:

* ``lora``: for every selected convolution (``nn.Conv1d/2d/3d``) and linear layer (MONAI's
  attention projections and time-embedding MLPs are ``nn.Linear``), ``ΔW = (α / r) B A``
  with ``A`` ``(r, in * prod(kernel))`` (Kaiming-uniform, as in Hu et al. 2021) and ``B``
  ``(out, r)`` (zeros, so the adapted network starts exactly at the base), reshaped to the
  weight's shape; this equals the usual convolutional LoRA (a ``k``-kernel convolution to
  ``r`` channels followed by a 1x1 convolution). Biases are not adapted.
* ``norm``: ``Δγ, Δβ`` of every normalisation layer (GroupNorm, LayerNorm, ...), zeros.
* ``all``: a delta for every parameter, zeros.

Hand-written, not ``peft``: measured here (2026-12-01), ``pip download peft --no-deps`` is an
835 KB wheel (peft 0.21.2), but ``pip install --dry-run peft`` would install 22 packages besides peft in this
environment (transformers 5.24, accelerate 1.15, huggingface_hub, tokenizers, safetensors,
pydantic, httpx2, rich, typer, regex, ...; see :data:`PEFT_COST`), more than padis3d's other
dependencies together, for about 80 lines here; peft also injects its layers into the base
module in place, which this design avoids on purpose (the base must stay untouched).

Adapters are saved as a small separate file (:func:`save_adapter`, a few hundred KiB for
LoRA rank 4 on the CPU network) with the base weights' SHA-256, checked on loading.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from padis3d.errors import PadisError

MODES = ("lora", "norm", "all")
LAYER_KINDS = ("conv", "linear")
NORM_TYPES = (nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
              nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
FORMAT = "padis3d-adapter"
PEFT_COST = ("pip install --dry-run peft (2026-12-01) would install accelerate-1.15.0 annotated-doc-0.0.7 "
             "annotated-types-0.8.0 anyio-4.16.0 h11-0.16.0 hf-xet-1.8.0 httpcore2-2.16.2 httpx2-2.16.2 "
             "huggingface_hub-2.4.0 markdown-it-py-4.3.0 mdurl-0.1.2 peft-0.21.2 pydantic-2.14.4 "
             "pydantic_core-2.50.5 regex-2026.11.19 rich-15.0.0 safetensors-0.8.0 shellingham-1.5.4 "
             "tokenizers-0.23.3 transformers-5.24.0 truststore-0.10.5 typer-0.29.2 typing-inspection-0.4.5")
"""The measured dependency cost of peft (why the adapters are hand-written)."""


def base_module(denoiser: object) -> nn.Module:
    """The ``nn.Module`` behind a denoiser: a loaded :class:`padis3d.priors.checkpoint.Prior`
    (its ``.model``) or an ``EDMDenoiser`` itself."""
    model = getattr(denoiser, "model", denoiser)
    if not isinstance(model, nn.Module):
        raise PadisError(f"cannot adapt a {type(denoiser).__name__}: need a network (a loaded prior or EDMDenoiser)")
    return model


def _key(name: str) -> str:
    return name.replace(".", "__")


class Adapter(nn.Module):
    """Deltas for the parameters of ``base`` (which stays frozen and untouched).

    mode: ``lora`` | ``norm`` | ``all``. rank, alpha: LoRA rank ``r`` and scale ``α`` (delta
    scaled by ``α / r``). layers: LoRA layer kinds (``conv``, ``linear``) and/or substrings of
    module names (e.g. ``"attn"``); a layer is adapted when its kind or a substring matches.
    seed: the initialisation of ``A``.
    """

    def __init__(self, base: nn.Module, mode: str = "lora", rank: int = 4, alpha: float | None = None,
                 layers: Sequence[str] = LAYER_KINDS, seed: int = 0):
        super().__init__()
        if mode not in MODES:
            raise PadisError(f"adapter mode must be one of {MODES}, got {mode!r}")
        if rank < 1:
            raise PadisError(f"LoRA rank must be >= 1, got {rank}")
        self.mode, self.rank, self.layers, self.seed = mode, int(rank), tuple(layers), int(seed)
        self.alpha = float(rank if alpha is None else alpha)
        self.names: list[str] = []  # base parameter names that get a delta
        self.lora_a, self.lora_b, self.delta = nn.ParameterDict(), nn.ParameterDict(), nn.ParameterDict()
        gen = torch.Generator().manual_seed(self.seed)
        params = dict(base.named_parameters())
        for mod_name, module in base.named_modules():
            own = dict(module.named_parameters(recurse=False))
            if not own:
                continue
            prefix = f"{mod_name}." if mod_name else ""
            if mode == "all":
                chosen = list(own)
            elif mode == "norm":
                chosen = list(own) if isinstance(module, NORM_TYPES) else []
            else:
                chosen = ["weight"] if "weight" in own and self._lora_layer(mod_name, module) else []
            for pname in chosen:
                name = prefix + pname
                w = params[name]
                self.names.append(name)
                if mode == "lora":
                    fan_in = math.prod(w.shape[1:])
                    r = min(self.rank, w.shape[0], fan_in)
                    bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) bound, as nn.Linear/Conv
                    a = (torch.rand((r, fan_in), generator=gen) * 2 - 1) * bound
                    self.lora_a[_key(name)] = nn.Parameter(a.to(w.device, w.dtype))
                    self.lora_b[_key(name)] = nn.Parameter(torch.zeros((w.shape[0], r), device=w.device, dtype=w.dtype))
                else:
                    self.delta[_key(name)] = nn.Parameter(torch.zeros_like(w, requires_grad=False))
        if not self.names:
            raise PadisError(f"adapter mode {mode!r} with layers {self.layers} selects no parameter of this network")

    def _lora_layer(self, name: str, module: nn.Module) -> bool:
        kinds = {"conv": CONV_TYPES, "linear": (nn.Linear,)}
        if any(isinstance(module, kinds[k]) for k in self.layers if k in kinds):
            return True
        return isinstance(module, CONV_TYPES + (nn.Linear,)) and any(s in name for s in self.layers if s not in kinds)

    def spec(self) -> dict:
        """Everything needed to rebuild this adapter on the same base (stored in adapter files)."""
        return {"mode": self.mode, "rank": self.rank, "alpha": self.alpha, "layers": list(self.layers),
                "seed": self.seed}

    def weight_delta(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """``ΔW`` for base parameter ``name`` (shape of ``like``)."""
        k = _key(name)
        if self.mode == "lora":
            return (self.alpha / self.rank) * (self.lora_b[k] @ self.lora_a[k]).reshape(like.shape)
        return self.delta[k]

    def adapted_parameters(self, base: nn.Module) -> dict[str, torch.Tensor]:
        """``{name: W + ΔW}`` for every adapted parameter (base tensors detached: the base gets no gradient)."""
        params = dict(base.named_parameters())
        return {n: params[n].detach() + self.weight_delta(n, params[n]) for n in self.names}

    def trainable_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


class _ThroughBase(nn.Module):
    """Calls the base denoiser (a loaded prior, or a closure around one such as the 2D-prior-on-a-volume
    wrapper of :func:`padis3d.priors.factory.volume_prior_from`) with ``model`` as its only submodule, so
    ``functional_call`` can swap ``model``'s weights for the duration of that one call."""

    def __init__(self, denoiser: object, model: nn.Module):
        super().__init__()
        self.model = model
        object.__setattr__(self, "call", denoiser)  # not a submodule even when it is ``model`` itself

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, positions: torch.Tensor | None) -> torch.Tensor:
        return self.call(x, sigma, positions)


class AdaptedDenoiser:
    """``D_θ``: the base denoiser with an adapter's deltas, same call and ``config`` as the base
    (``denoiser(x (n, C, *P), sigma (n,), positions)``). The call goes through the base
    denoiser itself (its device and dtype handling, position mapping, precision), with the
    network's weights replaced by ``W + ΔW`` for that call only (``torch.func.functional_call``)."""

    def __init__(self, denoiser: object, adapter: Adapter):
        self.base, self.model, self.adapter = denoiser, base_module(denoiser), adapter
        self.config = getattr(denoiser, "config", getattr(self.model, "config", None))
        self._through = _ThroughBase(denoiser, self.model)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | float, positions: torch.Tensor | None = None
                 ) -> torch.Tensor:
        weights = {f"model.{n}": w for n, w in self.adapter.adapted_parameters(self.model).items()}
        return torch.func.functional_call(self._through, weights, (x, sigma, positions))


def weights_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the base network's parameters (names, shapes, bytes): which base an adapter belongs to."""
    h = hashlib.sha256()
    for name, p in model.state_dict().items():
        t = p.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_adapter(adapter: Adapter, base: object, path: str | Path, extra: dict | None = None) -> Path:
    """Write the adapter (its deltas only, plus spec and the base's fingerprint) to ``path``."""
    from padis3d.priors.checkpoint import atomic_save

    model = base_module(base)
    if not all(bool(torch.isfinite(v).all()) for v in adapter.state_dict().values()):
        raise PadisError(f"the adapter holds non-finite values; {path} not written")
    payload = {"format": FORMAT, "version": 1, "spec": adapter.spec(), "names": list(adapter.names),
               "base_sha256": weights_fingerprint(model),
               "state": {k: v.detach().cpu() for k, v in adapter.state_dict().items()}, "extra": extra or {}}
    atomic_save(payload, path)
    return Path(path)


def read_adapter_file(path: str | Path) -> dict:
    """The contents of :func:`save_adapter`'s file; PadisError if it cannot be read or is not one."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise PadisError(f"cannot read adapter {path}: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise PadisError(f"{path} is not a padis3d adapter file")
    spec, state = payload.get("spec"), payload.get("state")
    if not (isinstance(spec, dict) and isinstance(payload.get("base_sha256"), str) and isinstance(state, dict)
            and all(isinstance(v, torch.Tensor) for v in state.values())
            and isinstance(payload.get("extra", {}), dict)):
        raise PadisError(f"{path} is not a complete padis3d adapter file (it lacks its spec, base fingerprint or "
                         f"weights); use the {FORMAT} file a run with --adapt wrote")
    return payload


def load_adapter(path: str | Path, base: object, payload: dict | None = None) -> Adapter:
    """An :class:`Adapter` from :func:`save_adapter`'s file (or its already read ``payload``), on
    ``base``'s device; PadisError if the file is not an adapter or was made for another base network."""
    model = base_module(base)
    payload = read_adapter_file(path) if payload is None else payload
    if payload["base_sha256"] != weights_fingerprint(model):
        raise PadisError(f"adapter {path} was made for other base weights (SHA-256 differs)")
    try:
        adapter = Adapter(model, **payload["spec"])
        adapter.load_state_dict(payload["state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a spec or weights of another adapter layout
        raise PadisError(f"adapter {path} does not fit its base network ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:160]})") from None
    return adapter.to(next(model.parameters()).device)
