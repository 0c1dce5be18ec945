"""Training-time stability monitor and spectrum-controlling parametrisations (THEORY.md §3).

:class:`StabilityMonitor` is what the trainer calls every ``every`` steps::

    monitor = StabilityMonitor(method=None, every=50, max_samples=8)
    metrics = monitor(model, inputs)      # dict[str, float]

Keys (all floats):

``frac_inside``
    fraction of the eigenvalues h·λ of h·J_k (all layers, analysed steps and samples) in the
    method's stability region S (h = dt/substeps);
``max_abs_R``
    max |R(h·λ)| (multistep methods: max root modulus) — > 1 means some linearised mode grows;
``max_stable_dt``
    the largest dt keeping every λ(J_k) seen in S (first ray exit; ``inf`` if unbounded);
``dt``
    the layer's dt (the first layer's);
``spectral_abscissa``
    max Re λ(J_k) (of J, not h·J): > 0 means the ODE itself is locally unstable;
``max_norm_R``
    max ‖R(h·J_k)‖₂ — the non-normal, exact one-step amplification of the linearisation
    (NaN for multistep methods);
``numerical_abscissa``
    max Re of the field of values W(J_k);
``frac_condition``
    fraction of (layer, step, sample) where the sufficient condition of THEORY.md §3 holds.

>>> import torch, odernn_bridge as ob
>>> mon = StabilityMonitor(every=10, max_samples=2)
>>> rnn = ob.ODERNN(2, 3, method="Euler", dt=0.1, dtype=torch.float64)
>>> m = mon(rnn, torch.randn(5, 4, 2, dtype=torch.float64))
>>> sorted(m)[:5]
['dt', 'frac_condition', 'frac_inside', 'max_abs_R', 'max_norm_R']
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._checks import check_positive_int, check_step_size
from ..methods import ButcherTableau, LinearMultistep
from .spectra import find_odernn, stability_report

__all__ = ["StabilityMonitor", "DampedAntisymmetric", "SpectralScaling", "stable_scale"]


class StabilityMonitor:
    """Cheap periodic stability diagnostics for a model that contains an ODERNN.

    Args:
        method: analyse with this method instead of the model's own (name or tableau).
        every: the trainer's cadence hint (steps between calls); :meth:`due` applies it.
        max_samples: samples of the batch analysed.
        max_steps: at most this many evenly spaced time steps are analysed.
    """

    def __init__(self, method: Any = None, every: int = 50, max_samples: int = 8, max_steps: int = 64) -> None:
        for name, v in (("every", every), ("max_samples", max_samples), ("max_steps", max_steps)):
            check_positive_int(v, name)
        if method is not None and not isinstance(method, (str, ButcherTableau, LinearMultistep)):
            raise TypeError(f"method: expected None, a method name or a method, got {type(method).__name__}")
        self.method = method
        self.every = every
        self.max_samples = max_samples
        self.max_steps = max_steps
        self.last: dict[str, float] = {}

    def due(self, step: int) -> bool:
        """Whether the monitor should run at training step ``step`` (every ``every`` steps)."""
        return step % self.every == 0

    def __call__(self, model: Any, inputs: Tensor) -> dict[str, float]:
        rnn = find_odernn(model)
        if not isinstance(inputs, Tensor) or inputs.dim() not in (2, 3):
            raise ValueError("inputs: expected a (seq, batch, feature) tensor (batch first for batch_first models)")
        T = inputs.shape[1 if (rnn.batch_first and inputs.dim() == 3) else 0]
        steps = None
        if T > self.max_steps:
            steps = np.unique(np.linspace(0, T - 1, self.max_steps).round().astype(int))
        was = rnn.training
        rnn.eval()
        try:
            ds = stability_report(rnn, inputs.detach(), method=self.method, max_samples=self.max_samples,
                                  steps=steps, field_of_values=False, per_step_dt=False)
        finally:
            rnn.train(was)
        norm = ds["norm_R"].values
        out = {
            "frac_inside": float(ds["frac_inside"]),
            "max_abs_R": float(ds["max_abs_R"]),
            "max_stable_dt": float(ds["max_stable_dt_overall"]),
            "dt": float(rnn.dt),
            "spectral_abscissa": float(ds["spectral_abscissa"].max()),
            "max_norm_R": float(np.nanmax(norm)) if np.isfinite(norm).any() else float("nan"),
            "numerical_abscissa": float(ds["numerical_abscissa"].max()),
            "frac_condition": float(ds["frac_condition"]),
        }
        self.last = out
        return out


# -- parametrisations -----------------------------------------------------------------------------

class DampedAntisymmetric(nn.Module):
    """``X ↦ X − Xᵀ − γI`` (for ``torch.nn.utils.parametrize.register_parametrization``).

    The eigenvalues of the result are −γ ± iy: on a vertical line left of the imaginary axis,
    inside the region of any method with an imaginary stability interval once dt·|y| is
    below it, and inside any A-stable method's region for every dt.

    >>> import torch
    >>> from torch.nn.utils import parametrize
    >>> lin = torch.nn.Linear(4, 4, bias=False)
    >>> _ = parametrize.register_parametrization(lin, "weight", DampedAntisymmetric(0.1))
    >>> ev = torch.linalg.eigvals(lin.weight.detach())
    >>> bool(torch.allclose(ev.real, torch.full((4,), -0.1), atol=1e-6))
    True
    """

    def __init__(self, gamma: float = 0.01) -> None:
        super().__init__()
        if not isinstance(gamma, (int, float)) or not math.isfinite(gamma) or gamma < 0:
            raise ValueError(f"gamma: expected a finite number >= 0, got {gamma!r}")
        self.gamma = float(gamma)

    def forward(self, X: Tensor) -> Tensor:
        eye = torch.eye(X.shape[-1], dtype=X.dtype, device=X.device)
        return X - X.transpose(-1, -2) - self.gamma * eye


def stable_scale(method: Any, eigenvalues: Any, dt: float, margin: float = 0.95) -> float:
    """The factor s ≤ 1 such that dt·s·λ stays in S for all λ (``margin``·max stable dt / dt).

    Scaling a matrix by s scales its spectrum, and the largest stable dt by 1/s.
    """
    from ..stability.intervals import max_stable_dt

    dmax = max_stable_dt(method, eigenvalues)
    if not math.isfinite(dmax):
        return 1.0
    if dmax <= 0:
        raise ValueError("eigenvalues: a ray leaves the stability region at once (e.g. explicit Euler with "
                         "imaginary eigenvalues); no scaling helps — add damping or change the method")
    return min(1.0, margin * dmax / dt)


class SpectralScaling(nn.Module):
    """``W ↦ s·W`` with s = :func:`stable_scale` of the spectrum of W: keeps dt·λ(W) inside the
    region of ``method`` (the factor is recomputed each call and treated as a constant by
    autograd, like a projection).  For a field act(W h + …) with act' ∈ (0, 1] this controls
    the linear part; the monitor checks the actual Jacobians.

    >>> import torch
    >>> from torch.nn.utils import parametrize
    >>> lin = torch.nn.Linear(6, 6, bias=False, dtype=torch.float64)
    >>> with torch.no_grad(): _ = lin.weight.copy_(-20.0 * torch.eye(6, dtype=torch.float64))
    >>> _ = parametrize.register_parametrization(lin, "weight", SpectralScaling("RK4", dt=1.0))
    >>> from odernn_bridge.stability.intervals import max_stable_dt
    >>> max_stable_dt("RK4", torch.linalg.eigvals(lin.weight.detach()).numpy()) >= 1.0
    True
    """

    def __init__(self, method: Any, dt: float, margin: float = 0.95) -> None:
        super().__init__()
        check_step_size(dt, "dt")
        if not (0 < margin <= 1):
            raise ValueError(f"margin: expected a number in (0, 1], got {margin!r}")
        self.method = method
        self.dt = float(dt)
        self.margin = float(margin)

    def forward(self, W: Tensor) -> Tensor:
        with torch.no_grad():
            ev = torch.linalg.eigvals(W.detach().to(torch.float64)).numpy()
            s = stable_scale(self.method, ev, self.dt, self.margin)
        return W * s
