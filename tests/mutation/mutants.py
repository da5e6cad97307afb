"""The documented mutants of the numerics: plausible one-line bugs, each with the unit tests of
its own module that must kill it (fail). Run them with ``python tests/mutation/run.py``.

A mutant is ``(name, file, original, mutated, tests)``: ``original`` must occur exactly once in
``file`` (the runner reports a mutant whose line has changed as stale, so the list cannot rot
silently). Equivalent mutants are not listed; survivors are closed by a test, not by removal.
"""

from __future__ import annotations

from typing import NamedTuple


class Mutant(NamedTuple):
    name: str
    file: str
    original: str
    mutated: str
    tests: tuple[str, ...]


TILING = ("tests/tiling",)
OPERATORS = ("tests/operators/test_adjoint.py", "tests/operators/test_blur_resample_noise.py",
             "tests/operators/test_ct.py")
PRIOR = ("tests/prior/test_prior_formulas.py", "tests/prior/test_prior_nn.py", "tests/prior/test_prior_checkpoint.py",
         "tests/solvers/test_patch_prior.py")
SOLVERS = ("tests/solvers/test_dds_by_hand.py", "tests/solvers/test_gaussian_closed_form.py",
           "tests/solvers/test_sampler_faithfulness.py", "tests/solvers/test_dds_and_volumes.py")
BASELINES = ("tests/operators/test_baselines.py", "tests/solvers/test_dds_by_hand.py")
ATOMIC = ("tests/prior/test_prior_formulas.py", "tests/reliability/test_determinism_resources.py")
VOLUME = ("tests/volume/test_volume_run.py", "tests/reliability/test_outputs.py")
TWO_SCALE = ("tests/prior/test_two_scale.py", "tests/volume/test_volume_two_scale.py")

MUTANTS: list[Mutant] = [
    # tiling/: geometry, positions, extraction and scatter
    Mutant("tile count K = N // P", "tiling/grid.py", "1 if w else n // p + 1 + max(", "1 if w else n // p + max(",
           TILING),
    Mutant("image placed one voxel early", "tiling/grid.py", "return tuple(slice(m, m + n) for m, n in",
           "return tuple(slice(m - 1, m - 1 + n) for m, n in", TILING),
    Mutant("positions scaled by 2/N", "tiling/grid.py", "image_index * (2.0 / (n - 1)) - 1.0",
           "image_index * (2.0 / n) - 1.0", TILING),
    Mutant("positions relative to the canvas", "tiling/grid.py", "+ (shift - m)", "+ shift", TILING),
    Mutant("shift range includes M", "tiling/grid.py", "if not 0 <= s < c:", "if not 0 <= s <= c:", TILING),
    Mutant("border of a scatter not zero", "tiling/grid.py", "canvas = tiles.new_zeros((b, c) + self.canvas_shape)",
           "canvas = tiles.new_ones((b, c) + self.canvas_shape)", TILING),
    Mutant("last tile batch dropped", "tiling/stream.py", "yield torch.arange(start, min(start + batch, total))",
           "yield torch.arange(start, min(start + batch, total - 1))", TILING),
    Mutant("batch ignores the memory budget", "tiling/stream.py", "batch = min(batch, memory_budget // per_tile)",
           "batch = min(batch, memory_budget)", TILING),
    Mutant("random shift never uses the last offset", "tiling/grid.py",
           "return tuple(int(torch.randint(c, (), generator=generator)) for c in self.shift_counts)",
           "return tuple(int(torch.randint(max(1, c - 1), (), generator=generator)) for c in self.shift_counts)",
           TILING),
    # padis3d/operators/
    Mutant("zero-boundary blur adjoint without the flip", "padis3d/operators/blur.py",
           "w = self.kernel.flip(0, 1)[None, None].to(y.dtype)", "w = self.kernel[None, None].to(y.dtype)", OPERATORS),
    Mutant("zero-boundary blur forward as correlation", "padis3d/operators/blur.py",
           "w = self.kernel.flip(0, 1)[None, None].to(x.dtype)  # conv2d correlates",
           "w = self.kernel[None, None].to(x.dtype)  # conv2d correlates", OPERATORS),
    Mutant("circular blur adjoint without conjugate", "padis3d/operators/blur.py",
           "return self._fft(y, self.otf.conj())", "return self._fft(y, self.otf)", OPERATORS),
    Mutant("block average adjoint not divided by the block size", "padis3d/operators/resample.py",
           "lifted = self._lift(y) + y[idx] / self.factor ** d", "lifted = self._lift(y) + y[idx]", OPERATORS),
    Mutant("block average pinv scaled once too few", "padis3d/operators/resample.py",
           "return self.adjoint(y) * self.factor ** len(self.in_shape)", "return self.adjoint(y)", OPERATORS),
    Mutant("CT angles include the end point", "padis3d/operators/ct.py",
           "return np.linspace(0.0, span, int(views), endpoint=False)",
           "return np.linspace(0.0, span, int(views), endpoint=True)", OPERATORS),
    # priors: EDM preconditioning, loss, checkpoints, the patch prior
    Mutant("c_out without sigma_data", "padis3d/priors/network.py",
           "c_out = s * c.sigma_data / (s ** 2 + sd2).sqrt()", "c_out = s / (s ** 2 + sd2).sqrt()", PRIOR),
    Mutant("c_skip with sigma in the numerator", "padis3d/priors/network.py",
           "c_skip = sd2 / (s ** 2 + sd2)", "c_skip = s ** 2 / (s ** 2 + sd2)", PRIOR),
    Mutant("positions scaled by c_in", "padis3d/priors/network.py", "inp = torch.cat([inp, pos], dim=1)",
           "inp = torch.cat([inp, c_in * pos], dim=1)", PRIOR),
    Mutant("c_noise = ln(sigma) / 2", "padis3d/priors/network.py", "c_noise = sigma.log() / 4",
           "c_noise = sigma.log() / 2", PRIOR),
    Mutant("EDM loss weight not squared", "padis3d/priors/network.py",
           "weight = (s ** 2 + sigma_data ** 2) / (s * sigma_data) ** 2",
           "weight = (s ** 2 + sigma_data ** 2) / (s * sigma_data)", PRIOR),
    Mutant("checkpoint loaded with strict=False", "padis3d/priors/checkpoint.py", "model.load_state_dict(state)",
           "model.load_state_dict(state, strict=False)", PRIOR),
    Mutant("score without 1/sigma^2", "padis3d/priors/patch.py",
           "return (self.denoise(x, sigma, shift=shift, generator=generator) - x) / sigma ** 2",
           "return (self.denoise(x, sigma, shift=shift, generator=generator) - x) / sigma", PRIOR),
    # padis3d/solvers/ and the CG they share with the baselines
    Mutant("DDS data step one CG step short", "padis3d/solvers/dds.py",
           "operator.adjoint(y) + rho * x0, x0=x0, iters=iters)",
           "operator.adjoint(y) + rho * x0, x0=x0, iters=max(0, iters - 1))", SOLVERS),
    Mutant("DDS re-noising direction flipped", "padis3d/solvers/dds.py",
           "eta * noise_like(x, generator) + math.sqrt(1 - eta ** 2) * (x - d) / sigma)",
           "eta * noise_like(x, generator) + math.sqrt(1 - eta ** 2) * (d - x) / sigma)", SOLVERS),
    Mutant("DDS data step without the proximal weight on x0", "padis3d/solvers/dds.py",
           "operator.adjoint(y) + rho * x0, x0=x0, iters=iters)", "operator.adjoint(y) + x0, x0=x0, iters=iters)",
           SOLVERS),
    Mutant("CG direction update with the inverse ratio", "padis3d/baselines/cg.py",
           "p = r + (rr_new / rr.clamp_min(tiny)) * p", "p = r + (rr / rr_new.clamp_min(tiny)) * p", BASELINES),
    Mutant("CG step length from the new residual", "padis3d/baselines/cg.py",
           "alpha = rr / dot(p, ap).clamp_min(tiny)", "alpha = dot(r, ap) / dot(p, ap).clamp_min(tiny)", BASELINES),
    Mutant("Algorithm 1 with the uncapped fixed-length data step", "padis3d/solvers/padis.py",
           "return torch.full_like(norm, cap)", "return zeta / norm", SOLVERS),
    Mutant("Algorithm 1 Langevin step without the 1/2", "padis3d/solvers/padis.py",
           "x = x - grad + alpha / 2 * (d - x) / sigma ** 2", "x = x - grad + alpha * (d - x) / sigma ** 2", SOLVERS),
    Mutant("Algorithm 1 adds noise at the last level", "padis3d/solvers/padis.py", "if i < n - 1:",
           "if i <= n - 1:", SOLVERS),
    Mutant("VE-DDNM range-null-space sign flipped", "padis3d/solvers/ddnm.py",
           "x0 = image - pinv(operator(image) - y)", "x0 = image + pinv(operator(image) - y)", SOLVERS),
    Mutant("Karras grid with rho = 1", "padis3d/solvers/schedules.py", "return (hi + ramp * (lo - hi)) ** rho",
           "return (hi + ramp * (lo - hi)) ** (rho / rho)", SOLVERS),
    # padis3d/baselines/
    Mutant("TV adjoint sign flipped", "padis3d/baselines/tv.py",
           "out = out + torch.cat([zero, head], dim=ax) - torch.cat([head, zero], dim=ax)",
           "out = out - torch.cat([zero, head], dim=ax) + torch.cat([head, zero], dim=ax)", BASELINES),
    Mutant("TV without the non-negativity projection", "padis3d/baselines/tv.py",
           "x_new = (x - tau * (A.adjoint(p) / a + gradient_adjoint(q, w))).clamp_min(0.0)",
           "x_new = (x - tau * (A.adjoint(p) / a + gradient_adjoint(q, w)))", BASELINES),
    # atomic writes
    Mutant("atomic writer writes in place", "padis3d/atomic.py", "yield Path(tmp)\n        os.replace(tmp, path)",
           "yield path\n        os.replace(tmp, path)", ATOMIC),
    Mutant("failed write leaves its temporary", "padis3d/atomic.py",
           "        if tmp is not None:\n            with contextlib.suppress(FileNotFoundError):\n"
           "                os.unlink(tmp)",
           "        if tmp is None:\n            with contextlib.suppress(FileNotFoundError):\n"
           "                os.unlink(tmp)", ATOMIC),
    # the volume runner
    Mutant("resume accepts another run's progress", "padis3d/volume/runner.py",
           'return int(p["step"]) if p.get("key") == self.key else 0', 'return int(p["step"])', VOLUME),
    # (ending the last band one row early is equivalent: the canvas' last row is border that no
    # tile window [s, s + K P) with s <= M - 1 reaches and the crop drops; measured: it survives)
    Mutant("first band of the volume skipped", "padis3d/volume/runner.py",
           "return [(a, min(a + b, n)) for a in range(0, n, b)]",
           "return [(a, min(a + b, n)) for a in range(b, n, b)]", VOLUME),
    # the two-scale prior (issue 17): partial blocks, the VJP's block-size weights, the runner's coarse term
    Mutant("two-scale: a partial block divided by f", "padis3d/priors/two_scale.py",
           "counts[-1] = n - (k - 1) * f", "counts[-1] = f", TWO_SCALE),
    Mutant("two-scale: VJP without Uᵀ = m B", "padis3d/priors/two_scale.py",
           'held["coarse_v"] = m * coarse_v  # Uᵀ C v', 'held["coarse_v"] = m.mean() * coarse_v  # Uᵀ C v',
           TWO_SCALE),
    Mutant("two-scale run: the correction of the band's first slices", "padis3d/volume/runner.py",
           "return up[0, 0, i0 - k0 * fz:i1 - k0 * fz]", "return up[0, 0, :i1 - i0]", TWO_SCALE),
]
