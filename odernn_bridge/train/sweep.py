"""Training sweeps: method × dt × hidden × seed → final metrics per run, as one Dataset.

Each cell is one :class:`~odernn_bridge.train.Trainer` run of a base :class:`TrainConfig`
with ``method``, ``dt``, ``hidden`` and ``seed`` replaced.  Cells run serially or on a dask
cluster (:func:`odernn_bridge.distributed.run_grid`); a run that diverges (NaN loss) or
raises is recorded as ``status="failed"`` with its message, the others are kept.

>>> ds = train_sweep(["Euler", "RK4"], dts=[0.5], seeds=[0], config=dict(
...     task="adding", task_options={"seq_len": 8, "n_train": 64, "n_val": 16, "n_test": 16},
...     hidden=8, epochs=1, batch_size=32), progress=False)
>>> dict(ds.final_test_loss.sizes), ds.status.values.ravel().tolist()
({'method': 2, 'dt': 1, 'hidden': 1, 'seed': 1}, ['ok', 'ok'])
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .trainer import TrainConfig

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

__all__ = ["train_sweep", "run_name"]

#: per-epoch curves gathered from each run's history (dim ``epoch``)
_CURVES = ("train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy")


def run_name(method: str, dt: float, hidden: int, seed: int) -> str:
    """Folder name of one run of a sweep under ``runs_dir``.

    >>> run_name("RK4", 0.5, 64, 0)
    'RK4_dt0.5_h64_s0'
    """
    return f"{method}_dt{dt:g}_h{hidden}_s{seed}"


def _train_cell(method: str, dt: float, hidden: int, seed: int, *, config: dict[str, Any],
                runs_dir: str | None) -> dict[str, Any]:
    """One cell: train, then the summary's numbers and the per-epoch curves."""
    from .trainer import Trainer

    cfg = TrainConfig.from_dict({**config, "method": method, "dt": float(dt), "hidden": int(hidden),
                                 "seed": int(seed), "progress": False})
    out_dir = None if runs_dir is None else Path(runs_dir) / run_name(method, dt, hidden, seed)
    # a run folder with a checkpoint is an interrupted (or finished) run of this cell: continue it
    resume = out_dir is not None and (out_dir / "checkpoint.pt").is_file()
    result = Trainer(cfg, out_dir).fit(resume=resume)
    values: dict[str, Any] = {}
    for k, v in result.summary.items():
        if isinstance(v, str) and k == "stopped":
            values[k] = v
        elif isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and k not in ("dt",):
            values[k] = float(v)
    hist = result.history
    for k in _CURVES:
        if k in hist:
            values[k] = ("epoch", hist[k].values.astype(np.float64))
    return values


def train_sweep(methods: Sequence[str] = ("RK4",), dts: Sequence[float] = (1.0,), seeds: Sequence[int] = (0,),
                hidden: Sequence[int] | None = None, *, config: TrainConfig | Mapping[str, Any] | None = None,
                runs_dir: str | os.PathLike[str] | None = None, workers: int | None = None, scheduler: Any = None,
                out: str | os.PathLike[str] | None = None, progress: bool = True,
                resume: bool = True) -> "xr.Dataset":
    """Train one model per cell of ``method × dt × hidden × seed`` and gather the results.

    Args:
        methods, dts, seeds: the grid (catalogue names, step sizes, training seeds).
        hidden: hidden sizes; ``None``: the config's.
        config: the base :class:`TrainConfig` (or a dict of its fields) for every run; its
            ``method``/``dt``/``hidden``/``seed``/``progress`` are replaced per cell.
        runs_dir: keep each run's folder (``config.json``, ``history.nc``, checkpoints,
            ``summary.json``) under ``runs_dir/<run_name>``; an interrupted run found there is
            resumed from its checkpoint.  ``None``: runs stay in memory.
        workers, scheduler, out, progress, resume: see
            :func:`odernn_bridge.distributed.run_grid` (serial by default).

    Returns:
        ``xarray.Dataset`` with dims ``(method, dt, hidden, seed)`` (+ ``epoch`` for the
        curves): the run summary's numbers (``final_test_loss``, ``final_test_accuracy`` for
        classification, ``best_*``, ``steps``, ``wall_time_s``, stability-monitor readings …),
        ``stopped``, the per-epoch ``train_loss``/``val_loss``/``val_accuracy``/… and
        ``status``/``error`` per run.
    """
    from ..distributed import run_grid
    from ..methods.catalogue import get_method

    if config is None:
        base = TrainConfig()
    elif isinstance(config, TrainConfig):
        base = config
    elif isinstance(config, Mapping):
        base = TrainConfig.from_dict(dict(config))
    else:
        raise TypeError(f"config: expected a TrainConfig, a dict of its fields or None, got {type(config).__name__}")
    if base.model != "odernn":
        raise ValueError(f"config: model must be 'odernn' to sweep methods and dt, got {base.model!r}")
    method_names = [get_method(m).name for m in methods]  # unknown names raise here
    dt_list = [float(d) for d in dts]
    for d in dt_list:
        if not (np.isfinite(d) and d > 0):
            raise ValueError(f"dts: expected positive finite step sizes, got {list(dts)!r}")
    seed_list = [int(s) for s in seeds]
    hidden_list = [base.hidden] if hidden is None else [int(h) for h in hidden]
    for h in hidden_list:
        if h < 1:
            raise ValueError(f"hidden: expected positive integers, got {list(hidden or [])!r}")
    cfg = {k: v for k, v in base.to_dict().items() if k not in ("method", "dt", "hidden", "seed", "progress")}
    # validate the combination once here (bad options fail before any run starts)
    TrainConfig.from_dict({**cfg, "method": method_names[0], "dt": dt_list[0], "hidden": hidden_list[0],
                           "seed": seed_list[0] if seed_list else 0})
    grid = {"method": method_names, "dt": dt_list, "hidden": hidden_list, "seed": seed_list}
    runs = None if runs_dir is None else str(Path(runs_dir).resolve())
    signature = {"function": "train_sweep", "config": cfg}

    def finish(ds: "xr.Dataset") -> "xr.Dataset":
        ds.attrs.update(task=base.task, config=json.dumps(dataclasses.asdict(base), default=str), runs_dir=runs)
        if "epoch" in ds.dims:
            ds = ds.assign_coords(epoch=np.arange(1, ds.sizes["epoch"] + 1))
        return ds

    return run_grid(_train_cell, grid, fixed={"config": cfg, "runs_dir": runs}, signature=signature,
                    workers=workers, scheduler=scheduler, out=out, progress=progress, resume=resume,
                    desc=f"train {base.task}", postprocess=finish,
                    cost=lambda cell: cell["hidden"] ** 2)
