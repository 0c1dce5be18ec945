"""Figures of validation results."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["plot_errors"]


def plot_errors(ds: Any, path: str | os.PathLike[str]) -> None:
    """Log–log plot of final error against dt (one line per method for sweeps), with the
    nominal-order slope for reference; written atomically."""
    import matplotlib.pyplot as plt
    import numpy as np

    from ..io import save_figure

    fig, ax = plt.subplots(figsize=(6, 4.5))
    if "method" in ds.dims:
        for i, m in enumerate(ds.method.values):
            dt = ds.dt.values[i]
            e = ds.final_error.values[i]
            ok = np.isfinite(dt) & np.isfinite(e) & (e > 0)
            ax.loglog(dt[ok], e[ok], "o-", label=f"{m} ({float(ds.observed_order.values[i]):.2f})")
        ax.set_title(f"final error on {ds.attrs['problem']}")
    else:
        dt, e = ds.dt.values, ds.final_error.values
        ax.loglog(dt, e, "o-", label=f"final error (order {float(ds.observed_order):.2f})")
        local = np.nanmax(ds.local_error.values, axis=1)
        ax.loglog(dt, local, "s--", label=f"max local error (order {float(ds.observed_local_order):.2f})")
        p = int(ds.nominal_order)
        ax.loglog(dt, e[-1] * (dt / dt[-1]) ** p, "k:", label=f"slope {p}")
        ax.set_title(f"{ds.attrs['method']} on {ds.attrs['problem']}: {ds.attrs['verdict']}")
    ax.set_xlabel("dt")
    ax.set_ylabel("max-norm error")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
