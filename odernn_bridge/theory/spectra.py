"""Jacobian spectra along a trajectory and the stability conditions of THEORY.md §3.

For an ODERNN layer with method (R = P/Q) and step size h = dt/substeps, linearising the
field along the trajectory, J_k = ∂f/∂h(h_k, u_k), one RK step propagates a perturbation
(and, transposed, a back-propagated gradient) by R(h·J_k).  :func:`stability_report`
measures, per layer, step and sample:

* the eigenvalues λ of h·J_k (stored as ``eig_real``/``eig_imag``: NetCDF-safe), |R(λ)| and
  whether λ lies in the stability region S (multistep methods: max root modulus of
  ρ(ζ) − λσ(ζ) instead of |R|);
* the largest stable step for the spectrum of J_k (first ray exit, ``max_stable_dt``);
* the non-normal case: ‖R(hJ_k)‖₂ (the exact one-step amplification of the frozen
  linearisation), the numerical abscissa (rightmost point of the field of values W(hJ_k)),
  max |R| on the boundary of W(hJ_k) and Henrici's departure from normality;
* the sufficient condition, checked explicitly: ``condition_holds`` = ‖R(hJ_k)‖₂ ≤ 1 (valid
  for any J) or (all |R(λ)| ≤ 1 and J_k normal).

>>> import torch, odernn_bridge as ob
>>> rnn = ob.ODERNN(2, 4, method="RK4", dt=0.5, dtype=torch.float64)
>>> ds = stability_report(rnn, torch.randn(6, 3, 2, dtype=torch.float64))
>>> sorted(ds.sizes.items())
[('eig', 4), ('layer', 1), ('sample', 3), ('step', 6)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._cache import LRUCache, content_key
from ..cells.layer import ODERNN
from ..methods import ButcherTableau, LinearMultistep, get_method

__all__ = ["stability_report", "trajectory_jacobians", "step_jacobians", "find_odernn", "TrajectoryJacobians",
           "approx_max_stable_dt", "amplification", "complex_eigenvalues"]

#: |R| ≤ 1 + INSIDE_TOL counts as inside the closed region (round-off of eigvals/Horner)
INSIDE_TOL = 1e-9
#: real parts below SNAP_REL·|λ| are round-off of eigvals: set to 0 (imaginary axis)
SNAP_REL = 1e-10


def find_odernn(model: Any) -> ODERNN:
    """``model`` itself, its ``.rnn`` attribute, or its first ODERNN submodule."""
    if isinstance(model, ODERNN):
        return model
    rnn = getattr(model, "rnn", None)
    if isinstance(rnn, ODERNN):
        return rnn
    if isinstance(model, nn.Module):
        for m in model.modules():
            if isinstance(m, ODERNN):
                return m
    raise TypeError(f"model: expected an ODERNN or a module containing one (e.g. as .rnn), "
                    f"got {type(model).__name__}")


@dataclass
class TrajectoryJacobians:
    """Per layer: ``jacobians`` (step, batch, S, S) of the field at the state *entering* each
    step, ``states`` (step, batch, S) those states, plus the layer's cell."""

    jacobians: list[Tensor]
    states: list[Tensor]
    cells: list[nn.Module]
    full_states: list[Tensor] | None = None
    projected_inputs: list[Tensor] | None = None


def _cells_of(model: Any) -> tuple[list[nn.Module], bool]:
    if hasattr(model, "field") and hasattr(model, "run_sequence") and not isinstance(model, ODERNN):
        return [model], False
    rnn = find_odernn(model)
    return list(rnn.cells), rnn.batch_first


def _current_h(cell: nn.Module, state: Tensor) -> Tensor:
    """The part of a cell's state its field acts on (a multistep cell stores its history)."""
    from ..cells.multistep import MultistepCell

    if isinstance(cell, MultistepCell):
        return state[..., : cell.field.state_size]
    return state


def trajectory_jacobians(model: Any, inputs: Tensor, h0: Tensor | None = None,
                         max_samples: int | None = None, steps: Any = None) -> TrajectoryJacobians:
    """Run ``model`` (an ODERNN, a module with one, or a single cell) on ``inputs`` and
    return the field Jacobians ∂f/∂h along the trajectory of every layer (batched:
    analytic for affine fields, ``torch.func.vmap(jacrev)`` otherwise).

    ``inputs``: (seq, batch, input) — (batch, seq, input) for a ``batch_first`` ODERNN;
    ``max_samples`` keeps the first samples of the batch; ``steps`` (index array) selects
    the steps at which Jacobians are taken (all by default).
    """
    cells, batch_first = _cells_of(model)
    if not isinstance(inputs, Tensor) or inputs.dim() not in (2, 3):
        raise ValueError(f"inputs: expected a tensor (seq, batch, input) or (batch, seq, input) for "
                         f"batch_first models, got {type(inputs).__name__} "
                         f"{tuple(inputs.shape) if isinstance(inputs, Tensor) else ''}")
    x = inputs.unsqueeze(1) if inputs.dim() == 2 else (inputs.transpose(0, 1) if batch_first else inputs)
    if max_samples is not None:
        x = x[:, :max_samples]
    p = next(cells[0].parameters(), None)
    if p is not None:
        x = x.to(dtype=p.dtype, device=p.device)
    if not torch.isfinite(x).all():
        raise ValueError("inputs: contains NaN or Inf")
    T, B = x.shape[0], x.shape[1]
    jacs, sts, fulls, us = [], [], [], []
    layer_in = x
    with torch.no_grad():
        for l, cell in enumerate(cells):
            S = cell.state_size if hasattr(cell, "state_size") and isinstance(cell.state_size, int) \
                else cell.field.state_size
            if h0 is None:
                h = layer_in.new_zeros(B, S)
            else:
                hl = h0[l] if h0.dim() == 3 else h0
                h = hl[:B].to(layer_in.dtype)
                if h.shape[-1] != S and hasattr(cell, "expand_state"):
                    h = cell.expand_state(h)
            u_seq = cell.field.project_input(layer_in)
            states = cell.run_sequence(u_seq, h)
            before = torch.cat([h.unsqueeze(0), states[:-1]], 0)
            idx = torch.arange(T) if steps is None else torch.as_tensor(steps)
            hb = _current_h(cell, before[idx])
            ub = u_seq[idx]
            n = hb.shape[-1]
            J = cell.field.jacobian(hb.reshape(-1, n), ub.reshape(-1, ub.shape[-1]))
            jacs.append(J.reshape(len(idx), B, n, n).detach())
            sts.append(hb.detach())
            fulls.append(before[idx].detach())
            us.append(ub.detach())
            layer_in = cell.readout(states) if hasattr(cell, "readout") else cell.field.readout(states)
    return TrajectoryJacobians(jacs, sts, cells, fulls, us)


def step_jacobians(cell: nn.Module, states: Tensor, u: Tensor) -> Tensor:
    """∂h_{k+1}/∂h_k of one full cell step (all stages, Newton solves, multistep history) at
    the given states (…, S) and projected inputs (…, p): (…, S, S), by reverse mode, one
    backward pass per output component (samples of a batch do not interact)."""
    lead = states.shape[:-1]
    S = states.shape[-1]
    s = states.reshape(-1, S).detach().clone().requires_grad_(True)
    uu = u.reshape(-1, u.shape[-1]).detach()
    with torch.enable_grad():
        out = cell.step_projected(uu, s)
        rows = []
        for i in range(out.shape[-1]):
            (g,) = torch.autograd.grad(out[:, i].sum(), s, retain_graph=i + 1 < out.shape[-1],
                                       allow_unused=True)
            rows.append(torch.zeros_like(s) if g is None else g)
    return torch.stack(rows, 1).reshape(*lead, out.shape[-1], S).detach()


# -- method helpers ---------------------------------------------------------------------------

class ExactFlow:
    """The exact flow exp(hJ) as a "method": R(z) = e^z, stability region Re z ≤ 0."""

    name = "exact exponential"
    stages = 1


class _QUNNLayer:
    """Adapter giving a :class:`QUNNCell` the (method, dt, substeps) view of an ODERNN cell."""

    def __init__(self, q: Any) -> None:
        self.dt = q.dt
        self.substeps = 1
        self.method = get_method("GL2") if q.integrator == "cayley" else ExactFlow()


def _qunn_jacobians(q: Any, inputs: Tensor, max_samples: int | None, steps: Any) -> tuple[Tensor, Tensor]:
    """J_k = −iH_k in real form (2d × 2d skew) along the input sequence; states unused by J."""
    x = inputs.transpose(0, 1) if q.batch_first else inputs
    if x.dim() != 3 or x.shape[-1] != q.input_size:
        raise ValueError(f"inputs: expected (seq, batch, input_size={q.input_size}) for the QUNN, "
                         f"got {tuple(inputs.shape)}")
    if max_samples is not None:
        x = x[:, :max_samples]
    x = x.to(q.couplings.dtype)
    if not torch.isfinite(x).all():
        raise ValueError("inputs: contains NaN or Inf")
    T, B = x.shape[0], x.shape[1]
    t = q.memory
    padded = torch.cat([x.new_zeros(t - 1, B, q.input_size), x], 0)
    idx = range(T) if steps is None else [int(i) for i in steps]
    with torch.no_grad():
        J = torch.stack([q.real_generator(padded[k: k + t].flip(0)) / q.dt for k in idx], 0)
    return J, x

def _method_of(cell: nn.Module, override: Any = None) -> Any:
    from ..methods import get_method

    if override is not None:
        return get_method(override) if isinstance(override, str) else override
    m = getattr(cell, "method", None)
    if isinstance(m, (ButcherTableau, LinearMultistep, ExactFlow)):
        return m
    return None  # e.g. HigherOrderCell's "symplectic_euler" scheme


def _step_size(cell: nn.Module) -> float:
    return float(cell.dt) / float(getattr(cell, "substeps", 1) or 1)


def amplification(method: Any, z: np.ndarray) -> np.ndarray:
    """|R(z)| for a Runge–Kutta method; max root modulus of ρ − zσ for a multistep method."""
    from ..stability.function import stability_function
    from ..stability.multistep import max_root_modulus

    if isinstance(method, LinearMultistep):
        return max_root_modulus(method, z)
    if isinstance(method, ExactFlow):
        return np.exp(np.real(z))
    return np.abs(stability_function(method)(z))


#: ray exits per (method content, quantised direction): keyed on the coefficients, never
#: on id() (ids are reused after a tableau is collected), and bounded
_RAY_CACHE = LRUCache(maxsize=8192)
_ANGLE_STEP = math.radians(0.5)


def _ray(method: Any, key: int, exact_imag: bool) -> float:
    from ..stability.intervals import ray_exit

    d = 1j if exact_imag else complex(math.cos(key * _ANGLE_STEP), math.sin(key * _ANGLE_STEP))
    return _RAY_CACHE.get_or_compute((content_key(method), key, bool(exact_imag)),
                                     lambda: float(ray_exit(method, d)))


def _snap(lam: np.ndarray) -> np.ndarray:
    lam = np.asarray(lam, dtype=np.complex128)
    small = np.abs(lam.real) <= SNAP_REL * np.abs(lam)
    return np.where(small, 1j * lam.imag, lam)


def _exact_dt(method: Any, lam: np.ndarray) -> float:
    """min over λ of r*(λ/|λ|)/|λ| with exact (cached) ray exits; λ of J, nonzero."""
    from ..stability.intervals import ray_exit

    best = math.inf
    for z in np.asarray(lam).ravel():
        if z == 0:
            continue
        d = z / abs(z)
        d = complex(round(d.real, 15), round(abs(d.imag), 15))
        r = _EXACT_CACHE.get_or_compute((content_key(method), d.real, d.imag),
                                        lambda: float(ray_exit(method, d)))
        best = min(best, r / abs(z))
    return best


#: exact ray exits per (method content, direction); bounded like _RAY_CACHE
_EXACT_CACHE = LRUCache(maxsize=8192)


def approx_max_stable_dt(method: Any, lam: np.ndarray, refine: int = 3,
                         per_row: bool = True) -> tuple[np.ndarray, float]:
    """Largest stable step for the spectra ``lam`` (…, n) of J: per leading index (exact) and overall.

    Screening: ray exits with directions quantised to 0.5° (cached) rank the eigenvalues of
    each row; the ``refine`` most binding of each row are then recomputed with exact ray exits
    (:func:`odernn_bridge.stability.intervals.ray_exit`, cached by direction).  Returns
    ``(per-row array of shape lam.shape[:-1], overall minimum)``; with ``per_row=False`` only the
    overall minimum is exact (from the 8 most binding eigenvalues overall) and the per-row
    array holds the screening values.
    """
    lam = _snap(np.asarray(lam))
    if isinstance(method, ExactFlow):  # S = closed left half-plane: every ray stays or leaves at once
        per = np.where((lam.real > 0).any(-1), 0.0, math.inf)
        return per, float(per.min()) if per.size else math.inf
    rows = lam.reshape(-1, lam.shape[-1])
    flat = rows.ravel()
    approx = np.full(flat.shape, np.inf)
    mod = np.abs(flat)
    nz = mod > 0
    if np.any(nz):
        ang = np.abs(np.angle(flat[nz]))  # conjugate symmetry: [0, π]
        keys = np.rint(ang / _ANGLE_STEP).astype(int)
        imag_axis = flat[nz].real == 0
        qre = np.cos(keys * _ANGLE_STEP)
        # a quantised direction must stay on the same side of the imaginary axis
        keys = np.where((flat[nz].real > 0) & (qre <= 0), keys - 1, keys)
        keys = np.where((flat[nz].real < 0) & (qre >= 0) & ~imag_axis, keys + 1, keys)
        vals = np.array([_ray(method, int(k), bool(im)) for k, im in zip(keys, imag_axis)])
        approx[nz] = vals / mod[nz]
    approx = approx.reshape(rows.shape)
    if not per_row:
        cand = np.argsort(approx.ravel())[:8]
        return approx.min(-1).reshape(lam.shape[:-1]), _exact_dt(method, rows.ravel()[cand])
    per = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        cand = np.argsort(approx[i])[:refine]
        per[i] = _exact_dt(method, rows[i, cand])
    return per.reshape(lam.shape[:-1]), float(per.min()) if per.size else math.inf


def complex_eigenvalues(ds: Any) -> Any:
    """The eigenvalues of h·J of a :func:`stability_report` as one complex DataArray."""
    return (ds["eig_real"] + 1j * ds["eig_imag"]).rename("eigenvalue")


def _matrix_R(method: ButcherTableau, Z: Tensor) -> Tensor:
    """R(Z) = Q(Z)⁻¹ P(Z) for a batch of matrices Z (…, n, n)."""
    from ..stability.function import stability_function

    if isinstance(method, ExactFlow):
        return torch.linalg.matrix_exp(Z)
    R = stability_function(method)
    eye = torch.eye(Z.shape[-1], dtype=Z.dtype, device=Z.device).expand_as(Z)

    def horner(coeffs: np.ndarray) -> Tensor:
        acc = float(coeffs[-1]) * eye
        for c in coeffs[-2::-1]:
            acc = Z @ acc + float(c) * eye
        return acc

    P = horner(R.numerator)
    if len(R.denominator) == 1:
        return P / float(R.denominator[0])
    return torch.linalg.solve(horner(R.denominator), P)


def _fov_boundary(Z: Tensor, n_angles: int = 24) -> Tensor:
    """Points on the boundary of the field of values W(Z), (…, n_angles) complex."""
    Zc = Z.to(torch.complex128)
    pts = []
    for th in np.linspace(0.0, 2 * np.pi, n_angles, endpoint=False):
        rot = complex(np.cos(th), np.sin(th))
        Hth = 0.5 * (rot * Zc + np.conj(rot) * Zc.conj().transpose(-1, -2))
        _, V = torch.linalg.eigh(Hth)
        v = V[..., -1]
        pts.append(torch.einsum("...i,...ij,...j->...", v.conj(), Zc, v))
    return torch.stack(pts, -1)


def stability_report(model: Any, inputs: Tensor, h0: Tensor | None = None, *, method: Any = None,
                     max_samples: int | None = None, steps: Any = None, field_of_values: bool = True,
                     exact_dt: bool = True, per_step_dt: bool = True,
                     step_jacobian: bool = False) -> "xr.Dataset":  # noqa: F821
    """Jacobian-spectrum stability analysis of ``model`` along its trajectory on ``inputs``.

    Args:
        model: an ODERNN, a module holding one (``.rnn`` or any submodule), a single
            ODERNN cell (RKCell, MultistepCell, HigherOrderCell, …), or a :class:`QUNNCell`
            (J_k = −iH_k in real form; method GL2 = Cayley, or the exact exponential).
        inputs: (seq, batch, input) — batch first for ``batch_first`` ODERNNs.
        h0: initial states (num_layers, batch, state) or (batch, state); zeros by default.
        method: analyse as if integrated with this method (default: the cell's own).
        max_samples, steps: restrict the samples / steps analysed.
        field_of_values: also sample the boundary of W(h·J) (24 directions).
        exact_dt: compute the largest stable dt (exact ray exits of the binding eigenvalues).
        per_step_dt: exact per step (else only the overall value is exact; per-step values are
            the 0.5°-screening estimates).
        step_jacobian: also differentiate the whole cell step, M_k = ∂h_{k+1}/∂h_k (autograd),
            and store ``step_norm`` = ‖M_k‖₂ and ``step_spectral_radius`` = ρ(M_k): the actual
            one-step amplification of the nonlinear cell, for any cell (RK, implicit,
            multistep with its history, second-order schemes).  For a linear field and an RK
            method M_k = R(hJ).

    Returns an ``xarray.Dataset`` with dims ``layer, step, sample, eig`` and variables
    ``eig_real, eig_imag`` (eigenvalues of h·J, h = dt/substeps), ``abs_R``, ``inside``
    (int8), ``spectral_abscissa`` (max Re λ(J)), ``numerical_abscissa`` (max Re W(J)),
    ``norm_R`` (‖R(hJ)‖₂), ``fov_max_abs_R``, ``departure_from_normality``,
    ``eig_condition``, ``norm_condition``, ``condition_holds`` (int8), ``max_stable_dt``
    (per step, pooled over samples) and scalars ``frac_inside``, ``max_abs_R``,
    ``max_stable_dt_overall``, ``frac_condition``; attrs: method, dt, step_size.

    Limits: adaptive cells are analysed at their nominal step dt/substeps; the second-order
    schemes of :class:`HigherOrderCell` (``symplectic_euler``, ``stormer_verlet``, used by
    coRNN) have no stability function here, so their |R| entries are NaN (spectra, abscissae
    and normality are still reported).

    Eigenvalues are stored as real/imag pairs.  (h5netcdf ≥ 1.4 also round-trips complex
    variables, as an HDF5 compound type; readers built on older netCDF-C do not understand
    it, so the report keeps to plain float64.)  :func:`complex_eigenvalues` recombines them.
    """
    import xarray as xr

    from ..io import provenance

    from .qunn import QUNNCell

    if isinstance(model, QUNNCell):
        Jq, _ = _qunn_jacobians(model, inputs, max_samples, steps)
        tj = TrajectoryJacobians([Jq], [], [_QUNNLayer(model)])  # type: ignore[list-item]
    else:
        tj = trajectory_jacobians(model, inputs, h0, max_samples=max_samples, steps=steps)
    L = len(tj.cells)
    T, B, n, _ = tj.jacobians[0].shape
    shape = (L, T, B, n)
    eig = np.zeros(shape, dtype=np.complex128)
    absR = np.full(shape, np.nan)
    sa = np.zeros(shape[:3])
    na = np.zeros(shape[:3])
    normR = np.full(shape[:3], np.nan)
    fovR = np.full(shape[:3], np.nan)
    dep = np.zeros(shape[:3])
    msdt = np.full((L, T), np.nan)
    overall = math.inf
    names, hs = [], []
    for l, (J, cell) in enumerate(zip(tj.jacobians, tj.cells)):
        if J.shape[-1] != n:
            raise ValueError("model: layers with different state sizes are not supported")
        m = _method_of(cell, method)
        h = _step_size(cell)
        hs.append(h)
        names.append(getattr(m, "name", str(getattr(cell, "method", "?"))))
        Jd = J.to(torch.float64)
        lamJ = _snap(torch.linalg.eigvals(Jd).numpy())
        eig[l] = h * lamJ
        sa[l] = lamJ.real.max(-1)
        sym = 0.5 * (Jd + Jd.transpose(-1, -2))
        na[l] = torch.linalg.eigvalsh(sym)[..., -1].numpy()
        fro2 = (Jd ** 2).sum((-1, -2)).numpy()
        dep[l] = np.sqrt(np.maximum(fro2 - (np.abs(lamJ) ** 2).sum(-1), 0.0)) / np.sqrt(np.maximum(fro2, 1e-300))
        if m is None:
            continue
        absR[l] = amplification(m, eig[l])
        if isinstance(m, (ButcherTableau, ExactFlow)):
            Z = h * Jd
            normR[l] = torch.linalg.matrix_norm(_matrix_R(m, Z), ord=2).numpy()
            if field_of_values:
                pts = _fov_boundary(Z).numpy()
                fovR[l] = amplification(m, pts).max(-1)
        if exact_dt:
            per, best = approx_max_stable_dt(m, lamJ.reshape(T, B * n), per_row=per_step_dt)
            sub = float(getattr(cell, "substeps", 1) or 1)  # RK steps per input step: dt = sub·h
            msdt[l] = sub * per
            overall = min(overall, sub * best)
    step_norm = np.full(shape[:3], np.nan)
    step_rho = np.full(shape[:3], np.nan)
    if step_jacobian:
        if tj.full_states is None:
            raise ValueError("step_jacobian: not available for a QUNNCell (its step is exactly U(H_k))")
        for l, cell in enumerate(tj.cells):
            M = step_jacobians(cell, tj.full_states[l], tj.projected_inputs[l]).to(torch.float64)
            step_norm[l] = torch.linalg.matrix_norm(M, ord=2).numpy()
            step_rho[l] = torch.linalg.eigvals(M).abs().max(-1).values.numpy()
    inside = (absR <= 1.0 + INSIDE_TOL)
    eig_cond = np.all(inside, axis=-1)
    norm_cond = normR <= 1.0 + INSIDE_TOL
    normal = dep <= 1e-8
    cond = norm_cond | (eig_cond & normal)
    dims4 = ("layer", "step", "sample", "eig")
    dims3 = ("layer", "step", "sample")
    step_coord = np.arange(T) if steps is None else np.asarray(steps)
    ds = xr.Dataset(
        {
            "eig_real": (dims4, eig.real, {"long_name": "Re of the eigenvalues of h·J (h = dt/substeps)"}),
            "eig_imag": (dims4, eig.imag, {"long_name": "Im of the eigenvalues of h·J"}),
            "abs_R": (dims4, absR, {"long_name": "|R(hλ)| (multistep: max root modulus)"}),
            "inside": (dims4, inside.astype(np.int8), {"long_name": "hλ in the stability region"}),
            "spectral_abscissa": (dims3, sa, {"long_name": "max Re λ(J)"}),
            "numerical_abscissa": (dims3, na, {"long_name": "max Re of the field of values W(J)"}),
            "norm_R": (dims3, normR, {"long_name": "‖R(hJ)‖₂, one-step amplification of the linearisation"}),
            "fov_max_abs_R": (dims3, fovR, {"long_name": "max |R| on sampled boundary points of W(hJ)"}),
            "departure_from_normality": (dims3, dep, {"long_name": "Henrici departure / ‖J‖_F"}),
            "eig_condition": (dims3, eig_cond.astype(np.int8), {"long_name": "all |R(hλ)| ≤ 1"}),
            "norm_condition": (dims3, norm_cond.astype(np.int8), {"long_name": "‖R(hJ)‖₂ ≤ 1"}),
            "condition_holds": (dims3, cond.astype(np.int8),
                                {"long_name": "sufficient condition: ‖R(hJ)‖₂ ≤ 1, or eigs inside and J normal"}),
            "max_stable_dt": (("layer", "step"), msdt,
                              {"long_name": "largest stable dt (= substeps · largest stable RK step) for the spectrum of J, pooled over samples"}),
            "frac_inside": ((), float(inside.mean()) if np.isfinite(absR).all() else float("nan")),
            "max_abs_R": ((), float(np.nanmax(absR)) if np.isfinite(absR).any() else float("nan")),
            "max_stable_dt_overall": ((), overall if exact_dt else float("nan")),
            "frac_condition": ((), float(cond.mean())),
            "step_norm": (dims3, step_norm, {"long_name": "‖∂h_(k+1)/∂h_k‖₂ of the whole cell step "
                                                         "(NaN unless step_jacobian=True)"}),
            "step_spectral_radius": (dims3, step_rho, {"long_name": "spectral radius of ∂h_(k+1)/∂h_k"}),
        },
        coords={"layer": np.arange(L), "step": step_coord, "sample": np.arange(B), "eig": np.arange(n)},
        attrs=provenance(method=",".join(names), dt=float(getattr(tj.cells[0], "dt", float("nan"))),
                         step_size=hs[0], inside_tol=INSIDE_TOL, snap_rel=SNAP_REL,
                         description="Jacobian-spectrum stability report (THEORY.md §3)"),
    )
    return ds
