"""Plots and tables for training runs written by :class:`odernn_bridge.train.Trainer`.

>>> # report(["runs/rk4", "runs/lstm"], out="runs/compare")   # -> list of written files
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import FileFormatError
from ..io import atomic_write_text, open_dataset, provenance, read_json_object, save_figure, to_netcdf

__all__ = ["load_run", "plot_run", "compare_runs", "format_table", "plot_comparison", "report"]

_TABLE_COLUMNS = ("model", "method", "dt", "field", "hidden", "lr", "parameters", "epochs_done", "steps", "wall_time_s",
                  "best_epoch", "best_val_accuracy", "best_test_accuracy", "final_test_accuracy",
                  "best_test_loss", "final_test_loss")


def load_run(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"name", "path", "history" (xarray.Dataset), "config" (dict), "summary" (dict)}``."""
    run_dir = Path(run_dir)
    hist = run_dir / "history.nc"
    if not hist.is_file():
        raise FileNotFoundError(f"runs: {run_dir} is not a training run (no history.nc)")
    # every file is checked: a run folder may come from elsewhere (FileFormatError, one line)
    config = read_json_object(run_dir / "config.json", f"{run_dir.name}/config.json") \
        if (run_dir / "config.json").is_file() else {}
    summary = read_json_object(run_dir / "summary.json", f"{run_dir.name}/summary.json") \
        if (run_dir / "summary.json").is_file() else {}
    history = open_dataset(hist)
    missing = [d for d in ("step", "epoch") if d not in history.dims]
    if missing or (history.sizes["step"] and "loss" not in history) or (
            history.sizes["epoch"] and "epoch_end_step" not in history):
        raise FileFormatError(f"{run_dir.name}/history.nc: not a training history (expected dims step and "
                              f"epoch with loss and epoch_end_step; has {dict(history.sizes)}, "
                              f"{sorted(map(str, history.data_vars))[:8]})")
    return {"name": run_dir.name, "path": run_dir, "history": history, "config": config, "summary": summary}


def _label(run: dict[str, Any]) -> str:
    c = run["config"]
    if c.get("model", "odernn") == "odernn":
        return f"{run['name']} (ODERNN {c.get('method')} dt={c.get('dt')} {c.get('field')})"
    return f"{run['name']} ({str(c.get('model', '?')).upper()})"


def _save(fig: Any, path: Path) -> Path:
    return save_figure(fig, path, dpi=110, bbox_inches="tight")


def plot_run(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write ``curves.png`` (loss and accuracy) and, when monitored, ``stability.png``."""
    import matplotlib.pyplot as plt

    run = load_run(run_dir)
    ds = run["history"]
    out = Path(out) if out is not None else run["path"]
    prefix = "" if out == run["path"] else f"{run['name']}_"
    written = []
    has_acc = "val_accuracy" in ds
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(11 if has_acc else 6, 4), squeeze=False)
    ax = axes[0, 0]
    if ds.sizes.get("step", 0):
        steps_per_epoch = float(ds.epoch_end_step[0]) if ds.sizes.get("epoch", 0) else 1.0
        ax.plot(ds.step / steps_per_epoch, ds.loss, lw=0.6, alpha=0.5, label="train (batch)")
    for split, style in (("train", "o-"), ("val", "s-"), ("test", "^-")):
        if f"{split}_loss" in ds:
            ax.plot(ds.epoch, ds[f"{split}_loss"], style, ms=3, label=split)
    if np.isfinite(ds.attrs.get("chance_loss", np.nan)):
        ax.axhline(ds.attrs["chance_loss"], color="gray", ls=":", label="chance")
    ax.set(xlabel="epoch", ylabel="loss", title="loss", yscale="log")
    ax.legend(fontsize=8)
    if has_acc:
        ax = axes[0, 1]
        for split, style in (("train", "o-"), ("val", "s-"), ("test", "^-")):
            if f"{split}_accuracy" in ds:
                ax.plot(ds.epoch, ds[f"{split}_accuracy"], style, ms=3, label=split)
        if "chance_accuracy" in ds.attrs:
            ax.axhline(ds.attrs["chance_accuracy"], color="gray", ls=":", label="chance")
        ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
        ax.legend(fontsize=8)
    fig.suptitle(_label(run))
    written.append(_save(fig, out / f"{prefix}curves.png"))

    monitor = [v for v in ds.data_vars if str(v).startswith("monitor_")]
    if monitor:
        n = len(monitor)
        cols = min(n, 3)
        rows = (n + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
        for ax, name in zip(axes.flat, monitor):
            da = ds[name].dropna("step")
            ax.plot(da.step, da, ".-")
            ax.set(xlabel="step", title=str(name)[len("monitor_"):])
        for ax in list(axes.flat)[n:]:
            ax.axis("off")
        fig.suptitle(f"stability monitor — {_label(run)}")
        fig.tight_layout()
        written.append(_save(fig, out / f"{prefix}stability.png"))
    return written


def compare_runs(run_dirs: Sequence[str | os.PathLike[str]]):
    """One row per run: configuration and final figures, as an ``xarray.Dataset`` (dim ``run``)."""
    import xarray as xr

    runs = [load_run(r) for r in run_dirs]
    names = [r["name"] for r in runs]
    if len(set(names)) != len(names):
        names = [str(r["path"]) for r in runs]
    data: dict[str, Any] = {}
    for col in _TABLE_COLUMNS:
        values = [None if (col in ("method", "dt", "field") and r["config"].get("model") != "odernn")
                  else r["summary"].get(col, r["config"].get(col)) for r in runs]
        if any(v is None or isinstance(v, str) for v in values):
            data[col] = ("run", np.array(["" if v is None else str(v) for v in values], dtype=object))
        else:
            data[col] = ("run", np.array(values, dtype=np.float64))
    return xr.Dataset(data, coords={"run": names}, attrs=provenance(what="comparison of training runs"))


def format_table(table) -> str:
    """A Markdown table of :func:`compare_runs`'s Dataset (only columns with some value)."""
    cols = [c for c in _TABLE_COLUMNS
            if any((str(v) != "" and not (isinstance(v, float) and np.isnan(v))) for v in table[c].values)]
    lines = ["| run | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for i, run in enumerate(table.run.values):
        cells = []
        for c in cols:
            v = table[c].values[i]
            if isinstance(v, (float, np.floating)):
                cells.append("" if np.isnan(v) else (f"{v:.4f}" if abs(v) < 10 and v != int(v) else f"{v:g}"))
            else:
                cells.append(str(v))
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_comparison(run_dirs: Sequence[str | os.PathLike[str]], path: str | os.PathLike[str]) -> Path:
    """Validation loss/accuracy of several runs against epoch and wall time, in one PNG."""
    import matplotlib.pyplot as plt

    runs = [load_run(r) for r in run_dirs]
    has_acc = all("val_accuracy" in r["history"] for r in runs)
    key = "val_accuracy" if has_acc else "val_loss"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in runs:
        ds = r["history"]
        if key not in ds:
            continue
        axes[0].plot(ds.epoch, ds[key], "o-", ms=3, label=_label(r))
        if "wall_time" in ds:
            wall = ds["epoch_wall_time"] if "epoch_wall_time" in ds else ds["wall_time"]
            axes[1].plot(wall, ds[key], "o-", ms=3, label=_label(r))
    ylabel = "validation accuracy" if has_acc else "validation loss"
    axes[0].set(xlabel="epoch", ylabel=ylabel)
    axes[1].set(xlabel="wall time (s)", ylabel=ylabel)
    if not has_acc:
        for ax in axes:
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle("comparison of runs")
    return _save(fig, Path(path))


def report(run_dirs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str] | None = None) -> list[Path]:
    """Plot every run and, for several, write ``comparison.png``, ``comparison.md`` and
    ``comparison.nc``; returns the written paths.  PNGs go into each run folder unless
    ``out`` is given."""
    if not run_dirs:
        raise ValueError("runs: expected at least one run folder")
    written: list[Path] = []
    for r in run_dirs:
        written.extend(plot_run(r, out))
    table = compare_runs(run_dirs)
    dest = Path(out) if out is not None else Path(run_dirs[0])
    text = format_table(table)
    written.append(atomic_write_text(dest / "comparison.md", text))
    written.append(to_netcdf(table, dest / "comparison.nc"))
    if len(run_dirs) > 1:
        written.append(plot_comparison(run_dirs, dest / "comparison.png"))
    return written
