"""Stability regions on a grid and their traced boundaries.

``stability_region`` evaluates the amplification on a rectangular grid of the complex
plane: |R(z)| for Runge–Kutta methods (Horner's rule on the exact-derived coefficients),
the largest root modulus of ρ(ζ) − zσ(ζ) for multistep methods (batched companion-matrix
eigenvalues).  ``stability_boundary`` traces the level set "amplification = 1" with
contourpy (no pyplot), returning open curves where the boundary leaves the window
(unbounded regions of implicit methods) and closed ones otherwise, as many as there are
(multiply connected regions); each point is then moved onto the exact boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ..methods.multistep import LinearMultistep
from .function import as_method, stability_function
from .multistep import grid_max_root_modulus, max_root_modulus

__all__ = ["stability_region", "stability_boundary", "BoundaryCurves", "check_window"]


def _check_range(value: Any, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a pair (min, max) of finite numbers, got {value!r}") from exc
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name}: expected finite bounds, got {value!r}")
    if not lo < hi:
        raise ValueError(f"{name}: expected min < max, got ({lo}, {hi}) (inverted or empty range)")
    return lo, hi


def check_window(real: Any, imag: Any, resolution: Any) -> tuple[tuple[float, float], tuple[float, float], tuple[int, int]]:
    """Validate a plotting window; ``resolution`` is an int or ``(n_real, n_imag)``."""
    re = _check_range(real, "real")
    im = _check_range(imag, "imag")
    res = resolution if isinstance(resolution, (tuple, list)) else (resolution, resolution)
    if len(res) != 2:
        raise ValueError(f"resolution: expected an int or a pair (n_real, n_imag), got {resolution!r}")
    out = []
    for r in res:
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 2:
            raise ValueError(f"resolution: expected integers >= 2 (grid points per axis), got {resolution!r}")
        out.append(int(r))
    return re, im, (out[0], out[1])


def _amplification(m: Any, z: np.ndarray, embedded: bool = False) -> np.ndarray:
    if isinstance(m, LinearMultistep):
        if embedded:
            raise ValueError("embedded: multistep methods have no embedded solution")
        return grid_max_root_modulus(m, z)
    with np.errstate(all="ignore"):
        return np.abs(stability_function(m, embedded=embedded)(z))


def _amplification_grid(method: Any, real: Any, imag: Any, resolution: Any,
                        embedded: bool) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """``(method, x, y, amplification)`` on the validated window: ``x`` real and ``y``
    imaginary grid axes, amplification of shape ``(len(y), len(x))``."""
    m = as_method(method)
    (r0, r1), (i0, i1), (nr, ni) = check_window(real, imag, resolution)
    x = np.linspace(r0, r1, nr)
    y = np.linspace(i0, i1, ni)
    return m, x, y, _amplification(m, x[None, :] + 1j * y[:, None], embedded)


def stability_region(method: Any, real: Sequence[float] = (-5.0, 1.0), imag: Sequence[float] = (-4.0, 4.0),
                     resolution: int | tuple[int, int] = 401, *, embedded: bool = False) -> Any:
    """The amplification on a grid: an ``xarray.DataArray`` with dims ``("imag", "real")``.

    Runge–Kutta methods: |R(z)| (``inf`` at poles); multistep methods: the largest |ζ| among
    the roots of ρ(ζ) − zσ(ζ).  The stability region is where the value is ≤ 1.
    ``resolution`` is the number of grid points per axis (or ``(n_real, n_imag)``).

    >>> import odernn_bridge as ob
    >>> r = ob.stability_region("Euler", real=(-2, 0), imag=(-1, 1), resolution=3)
    >>> r.sel(real=-1.0, imag=0.0).item(), r.dims
    (0.0, ('imag', 'real'))
    """
    import xarray as xr

    from ..io import provenance

    m, x, y, amp = _amplification_grid(method, real, imag, resolution, embedded)
    is_lmm = isinstance(m, LinearMultistep)
    attrs = provenance(
        method=m.name + (" [embedded]" if embedded else ""),
        method_type="linear_multistep" if is_lmm else "runge_kutta",
        quantity="max |zeta| over roots of rho(zeta) - z sigma(zeta)" if is_lmm else "|R(z)|",
        long_name="amplification factor",
        definition="stability region = {z : amplification <= 1}",
        resolution=[x.size, y.size],
    )
    return xr.DataArray(
        amp, dims=("imag", "real"),
        coords={"imag": ("imag", y, {"long_name": "Im(dt*lambda)"}),
                "real": ("real", x, {"long_name": "Re(dt*lambda)"})},
        name="amplification", attrs=attrs)


@dataclass(frozen=True)
class BoundaryCurves:
    """Traced pieces of the boundary |amplification| = 1 as complex polylines.

    Iterating yields complex arrays (z = x + iy); ``closed[i]`` says whether curve i is a
    closed loop (first point repeated at the end) or ends on the window's edge.

    >>> import odernn_bridge as ob
    >>> b = ob.stability_boundary("Euler", real=(-3, 1), imag=(-2, 2), resolution=101)
    >>> len(b), b.closed[0], round(float(np.max(np.abs(b[0] + 1))), 9)
    (1, True, 1.0)
    """

    curves: tuple[np.ndarray, ...]
    closed: tuple[bool, ...]
    method: str
    real: tuple[float, float]
    imag: tuple[float, float]
    refined: bool

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.curves)

    def __len__(self) -> int:
        return len(self.curves)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.curves[i]

    def to_dataset(self) -> Any:
        """All curves concatenated along ``point`` with a ``curve`` index (NetCDF friendly)."""
        import xarray as xr

        from ..io import provenance

        pts = np.concatenate(self.curves) if self.curves else np.zeros(0, complex)
        idx = np.concatenate([np.full(len(c), i) for i, c in enumerate(self.curves)]) if self.curves \
            else np.zeros(0, int)
        return xr.Dataset(
            {"real": ("point", pts.real), "imag": ("point", pts.imag), "curve": ("point", idx),
             "closed": ("curve_index", np.array(self.closed, dtype=np.int8))},
            attrs=provenance(method=self.method, quantity="boundary |amplification| = 1",
                             window_real=list(self.real), window_imag=list(self.imag),
                             refined=int(self.refined)))


def _refine_rk(R: Any, z: np.ndarray, h: float) -> np.ndarray:
    """Newton on g(z) = log|R(z)| along its gradient: z ← z − g(z)/(R'/R)(z).

    Points that do not converge to |g| < 1e-13 within a grid cell are left as traced."""
    out = z.copy()
    w = z.copy()
    with np.errstate(all="ignore"):
        for _ in range(6):
            g = np.log(np.abs(R(w)))
            d = R.log_derivative(w)
            step = g / d
            w = np.where(np.isfinite(step), w - step, w)
        ok = (np.abs(np.log(np.abs(R(w)))) < 1e-13) & (np.abs(w - z) < 2 * h)
    out[ok] = w[ok]
    return out


def _refine_lmm(m: LinearMultistep, z: np.ndarray, h: float) -> np.ndarray:
    """Project traced points onto the boundary locus: take the root ζ of ρ − zσ nearest the
    unit circle, set θ = arg ζ and z ← ρ(e^{iθ})/σ(e^{iθ}) (an orthogonal projection to first
    order, since z ↦ ζ is conformal).  Kept only where the result lies within two grid cells
    and its largest root modulus is 1 to 1e-9."""
    from .multistep import _locus_points, all_roots

    w = z.copy()
    with np.errstate(all="ignore"):
        for _ in range(4):
            roots = all_roots(m, w)
            i = np.argmin(np.abs(np.abs(roots) - 1.0), axis=1)
            th = np.angle(roots[np.arange(len(w)), i])
            w_new = _locus_points(m, th)
            w = np.where(np.isfinite(w_new), w_new, w)
        ok = np.isfinite(w) & (np.abs(w - z) < 2 * h) & (np.abs(max_root_modulus(m, w) - 1.0) < 1e-9)
    out = z.copy()
    out[ok] = w[ok]
    return out


def stability_boundary(method: Any, real: Sequence[float] = (-5.0, 1.0), imag: Sequence[float] = (-4.0, 4.0),
                       resolution: int | tuple[int, int] = 401, *, refine: bool = True,
                       embedded: bool = False) -> BoundaryCurves:
    """Trace the boundary amplification = 1 of the stability region inside the window.

    Returns :class:`BoundaryCurves` (closed loops and open arcs that end on the window
    edge).  Contours are traced in log(amplification) with contourpy; with ``refine`` every
    point is then moved onto the exact boundary: Newton's method on log|R| for Runge–Kutta
    methods, projection onto the boundary locus for multistep methods.
    """
    import contourpy

    m, x, y, amp = _amplification_grid(method, real, imag, resolution, embedded)
    r0, r1, i0, i1 = float(x[0]), float(x[-1]), float(y[0]), float(y[-1])
    nr, ni = x.size, y.size
    with np.errstate(all="ignore"):
        g = np.log(amp)
    g = np.nan_to_num(g, nan=700.0, posinf=700.0, neginf=-700.0)
    gen = contourpy.contour_generator(x, y, g, line_type=contourpy.LineType.Separate)
    lines = gen.lines(0.0)
    curves, closed = [], []
    h = max((r1 - r0) / (nr - 1), (i1 - i0) / (ni - 1))
    R = None if isinstance(m, LinearMultistep) else stability_function(m, embedded=embedded)
    for line in lines:
        if len(line) < 2:
            continue
        c = line[:, 0] + 1j * line[:, 1]
        is_closed = bool(len(c) > 2 and c[0] == c[-1])
        if refine:
            c = _refine_rk(R, c, h) if R is not None else _refine_lmm(m, c, h)
            if is_closed:
                c[-1] = c[0]
        curves.append(c)
        closed.append(is_closed)
    return BoundaryCurves(tuple(curves), tuple(closed), m.name, (r0, r1), (i0, i1), bool(refine))
