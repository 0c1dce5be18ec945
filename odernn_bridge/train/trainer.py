"""The training loop: seeds, optimiser/scheduler, clipping, early stopping, checkpoints, resume.

Files written into ``out_dir`` (all atomically):

- ``config.json`` — the :class:`TrainConfig`;
- ``checkpoint.pt`` — the latest checkpoint (model, optimiser, scheduler, the RNG states of
  torch/numpy/python, the data-order generator and the position within the epoch), written
  at step 0, every ``checkpoint_every`` steps, at each epoch end and when the run stops;
- ``history.nc`` — metrics as an ``xarray.Dataset`` with dims ``step`` and ``epoch``
  (see :func:`history_dataset`), including the stability monitor's metrics (``monitor_*``);
- ``model.pt`` — final and best (by validation) weights; ``summary.json`` — final figures.

``fit(resume=True)`` continues from ``checkpoint.pt`` and reproduces the uninterrupted run
exactly (same weights, bit for bit) on the same device.

>>> cfg = TrainConfig(task="adding", task_options={"seq_len": 8, "n_train": 64, "n_val": 16, "n_test": 16},
...                   model="lstm", hidden=8, epochs=1, batch_size=32, progress=False)
>>> result = Trainer(cfg).fit()
>>> int(result.history.sizes["step"])
2
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import random
import time
import warnings
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any, Callable, Iterable, NoReturn

import numpy as np
import torch
from torch import nn

from ..errors import FileFormatError, NonFiniteError
from ..io import atomic_write_text, provenance, to_netcdf
from ..cells.learnable import (after_optimizer_step, learnable_cells, learnable_penalty, project_learnable_,
                               tableau_record)
from .checkpoint import load_checkpoint, remove_stale_temporaries, save_checkpoint
from .models import MODELS, SequenceModel
from .tasks import Task, get_task

__all__ = ["TrainConfig", "Trainer", "TrainResult", "history_dataset", "OPTIMIZERS", "SCHEDULERS"]

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULERS = ("none", "cosine", "onecycle", "step", "plateau")
CHECKPOINT_FORMAT = "odernn_bridge.train.checkpoint/1"


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json`` and in checkpoints).

    ``checkpoint_every``: steps between checkpoints (0: only at step 0, epoch ends and stop).
    ``max_steps``: stop (with a checkpoint) once this many optimiser steps are done — the
    run can then be continued with ``resume``; it does not change the schedule.
    ``patience``: early stopping after that many epochs without a better validation score
    (accuracy for classification, loss for regression); ``None`` disables it.
    ``monitor_every``: steps between stability-monitor calls (ODERNN models; 0 disables);
    each call linearises ``monitor_samples`` sequences of the batch at ``monitor_time_steps``
    evenly spaced time steps (its cost grows with both and with hidden³).
    ``method="learnable"``: a :class:`~odernn_bridge.cells.LearnableRKCell` with
    ``learnable_stages`` stages kept at order ``learnable_order``, started from
    ``learnable_init`` (a method name or ``"random"``), with the optional stability penalty
    ``learnable_stability`` (target real stability interval) and further cell options in
    ``learnable_options`` (``penalty``, ``project_every``, ``stability_weight``, ``tol``).
    """

    task: str = "digits"
    task_options: dict[str, Any] = dc_field(default_factory=dict)
    model: str = "odernn"
    method: str = "RK4"
    dt: float = 1.0
    field: str = "antisymmetric"
    field_options: dict[str, Any] = dc_field(default_factory=dict)
    hidden: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    substeps: int = 1
    epochs: int = 5
    batch_size: int = 64
    lr: float = 3e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: str = "onecycle"
    step_size: int = 10
    gamma: float = 0.5
    clip: float | None = 1.0
    seed: int = 0
    deterministic: bool = True
    checkpoint_every: int = 0
    max_steps: int | None = None
    patience: int | None = None
    learnable_stages: int = 4
    learnable_order: int = 4
    learnable_init: str = "RK4"
    learnable_stability: float | None = None
    learnable_options: dict[str, Any] = dc_field(default_factory=dict)
    monitor_every: int = 50
    monitor_samples: int = 2
    monitor_time_steps: int = 16
    eval_batch_size: int = 512
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        def positive_int(name: str, allow_zero: bool = False) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if allow_zero else 1):
                raise ValueError(f"{name}: expected a {'non-negative' if allow_zero else 'positive'} integer, got {v!r}")

        # types first (a config.json from elsewhere may hold anything): errors name the key
        for name, types, what in ((("task", "model", "method", "field", "optimizer", "scheduler", "device"),
                                   str, "a string"),
                                  (("task_options", "field_options"), dict, "a mapping"),
                                  (("deterministic", "progress"), bool, "true or false"),
                                  (("dropout", "weight_decay", "momentum", "gamma"), (int, float), "a number")):
            for n in name:
                v = getattr(self, n)
                if not isinstance(v, types) or (types != bool and isinstance(v, bool)):
                    raise ValueError(f"{n}: expected {what}, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed: expected an integer, got {self.seed!r}")
        for name in ("hidden", "num_layers", "substeps", "epochs", "batch_size", "eval_batch_size", "step_size",
                     "monitor_samples", "monitor_time_steps"):
            positive_int(name)
        for name in ("checkpoint_every", "monitor_every"):
            positive_int(name, allow_zero=True)
        if self.max_steps is not None:
            positive_int("max_steps")
        if self.patience is not None:
            positive_int("patience")
        if self.model not in MODELS:
            raise ValueError(f"model: expected one of {MODELS}, got {self.model!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler: expected one of {SCHEDULERS}, got {self.scheduler!r}")
        for name in ("lr", "dt"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a positive finite number, got {v!r}")
        if self.clip is not None and not (math.isfinite(self.clip) and self.clip > 0):
            raise ValueError(f"clip: expected a positive number or None, got {self.clip!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout: expected a number in [0, 1), got {self.dropout!r}")
        if self.model == "odernn" and self.method == "learnable":
            from ..methods.manifold import ExplicitOrderConditions

            for name in ("learnable_stages", "learnable_order"):
                positive_int(name)
            try:
                ExplicitOrderConditions(self.learnable_stages, self.learnable_order)
            except ValueError as exc:
                raise ValueError(f"learnable_stages, learnable_order: {exc}") from exc
            allowed = {"penalty", "project_every", "stability_weight", "tol", "maxiter"}
            unknown = set(self.learnable_options) - allowed
            if unknown:
                raise ValueError(f"learnable_options: unknown keys {sorted(unknown)}; expected some of {sorted(allowed)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        if not isinstance(d, dict):
            raise ValueError(f"config: expected a mapping of settings, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"config: unknown keys {sorted(unknown)}")
        return cls(**d)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns."""

    history: Any  # xarray.Dataset
    summary: dict[str, Any]
    model: nn.Module
    stopped: str  # "completed" | "early_stopping" | "max_steps"


Callback = Callable[["Trainer", dict[str, Any]], None]


#: the files a run folder holds (see the module docstring)
_RUN_FILES = ("checkpoint.pt", "config.json", "history.nc", "model.pt", "summary.json")


def _checked(fn: Callable[[], Any], path: Path | None, part: str) -> Any:
    """``fn()``, with the errors of a damaged checkpoint turned into FileFormatError."""
    try:
        return fn()
    except FileFormatError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
        raise FileFormatError(f"checkpoint: {path} has a damaged {part} ({type(exc).__name__}: "
                              f"{str(exc)[:300]})") from None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def history_dataset(steps: list[dict[str, Any]], epochs: list[dict[str, Any]], attrs: dict[str, Any] | None = None):
    """Metrics records -> ``xarray.Dataset`` with dims ``step`` and ``epoch``.

    Step variables: ``loss``, ``accuracy`` (batch), ``grad_norm``, ``lr``, ``epoch_of_step``,
    ``wall_time`` and ``monitor_*`` (NaN at steps where the monitor did not run).  Epoch
    variables: ``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy``,
    ``test_loss``, ``test_accuracy``, ``epoch_end_step``, ``epoch_time``.

    Array-valued entries (learnable tableaux, see
    :func:`~odernn_bridge.cells.learnable.tableau_record`) get extra dims: ``tableau_A``
    (epoch, stage_i, stage_j), ``tableau_b`` and ``tableau_c`` (epoch, stage), with a
    ``layer`` dim after ``epoch`` when several layers learn their tableau.

    >>> ds = history_dataset([{"step": 1, "loss": 0.5}], [{"epoch": 1, "val_loss": 0.4}])
    >>> float(ds.loss.sel(step=1)), float(ds.val_loss.sel(epoch=1))
    (0.5, 0.4)
    """
    import xarray as xr

    def columns(records: list[dict[str, Any]], key: str) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        names: list[str] = []
        for r in records:
            names.extend(k for k in r if k != key and k not in names)
        out = {}
        for k in names:
            first = next(r[k] for r in records if k in r)
            if isinstance(first, (list, tuple, np.ndarray)):
                shape = np.shape(first)
                arr = np.stack([np.asarray(r[k], dtype=np.float64) if k in r else np.full(shape, np.nan)
                                for r in records])
                trailing = _ARRAY_DIMS.get(k, tuple(f"{k}_dim{i}" for i in range(len(shape))))
                extra = ("layer",) * (len(shape) - len(trailing))
                out[k] = ((key, *extra, *trailing[-len(shape):]), arr)
            else:
                out[k] = ((key,), np.array([float(r.get(k, np.nan)) for r in records], dtype=np.float64))
        return out

    units = {"loss": "task loss (cross-entropy or MSE)", "grad_norm": "global L2 norm before clipping",
             "lr": "learning rate after the step"}
    data_vars: dict[str, Any] = {}
    for k, (dims, v) in columns(steps, "step").items():
        data_vars[k] = (dims, v, {"description": units[k]} if k in units else {})
    for k, (dims, v) in columns(epochs, "epoch").items():
        if k in data_vars:
            k = f"epoch_{k}"
        data_vars[k] = (dims, v)
    coords = {"step": ("step", np.array([int(r["step"]) for r in steps], dtype=np.int64)),
              "epoch": ("epoch", np.array([int(r["epoch"]) for r in epochs], dtype=np.int64))}
    return xr.Dataset(data_vars, coords=coords, attrs=dict(attrs or {}))


#: trailing dims of array-valued history entries
_ARRAY_DIMS: dict[str, tuple[str, ...]] = {"tableau_A": ("stage_i", "stage_j"), "tableau_b": ("stage",),
                                           "tableau_c": ("stage",)}


class Trainer:
    """Train a :class:`SequenceModel` on a task according to a :class:`TrainConfig`.

    ``out_dir=None`` keeps everything in memory (no checkpoints, no resume).  ``callbacks``
    are called after every step as ``callback(trainer, record)``; an exception raised there
    stops training (the last checkpoint on disk stays valid for ``resume``).  ``monitor``:
    ``"auto"`` uses :class:`odernn_bridge.theory.StabilityMonitor` for ODERNN models, ``None``
    disables it, or pass any callable ``monitor(rnn_layer, inputs) -> dict[str, float]``.
    """

    def __init__(self, config: TrainConfig, out_dir: str | os.PathLike[str] | None = None, *,
                 callbacks: Iterable[Callback] = (), monitor: Any = "auto", task: Task | None = None) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
        self.config = config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks = list(callbacks)
        self.device = torch.device(config.device)
        self._task_given = task is not None
        self.task = task if task is not None else get_task(config.task, **config.task_options)
        self._monitor_spec = monitor
        self.monitor: Any = None
        self.tableau_initial: dict[str, Any] = {}  # learnable tableaux before training (set by _build)
        self._reset_state()

    # ------------------------------------------------------------------ construction
    def _reset_state(self) -> None:
        self.epoch = 0  # index of the current epoch (0-based)
        self.batch_in_epoch = 0  # batches done in the current epoch
        self.perm: torch.Tensor | None = None  # data order of the current epoch
        self.global_step = 0
        self.acc = {"loss_sum": 0.0, "n": 0, "correct": 0, "scored": 0}
        self.best_score: float | None = None
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0
        self.elapsed = 0.0
        self.monitor_time = 0.0
        self.step_records: list[dict[str, Any]] = []
        self.epoch_records: list[dict[str, Any]] = []
        self.stopped = ""

    def _build(self) -> None:
        cfg = self.config
        field: Any = cfg.field
        if cfg.model == "odernn" and cfg.field_options:
            from ..cells import make_field

            opts = dict(cfg.field_options)

            def field(i: int, h: int, bias: bool = True, _name: str = cfg.field) -> nn.Module:
                return make_field(_name, i, h, bias=bias, **opts)

        cell_kwargs = None
        if cfg.model == "odernn" and cfg.method == "learnable":
            cell_kwargs = dict(stages=cfg.learnable_stages, order=cfg.learnable_order, init=cfg.learnable_init,
                               stability=cfg.learnable_stability, **cfg.learnable_options)
        self.model = SequenceModel(self.task.input_size, cfg.hidden, self.task.output_size, model=cfg.model,
                                   method=cfg.method, dt=cfg.dt, field=field, num_layers=cfg.num_layers,
                                   dropout=cfg.dropout, substeps=cfg.substeps, target=self.task.target,
                                   cell_kwargs=cell_kwargs).to(self.device)
        self.tableau_initial = tableau_record(self.model)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        elif cfg.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        elif cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        total = cfg.epochs * self.batches_per_epoch
        self.step_scheduler = cfg.scheduler in ("cosine", "onecycle")
        if cfg.scheduler == "cosine":
            self.scheduler: Any = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=total)
        elif cfg.scheduler == "onecycle":
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=cfg.lr, total_steps=total)
        elif cfg.scheduler == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
        elif cfg.scheduler == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=cfg.gamma,
                                                                        patience=max(1, (cfg.patience or 4) // 2))
        else:
            self.scheduler = None
        self.data_generator = torch.Generator().manual_seed(cfg.seed)
        self.monitor = self._make_monitor(self._monitor_spec)

    def _make_monitor(self, spec: Any) -> Any:
        if spec is None or spec is False or self.config.monitor_every == 0:
            return None
        if spec != "auto":
            return spec
        if self.config.model != "odernn":
            return None
        try:
            from ..theory import StabilityMonitor
        except ImportError as exc:  # the theory layer is optional for training
            warnings.warn(f"stability monitor unavailable ({exc}); training without it", RuntimeWarning,
                          stacklevel=3)
            return None
        return StabilityMonitor(every=self.config.monitor_every, max_samples=self.config.monitor_samples,
                                max_steps=self.config.monitor_time_steps)

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.task.train) / self.config.batch_size)

    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / "checkpoint.pt" if self.out_dir is not None else None

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: see the module docstring."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": _rng_state(),
            "data_generator": self.data_generator.get_state(),
            "loop": {
                "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "perm": self.perm,
                "global_step": self.global_step, "acc": dict(self.acc), "best_score": self.best_score,
                "best_epoch": self.best_epoch, "best_state": self.best_state, "bad_epochs": self.bad_epochs,
                "elapsed": self.elapsed, "monitor_time": self.monitor_time, "stopped": self.stopped,
                "tableau_initial": self.tableau_initial,
            },
            "history": {"steps": self.step_records, "epochs": self.epoch_records},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint: expected format {CHECKPOINT_FORMAT!r}, got {state.get('format')!r}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.data_generator.set_state(state["data_generator"])
        loop = state["loop"]
        self.epoch, self.batch_in_epoch, self.perm = loop["epoch"], loop["batch_in_epoch"], loop["perm"]
        self.global_step, self.acc = loop["global_step"], dict(loop["acc"])
        self.best_score, self.best_epoch, self.best_state = loop["best_score"], loop["best_epoch"], loop["best_state"]
        self.bad_epochs, self.elapsed, self.stopped = loop["bad_epochs"], loop["elapsed"], loop["stopped"]
        self.monitor_time = loop.get("monitor_time", 0.0)
        self.tableau_initial = loop.get("tableau_initial", self.tableau_initial)
        self.step_records = list(state["history"]["steps"])
        self.epoch_records = list(state["history"]["epochs"])
        _set_rng_state(state["rng"])  # last: building the model above consumed random numbers

    def save_checkpoint(self) -> Path | None:
        if self.checkpoint_path is None:
            return None
        return save_checkpoint(self.state_dict(), self.checkpoint_path)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, split: str = "val", model: nn.Module | None = None) -> dict[str, float]:
        """Mean loss (and accuracy for classification) of ``model`` on ``split``.

        Runs inside ``torch.random.fork_rng`` so that evaluating never changes the
        training's random stream.
        """
        if split not in ("train", "val", "test"):
            raise ValueError(f"split: expected 'train', 'val' or 'test', got {split!r}")
        model = model if model is not None else self.model
        x, y = getattr(self.task, split).tensors
        was_training = model.training
        model.eval()
        loss_sum, correct, scored = 0.0, 0, 0
        with torch.random.fork_rng(devices=[]):
            for i in range(0, len(x), self.config.eval_batch_size):
                xb = x[i:i + self.config.eval_batch_size].to(self.device)
                yb = y[i:i + self.config.eval_batch_size].to(self.device)
                out = model(xb)
                loss_sum += float(self.task.loss(out, yb)) * len(xb)
                c, s = self.task.correct(out, yb)
                correct, scored = correct + c, scored + s
        model.train(was_training)
        result = {"loss": loss_sum / len(x)}
        if self.task.kind == "classification":
            result["accuracy"] = correct / max(scored, 1)
        return result

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: bool = False) -> TrainResult:
        """Train until the configured epochs, early stopping or ``max_steps``.

        ``resume=True`` continues from ``out_dir/checkpoint.pt`` (``FileNotFoundError`` if
        there is none).  Raises :class:`odernn_bridge.NonFiniteError` when the loss or the
        gradient becomes NaN/Inf; the last good checkpoint is kept.
        """
        cfg = self.config
        prev_det = torch.are_deterministic_algorithms_enabled()
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            if resume:
                if self.checkpoint_path is None:
                    raise ValueError("resume: needs an out_dir holding checkpoint.pt")
                state = load_checkpoint(self.checkpoint_path)
                if state.get("format") != CHECKPOINT_FORMAT:
                    raise FileFormatError(f"checkpoint: {self.checkpoint_path} is not a training checkpoint "
                                          f"(format {state.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
                saved = _checked(lambda: TrainConfig.from_dict(state["config"]), self.checkpoint_path, "config")
                for name in ("epochs", "max_steps", "device", "progress", "patience", "checkpoint_every"):
                    setattr(saved, name, getattr(cfg, name))
                if saved != cfg:
                    diff = [f.name for f in dataclasses.fields(cfg) if getattr(saved, f.name) != getattr(cfg, f.name)]
                    warnings.warn(f"resume: using the checkpoint's configuration; ignoring changed {diff}", stacklevel=2)
                if not self._task_given and (saved.task, saved.task_options) != (cfg.task, cfg.task_options):
                    self.task = get_task(saved.task, **saved.task_options)
                self.config = cfg = saved
                self._build()
                _checked(lambda: self.load_state_dict(state), self.checkpoint_path, "state")
                finished = self.stopped == "early_stopping"  # the criterion already fired
                self.stopped = "early_stopping" if finished else ""
            else:
                _seed_everything(cfg.seed)
                self._build()
                self._reset_state()
                finished = False
            if self.out_dir is not None:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                for name in _RUN_FILES:  # temporaries of writes killed mid-way (kill -9)
                    remove_stale_temporaries(self.out_dir / name)
                atomic_write_text(self.out_dir / "config.json", json.dumps(cfg.to_dict(), indent=2, default=str))
                if not resume:
                    self.save_checkpoint()
            if not finished:
                self._loop()
        finally:
            torch.use_deterministic_algorithms(prev_det)
        return self._finish()

    def _loop(self) -> None:
        from tqdm.auto import tqdm

        cfg = self.config
        x_train, y_train = self.task.train.tensors
        n = len(x_train)
        nb = self.batches_per_epoch
        self.model.train()
        while self.epoch < cfg.epochs:
            if self.perm is None:
                self.perm = torch.randperm(n, generator=self.data_generator)
                self.batch_in_epoch = 0
            bar = tqdm(total=nb, initial=self.batch_in_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                       disable=not cfg.progress, leave=False, dynamic_ncols=True)
            try:
                while self.batch_in_epoch < nb:
                    if cfg.max_steps is not None and self.global_step >= cfg.max_steps:
                        self.stopped = "max_steps"
                        self.save_checkpoint()
                        return
                    t0 = time.perf_counter()
                    idx = self.perm[self.batch_in_epoch * cfg.batch_size:(self.batch_in_epoch + 1) * cfg.batch_size]
                    xb, yb = x_train[idx].to(self.device), y_train[idx].to(self.device)
                    record = self._step(xb, yb)
                    self.elapsed += time.perf_counter() - t0
                    record["wall_time"] = self.elapsed
                    self.step_records.append(record)
                    bar.update(1)
                    post = {"loss": f"{record['loss']:.4f}"}
                    if "accuracy" in record:
                        post["acc"] = f"{record['accuracy']:.3f}"
                    bar.set_postfix(post)
                    for cb in self.callbacks:
                        cb(self, record)
                    if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0:
                        self.save_checkpoint()
            finally:
                bar.close()
            t0 = time.perf_counter()
            stop = self._end_epoch()
            self.elapsed += time.perf_counter() - t0
            self.epoch_records[-1]["wall_time"] = self.elapsed
            self.save_checkpoint()
            self._write_history()
            if cfg.progress:
                tqdm.write(self._epoch_line(self.epoch_records[-1]))
            if stop:
                self.stopped = "early_stopping"
                self.save_checkpoint()
                return
        self.stopped = "completed"
        self.save_checkpoint()

    def _step(self, xb: torch.Tensor, yb: torch.Tensor) -> dict[str, Any]:
        cfg = self.config
        where = f"step {self.global_step + 1} (epoch {self.epoch + 1}, batch {self.batch_in_epoch + 1})"
        try:
            out = self.model(xb)
        except NonFiniteError as exc:  # a cell detected NaN/Inf in its states
            self._fail(f"non-finite values in the forward pass at {where} ({exc})")
        loss = self.task.loss(out, yb)
        if not torch.isfinite(loss):
            self._fail(f"non-finite training loss ({float(loss.detach())}) at {where}")
        penalty = learnable_penalty(self.model)  # learnable tableaux: order/stability penalties
        self.optimizer.zero_grad(set_to_none=True)
        (loss if penalty is None else loss + penalty.to(loss.dtype)).backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip if cfg.clip is not None else math.inf)
        if not torch.isfinite(grad_norm):
            self._fail(f"non-finite gradient norm ({float(grad_norm)}) at {where}")
        self.optimizer.step()
        projection = after_optimizer_step(self.model)  # learnable tableaux back onto their order conditions
        if self.scheduler is not None and self.step_scheduler:
            self.scheduler.step()
        self.global_step += 1
        self.batch_in_epoch += 1
        loss_value = float(loss.detach())
        record: dict[str, Any] = {"step": self.global_step, "epoch_of_step": self.epoch + 1, "loss": loss_value,
                                  "grad_norm": float(grad_norm), "lr": float(self.optimizer.param_groups[0]["lr"])}
        record.update(projection)
        if penalty is not None:
            record["tableau_penalty"] = float(penalty.detach())
        self.acc["loss_sum"] += loss_value * len(xb)
        self.acc["n"] += len(xb)
        c, s = self.task.correct(out.detach(), yb)
        if s:
            record["accuracy"] = c / s
            self.acc["correct"] += c
            self.acc["scored"] += s
        due = getattr(self.monitor, "due", None)
        if self.monitor is not None and (due(self.global_step) if callable(due)
                                         else self.global_step % cfg.monitor_every == 0):
            record.update(self._run_monitor(xb))
        return record

    def _run_monitor(self, xb: torch.Tensor) -> dict[str, float]:
        was_training = self.model.training
        t0 = time.perf_counter()
        try:
            with torch.random.fork_rng(devices=[]):
                metrics = self.monitor(self.model.rnn, xb)
        except Exception as exc:  # the monitor is diagnostic: report it and keep training
            warnings.warn(f"stability monitor failed at step {self.global_step} and is disabled: {exc}",
                          RuntimeWarning, stacklevel=2)
            self.monitor = None
            return {}
        finally:
            self.model.train(was_training)
        self.monitor_time += time.perf_counter() - t0
        return {f"monitor_{k}": float(v) for k, v in (metrics or {}).items()
                if isinstance(v, (int, float, np.number)) or (torch.is_tensor(v) and v.numel() == 1)}

    def _fail(self, message: str) -> NoReturn:
        self._write_history()
        where = (f"the last good checkpoint is {self.checkpoint_path}" if self.checkpoint_path is not None
                 else "no checkpoint was written (no out_dir)")
        raise NonFiniteError(f"{message}; training stopped, {where}. A smaller --dt, a method whose "
                             f"stability region covers dt·λ (see ob.max_stable_dt and the monitor_* metrics "
                             f"in history.nc), a smaller --lr or --clip usually helps.")

    def _end_epoch(self) -> bool:
        cfg = self.config
        rec: dict[str, Any] = {"epoch": self.epoch + 1, "epoch_end_step": self.global_step,
                               "train_loss": self.acc["loss_sum"] / max(self.acc["n"], 1)}
        if learnable_cells(self.model):
            project_learnable_(self.model)  # a no-op unless project_every > 1 left it off the manifold
            rec.update(tableau_record(self.model))
        if self.task.kind == "classification":
            rec["train_accuracy"] = self.acc["correct"] / max(self.acc["scored"], 1)
        for split in ("val", "test"):
            for k, v in self.evaluate(split).items():
                rec[f"{split}_{k}"] = v
        rec["lr"] = float(self.optimizer.param_groups[0]["lr"])
        classification = self.task.kind == "classification"
        score = rec["val_accuracy"] if classification else -rec["val_loss"]
        if self.best_score is None or score > self.best_score:
            self.best_score, self.best_epoch, self.bad_epochs = score, self.epoch + 1, 0
            self.best_state = {k: v.detach().clone().cpu() for k, v in self.model.state_dict().items()}
        else:
            self.bad_epochs += 1
        if self.scheduler is not None and not self.step_scheduler:
            if cfg.scheduler == "plateau":
                self.scheduler.step(rec["val_loss"])
            else:
                self.scheduler.step()
        self.epoch_records.append(rec)
        self.epoch += 1
        self.perm = None
        self.batch_in_epoch = 0
        self.acc = {"loss_sum": 0.0, "n": 0, "correct": 0, "scored": 0}
        return cfg.patience is not None and self.bad_epochs >= cfg.patience

    @staticmethod
    def _epoch_line(rec: dict[str, Any]) -> str:
        parts = [f"epoch {rec['epoch']}"]
        for k in ("train_loss", "val_loss", "val_accuracy", "test_accuracy"):
            if k in rec:
                parts.append(f"{k} {rec[k]:.4f}")
        parts.append(f"{rec.get('wall_time', 0.0):.1f}s")
        return "  ".join(parts)

    # ------------------------------------------------------------------ outputs
    @property
    def history(self):
        """The metrics so far as an ``xarray.Dataset`` (dims ``step``, ``epoch``)."""
        cfg = self.config
        attrs = provenance(task=cfg.task, model=cfg.model, method=cfg.method if cfg.model == "odernn" else None,
                           dt=cfg.dt if cfg.model == "odernn" else None,
                           field=cfg.field if cfg.model == "odernn" else None, hidden=cfg.hidden,
                           seed=cfg.seed, config=json.dumps(cfg.to_dict(), default=str),
                           task_kind=self.task.kind, chance_loss=self.task.chance_loss,
                           chance_accuracy=self.task.attrs.get("chance_accuracy"))
        if self.tableau_initial:  # the learnable tableau before training (JSON: A, b, c, ...)
            attrs["tableau_initial"] = json.dumps(self.tableau_initial)
        return history_dataset(self.step_records, self.epoch_records, attrs)

    def _write_history(self) -> None:
        if self.out_dir is not None:
            to_netcdf(self.history, self.out_dir / "history.nc")

    def _finish(self) -> TrainResult:
        summary: dict[str, Any] = {
            "task": self.config.task, "model": self.config.model, "stopped": self.stopped,
            "steps": self.global_step, "epochs_done": self.epoch, "wall_time_s": self.elapsed,
            "monitor_time_s": self.monitor_time,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }
        if self.config.model == "odernn":
            summary.update(method=self.config.method, dt=self.config.dt, field=self.config.field)
            # the stability monitor's latest reading (frac_inside, max_abs_R, max_stable_dt, ...)
            for rec in reversed(self.step_records):
                last = {k[len("monitor_"):]: v for k, v in rec.items() if k.startswith("monitor_")}
                if last:
                    summary.update({k: v for k, v in last.items() if k != "dt"})
                    summary["monitor_step"] = rec["step"]
                    break
            cells = learnable_cells(self.model)
            if cells:
                from ..methods import verify_order

                summary.update({k: v for k, v in tableau_record(self.model).items() if not isinstance(v, list)})
                summary["tableau_verified_order"] = min(verify_order(c.tableau()) for c in cells)
                summary["tableau_projection_failures"] = sum(int(c.projection_failures) for c in cells)
        if self.stopped != "max_steps":
            final = self.evaluate("test")
            summary.update({f"final_test_{k}": v for k, v in final.items()})
            if self.best_state is not None:
                best_model = copy.deepcopy(self.model)
                best_model.load_state_dict(self.best_state)
                summary["best_epoch"] = self.best_epoch
                summary.update({f"best_test_{k}": v for k, v in self.evaluate("test", best_model).items()})
                summary.update({f"best_val_{k}": v for k, v in self.evaluate("val", best_model).items()})
        if self.out_dir is not None:
            self._write_history()
            if self.stopped != "max_steps":
                save_checkpoint({"final": self.model.state_dict(), "best": self.best_state,
                                 "config": self.config.to_dict()}, self.out_dir / "model.pt")
            atomic_write_text(self.out_dir / "summary.json", json.dumps(summary, indent=2, default=float))
        return TrainResult(self.history, summary, self.model, self.stopped)

