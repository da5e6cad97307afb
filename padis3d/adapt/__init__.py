"""Patch-based test-time adaptation (issue 15; Hu, Song, Fessler, Shen, IEEE T-CI 2025):
fine-tune the patch denoiser during reconstruction on a self-supervised loss that needs only
the measurements, with the base network frozen and a gradient streamed over tile batches.

* :mod:`padis3d.adapt.adapters`: LoRA / norm-only / all-weights deltas, saved as small files;
* :mod:`padis3d.adapt.loss`: ``L(θ) = ||y − A x̂(D_θ)||² (+ TV)`` and its streamed gradient;
* :mod:`padis3d.adapt.sampling`: Adam steps at chosen levels of a sampler, with the
  discrepancy-principle and plateau stops (``dds(..., adapt=TestTimeAdapter(...))``);
* :mod:`padis3d.adapt.validation`: held-out measurements (a masked operator), the validation
  rounds, rollback and the adapted / un-adapted decision.
"""

from padis3d.adapt.adapters import Adapter, AdaptedDenoiser, load_adapter, save_adapter, weights_fingerprint
from padis3d.adapt.loss import SelfSupervisedLoss, full_graph_loss_grad, parameter_vjp, streamed_loss_grad
from padis3d.adapt.sampling import AdaptSettings, AdaptStep, TestTimeAdapter, adapted_prior, levels_adapted
from padis3d.adapt.validation import MaskedOperator, MeasurementSplit, Validation, split_measurements

__all__ = ["Adapter", "AdaptedDenoiser", "load_adapter", "save_adapter", "weights_fingerprint", "SelfSupervisedLoss",
           "full_graph_loss_grad", "parameter_vjp", "streamed_loss_grad", "AdaptSettings", "AdaptStep",
           "TestTimeAdapter", "adapted_prior", "levels_adapted", "MaskedOperator", "MeasurementSplit", "Validation",
           "split_measurements"]
