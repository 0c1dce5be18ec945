r"""Stability of linear multistep methods: root condition, boundary locus, amplification.

Ascending convention (see :mod:`odernn_bridge.methods.multistep`):
Σ α_j y_{n+j} = dt Σ β_j f_{n+j}, ρ(ζ) = Σ α_j ζ^j, σ(ζ) = Σ β_j ζ^j.
Applied to y' = λy with z = dt·λ the recurrence has characteristic polynomial
π(ζ; z) = ρ(ζ) − zσ(ζ); z is in the (closed) stability region when every root has
|ζ| ≤ 1.  The region's boundary is contained in the boundary locus
z(θ) = ρ(e^{iθ})/σ(e^{iθ}), the set of z with a root on the unit circle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..methods.multistep import LinearMultistep
from ..methods.tableau import ButcherTableau

__all__ = ["MultistepStability", "max_root_modulus", "grid_max_root_modulus", "all_roots", "root_condition", "boundary_locus"]

#: tolerance on |ζ| − 1 when a root counts as on/inside the unit circle (float64 roots)
ROOT_TOL = 1e-9


def max_root_modulus(method: LinearMultistep, z: Any) -> np.ndarray:
    """Largest |ζ| over the roots of ρ(ζ) − zσ(ζ), elementwise in ``z`` (vectorised).

    The roots are eigenvalues of a batch of companion matrices.  Where the leading
    coefficient α_k − zβ_k vanishes a root has gone to infinity: the result is ``inf``.

    >>> from odernn_bridge.methods import LinearMultistep
    >>> ab2 = LinearMultistep([0, -1, 1], ["-1/2", "3/2", 0])
    >>> round(float(max_root_modulus(ab2, -1.0)), 12)
    1.0
    """
    zz = np.asarray(z, dtype=np.complex128)
    roots = all_roots(method, zz.ravel())
    with np.errstate(invalid="ignore"):
        out = np.max(np.abs(roots), axis=1) if roots.shape[1] else np.zeros(roots.shape[0])
    return out.reshape(zz.shape)


def all_roots(method: LinearMultistep, z: np.ndarray) -> np.ndarray:
    """Roots of ρ(ζ) − z σ(ζ) for each z of a 1-D array: shape ``(len(z), k)``.

    Computed as eigenvalues of batched companion matrices (in chunks); rows where the
    leading coefficient α_k − zβ_k vanishes (a root at infinity) are ``inf``.
    """
    zf = np.asarray(z, dtype=np.complex128).ravel()
    a = np.asarray(method.alpha, dtype=np.float64)
    b = np.asarray(method.beta, dtype=np.float64)
    k = len(a) - 1
    coeffs = a[None, :] - zf[:, None] * b[None, :]  # (N, k+1), ascending in ζ
    lead = coeffs[:, -1]
    with np.errstate(invalid="ignore"):
        scale = np.max(np.abs(coeffs), axis=1)
        good = (np.abs(lead) > 1e-14 * scale) & np.all(np.isfinite(coeffs), axis=1)
    out = np.full((zf.size, k), np.inf + 0j)
    if k == 1:
        out[good, 0] = -coeffs[good, 0] / lead[good]
    elif np.any(good):
        c = coeffs[good] / lead[good, None]
        n = c.shape[0]
        comp = np.zeros((n, k, k), dtype=np.complex128)
        comp[:, 0, :] = -c[:, -2::-1]  # first row: -c_{k-1}, ..., -c_0
        idx = np.arange(k - 1)
        comp[:, idx + 1, idx] = 1.0
        res = np.empty((n, k), dtype=np.complex128)
        step = 65536  # chunks keep the working set small for very large grids
        for s in range(0, n, step):
            res[s:s + step] = np.linalg.eigvals(comp[s:s + step])
        out[good] = res
    return out


def grid_max_root_modulus(method: LinearMultistep, z: np.ndarray) -> np.ndarray:
    """:func:`max_root_modulus` on a 2-D grid by root continuation along its rows.

    Column 0 is solved by companion eigenvalues; every further column starts Newton's
    method (4 steps, all roots at once) from the roots of the previous column.  A point
    is accepted only if the last Newton step was below 1e-7 (so the roots are accurate to
    ~1e-14: Newton converges quadratically) and the roots reproduce the coefficients'
    sum and product (Vieta) to 1e-10 — which catches two tracked roots merging onto one;
    other points are re-solved by eigenvalues.  Same result as the eigenvalue route to
    ~1e-12, about ten times faster on large grids.
    """
    z = np.asarray(z, dtype=np.complex128)
    if z.ndim != 2 or z.shape[1] < 2 or len(method.alpha) <= 2:
        return max_root_modulus(method, z)
    a = np.asarray(method.alpha, dtype=np.float64)
    b = np.asarray(method.beta, dtype=np.float64)
    k = len(a) - 1
    ny, nx = z.shape
    out = np.empty((ny, nx))
    r = all_roots(method, z[:, 0])
    with np.errstate(all="ignore"):
        out[:, 0] = np.max(np.abs(r), axis=1)
        for j in range(1, nx):
            zc = z[:, j]
            c = a[None, :] - zc[:, None] * b[None, :]  # (ny, k+1)
            lead = c[:, -1]
            mon = c / lead[:, None]  # monic, ascending
            r = np.where(np.isfinite(r), r, 0.5 + 0.5j)
            for _ in range(4):
                p = np.ones_like(r)
                dp = np.zeros_like(r)
                for i in range(k - 1, -1, -1):
                    dp = dp * r + p
                    p = p * r + mon[:, i, None]
                step = p / dp
                r = r - step
            mag = 1.0 + np.abs(r)
            ok = np.all(np.isfinite(r), axis=1) & np.all(np.abs(step) <= 1e-7 * mag, axis=1)
            ok &= np.abs(np.sum(r, axis=1) + mon[:, k - 1]) <= 1e-10 * np.sum(mag, axis=1)
            prod_ref = (-1) ** k * mon[:, 0]
            ok &= np.abs(np.prod(r, axis=1) - prod_ref) <= 1e-10 * np.prod(mag, axis=1)
            ok &= np.abs(lead) > 1e-14 * np.max(np.abs(c), axis=1)
            if not np.all(ok):
                bad = ~ok
                r[bad] = all_roots(method, zc[bad])
            out[:, j] = np.max(np.abs(r), axis=1)
    return out


class MultistepStability:
    """``z ↦ max |ζ|`` over the roots of ρ(ζ) − zσ(ζ), the multistep analogue of |R(z)|.

    ``rho`` and ``sigma`` are the coefficient arrays (ascending powers of ζ).

    >>> import odernn_bridge as ob
    >>> bdf1 = ob.LinearMultistep([-1, 1], [0, 1], name="BDF1")
    >>> round(float(ob.stability_function(bdf1)(-1.0)), 12)
    0.5
    """

    def __init__(self, method: LinearMultistep) -> None:
        self.method = method
        self.name = method.name
        self.rho = np.asarray(method.alpha, dtype=np.float64)
        self.sigma = np.asarray(method.beta, dtype=np.float64)

    def __call__(self, z: Any) -> Any:
        out = max_root_modulus(self.method, z)
        return out[()] if out.ndim == 0 else out

    def __repr__(self) -> str:
        return f"MultistepStability({self.name}: rho={self.rho.tolist()}, sigma={self.sigma.tolist()})"


def root_condition(method: Any, z: complex = 0.0) -> bool:
    """The root condition of ρ(ζ) − zσ(ζ): every root |ζ| ≤ 1, those with |ζ| = 1 simple.

    At ``z = 0`` (the default) this is zero-stability.  Runge–Kutta methods are always
    zero-stable (their "ρ" is ζ − 1); for them ``z != 0`` checks |R(z)| ≤ 1.

    >>> import odernn_bridge as ob
    >>> root_condition(ob.LinearMultistep([0, -1, 1], ["-1/2", "3/2", 0]))
    True
    >>> root_condition(ob.LinearMultistep([-1, 2, -2, 1], [0, 0, 0, 1], verify=False))  # ρ = (ζ-1)(ζ²-ζ+1)
    True
    """
    from .function import as_method, stability_function

    m = as_method(method)
    zc = complex(z)
    if not np.isfinite(zc):
        raise ValueError(f"z: expected a finite complex number, got {z!r}")
    if isinstance(m, ButcherTableau):
        return bool(abs(stability_function(m)(zc)) <= 1 + ROOT_TOL)
    coeffs = np.asarray(m.alpha, dtype=np.complex128) - zc * np.asarray(m.beta)
    # strip vanishing leading coefficients (roots at infinity fail the condition)
    if abs(coeffs[-1]) <= 1e-14 * np.max(np.abs(coeffs)):
        return False
    roots = np.roots(coeffs[::-1])
    mod = np.abs(roots)
    if np.any(mod > 1 + ROOT_TOL):
        return False
    on = roots[np.abs(mod - 1) <= 1e-7]
    for i in range(len(on)):
        for j in range(i + 1, len(on)):
            # float64 splits a double root on the circle by ~sqrt(eps) ~ 1e-8
            if abs(on[i] - on[j]) < 1e-5:
                return False
    return True


def _locus_points(m: LinearMultistep, theta: np.ndarray) -> np.ndarray:
    zeta = np.exp(1j * theta)
    a = np.asarray(m.alpha)[::-1]
    b = np.asarray(m.beta)[::-1]
    with np.errstate(all="ignore"):
        return np.polyval(a, zeta) / np.polyval(b, zeta)


def _rk_locus_points(m: ButcherTableau, theta: np.ndarray) -> np.ndarray:
    """Roots z of P(z) − e^{iθ}Q(z), one column per branch (NaN where a root is at ∞)."""
    from .function import stability_function

    R = stability_function(m)
    P = np.zeros(max(len(R.numerator), len(R.denominator)))
    Q = np.zeros_like(P)
    P[:len(R.numerator)] = R.numerator
    Q[:len(R.denominator)] = R.denominator
    deg = len(P) - 1
    out = np.full((len(theta), deg), np.nan + 0j)
    for i, th in enumerate(theta):
        c = P - np.exp(1j * th) * Q
        nz = np.nonzero(np.abs(c) > 1e-14 * np.max(np.abs(c)))[0]
        if len(nz) == 0:
            continue
        r = np.roots(c[:nz[-1] + 1][::-1])
        out[i, :len(r)] = r
    return out


def boundary_locus(method: Any, n: int = 1000, theta: Any = None) -> Any:
    """The boundary locus as an ``xarray.DataArray`` of complex z over θ ∈ [0, 2π].

    Multistep methods: z(θ) = ρ(e^{iθ})/σ(e^{iθ}) (``inf``/``nan`` where σ(e^{iθ}) = 0),
    dims ``("theta",)``.  Runge–Kutta methods: the roots of P(z) − e^{iθ}Q(z), i.e. all z with
    R(z) = e^{iθ}, dims ``("theta", "branch")``.  The region's boundary is part of this set;
    parts of the locus may lie inside the region.

    >>> import odernn_bridge as ob
    >>> ab2 = ob.LinearMultistep([0, -1, 1], ["-1/2", "3/2", 0], name="AB2")
    >>> z = boundary_locus(ab2, theta=[3.141592653589793])
    >>> round(float(z.real[0]), 12), round(abs(float(z.imag[0])), 12)
    (-1.0, 0.0)
    """
    import xarray as xr

    from ..io import provenance
    from .function import as_method

    m = as_method(method)
    if theta is None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise ValueError(f"n: expected an integer >= 2 (number of θ samples), got {n!r}")
        th = np.linspace(0.0, 2 * np.pi, int(n))
    else:
        th = np.asarray(theta, dtype=np.float64).ravel()
        if th.size == 0 or not np.all(np.isfinite(th)):
            raise ValueError("theta: expected a non-empty array of finite angles")
    attrs = provenance(method=m.name, quantity="boundary locus z(theta)")
    if isinstance(m, LinearMultistep):
        z = _locus_points(m, th)
        attrs["definition"] = "z(theta) = rho(exp(i theta)) / sigma(exp(i theta))"
        return xr.DataArray(z, dims=("theta",), coords={"theta": th}, name="z", attrs=attrs)
    z = _rk_locus_points(m, th)
    attrs["definition"] = "roots z of P(z) - exp(i theta) Q(z), i.e. R(z) = exp(i theta)"
    return xr.DataArray(z, dims=("theta", "branch"),
                        coords={"theta": th, "branch": np.arange(z.shape[1])}, name="z", attrs=attrs)
