"""Stability figures of merit of many methods (the whole catalogue) as one Dataset.

Each method is one cell of a sweep (:func:`odernn_bridge.distributed.run_grid`): serial by
default, or on a dask cluster with ``workers``/``scheduler``.  Imports neither torch nor dask
at module import time.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from ..methods.catalogue import get_method, list_methods
from .intervals import A_alpha_angle, imag_stability_interval, is_A_stable, is_L_stable, real_stability_interval
from .region import check_window, stability_region

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

__all__ = ["stability_table", "format_table"]


def _figures(method: str, *, methods: dict[str, Any], window: tuple | None) -> dict[str, Any]:
    """One cell: the figures of merit (and the amplification on ``window``) of one method."""
    m = methods[method]
    values: dict[str, Any] = {
        "real_interval": float(real_stability_interval(m)),
        "imag_interval": float(imag_stability_interval(m)),
        "A_stable": int(is_A_stable(m)),
        "L_stable": int(is_L_stable(m)),
        "A_alpha_deg": float(A_alpha_angle(m)),
    }
    if window is not None:
        region = stability_region(m, *window)
        values["amplification"] = (("imag", "real"), region.values)
    return values


def stability_table(methods: Iterable[Any] | None = None, *, region: Sequence[Any] | None = None,
                    workers: int | None = None, scheduler: Any = None, out: str | os.PathLike[str] | None = None,
                    progress: bool = False, resume: bool = True) -> "xr.Dataset":
    """Real/imaginary stability intervals, A-/L-stability and the A(α) angle of many methods.

    Args:
        methods: names or method objects; ``None``: the whole catalogue.
        region: ``(real, imag, resolution)`` to add the amplification on that grid
            (``amplification(method, imag, real)``, as :func:`stability_region`); ``None``: none.
        workers, scheduler, out, resume, progress: as for
            :func:`odernn_bridge.distributed.run_grid` (serial by default).

    Returns:
        ``xarray.Dataset`` with dim ``method``: ``real_interval``, ``imag_interval``,
        ``A_stable``, ``L_stable`` (0/1), ``A_alpha_deg``, ``status``/``error`` per method and,
        with ``region``, ``amplification``.

    >>> ds = stability_table(["Euler", "RK4", "ImplicitEuler"])
    >>> ds.real_interval.round(4).values.tolist(), ds.L_stable.values.tolist()
    ([2.0, 2.7853, inf], [0, 0, 1])
    """
    from ..distributed import run_grid
    from ..io import provenance

    given = list_methods() if methods is None else list(methods)
    method_map: dict[str, Any] = {}
    for m in given:
        obj = get_method(m)
        if obj.name in method_map:
            raise ValueError(f"methods: {obj.name!r} is listed twice")
        method_map[obj.name] = obj.name if isinstance(m, str) else obj
    if not method_map:
        raise ValueError("methods: expected at least one method")
    window = None
    coords = {}
    if region is not None:
        real, imag, resolution = region
        (r0, r1), (i0, i1), (nr, ni) = check_window(real, imag, resolution)  # errors before any work
        window = ((r0, r1), (i0, i1), (nr, ni))
        coords = {"real": np.linspace(r0, r1, nr), "imag": np.linspace(i0, i1, ni)}
    signature = {"function": "stability_table", "window": window,
                 "methods": {k: [np.asarray(v.A).tolist(), np.asarray(v.b).tolist()]
                             for k, v in method_map.items() if not isinstance(v, str) and hasattr(v, "A")}}

    def finish(ds: "xr.Dataset") -> "xr.Dataset":
        attrs = provenance(window_real=list(window[0]) if window else None,
                           window_imag=list(window[1]) if window else None,
                           resolution=list(window[2]) if window else None, **ds.attrs)
        ds.attrs = attrs
        for name, text in (("real_interval", "largest r with [-r, 0] in the region"),
                           ("imag_interval", "largest r with [-ir, ir] in the region")):
            if name in ds:  # absent when every method failed
                ds[name].attrs["long_name"] = text
        if "amplification" in ds:
            ds["amplification"].attrs = {
                "long_name": "amplification factor",
                "definition": "|R(z)| (Runge-Kutta) or max |zeta| of rho(zeta) - z sigma(zeta) "
                              "(multistep); stability region = {amplification <= 1}"}
        return ds

    return run_grid(_figures, {"method": list(method_map)}, fixed={"methods": method_map, "window": window},
                    signature=signature, workers=workers, scheduler=scheduler, out=out, progress=progress,
                    resume=resume, coords=coords, desc="stability", postprocess=finish,
                    cost=lambda cell: _cost(method_map[cell["method"]]))


def _cost(method: Any) -> float:
    m = get_method(method)
    return float(getattr(m, "stages", None) or getattr(m, "steps", 1))


def format_table(ds: "xr.Dataset") -> str:
    """The table ``odernn stability`` prints (one line per method)."""
    def fmt(x: float) -> str:
        return "inf" if math.isinf(x) else f"{x:.10g}"

    header = (f"{'method':<14} {'real interval':>16} {'imag interval':>16} {'A-stable':>9} {'L-stable':>9} "
              f"{'A(alpha)':>9}")
    lines = [header, "-" * len(header)]
    for i, name in enumerate(ds.method.values):
        if ds.status.values[i] != "ok":
            lines.append(f"{name:<14} failed: {ds.error.values[i]}")
            continue
        lines.append(f"{name:<14} {fmt(float(ds.real_interval.values[i])):>16} "
                     f"{fmt(float(ds.imag_interval.values[i])):>16} "
                     f"{'yes' if ds.A_stable.values[i] == 1 else 'no':>9} "
                     f"{'yes' if ds.L_stable.values[i] == 1 else 'no':>9} {float(ds.A_alpha_deg.values[i]):>8.2f}°")
    return "\n".join(lines)
