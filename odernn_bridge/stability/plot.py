"""Plots of stability regions (matplotlib is imported only inside the functions)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .function import as_method
from .region import check_window, stability_boundary, stability_region

__all__ = ["plot_stability_regions"]


def plot_stability_regions(methods: Any, real: Sequence[float] = (-5.0, 1.0),
                           imag: Sequence[float] = (-4.0, 4.0), resolution: int = 401, *,
                           eigenvalues: Any = None, dt: float | None = None, ax: Any = None,
                           fill: bool = True, title: str | None = None) -> Any:
    """Overlay the stability regions of one or several methods; return the Figure.

    ``methods``: a method, a name, or a list of them.  ``eigenvalues`` (optional) are
    scattered as ``dt·λ`` (``dt`` defaults to 1).  ``ax``: draw into an existing Axes.
    Uses ``matplotlib.figure.Figure`` directly, so no pyplot/GUI backend is needed.

    >>> fig = plot_stability_regions(["Euler", "RK4"], resolution=81)
    >>> len(fig.axes)
    1
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    items = list(methods) if isinstance(methods, (list, tuple)) else [methods]
    if not items:
        raise ValueError("methods: expected at least one method")
    ms = [as_method(m, "methods") for m in items]
    (r0, r1), (i0, i1), _ = check_window(real, imag, resolution)
    if ax is None:
        fig = Figure(figsize=(6.4, 5.6), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    colors = [f"C{i % 10}" for i in range(len(ms))]
    handles = []
    for m, col in zip(ms, colors):
        reg = stability_region(m, real, imag, resolution)
        if fill:
            ax.contourf(reg["real"].values, reg["imag"].values, reg.values <= 1.0,
                        levels=[0.5, 1.5], colors=[col], alpha=0.18)
        for c in stability_boundary(m, real, imag, resolution, refine=False):
            ax.plot(c.real, c.imag, color=col, lw=1.4)
        handles.append(Patch(facecolor=col, edgecolor=col, alpha=0.5, label=m.name))
    if eigenvalues is not None:
        lam = np.asarray(eigenvalues, dtype=np.complex128).ravel()
        if lam.size == 0 or not np.all(np.isfinite(lam)):
            raise ValueError("eigenvalues: expected a non-empty array of finite complex numbers")
        scale = 1.0 if dt is None else float(dt)
        pts = scale * lam
        ax.scatter(pts.real, pts.imag, s=14, c="k", marker="x", zorder=5)
        handles.append(Line2D([], [], color="k", marker="x", ls="", label="dt·λ" if dt else "λ"))
    ax.axhline(0, color="0.6", lw=0.6)
    ax.axvline(0, color="0.6", lw=0.6)
    ax.set_xlim(r0, r1)
    ax.set_ylim(i0, i1)
    ax.set_aspect("equal")
    ax.set_xlabel("Re(dt·λ)")
    ax.set_ylabel("Im(dt·λ)")
    ax.set_title(title or "Stability regions")
    ax.legend(handles=handles, loc="upper left", fontsize="small")
    return fig
