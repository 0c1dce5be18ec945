"""What produces the numerical solution being validated: a method run by a backend's own
integrator, or a torch cell run step by step.

A stepper gives a whole fixed-step trajectory (global errors) and one step from each of a
batch of given states (local errors from the reference states).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .._checks import check_step_size
from .._mp import workdps
from ..methods.multistep import LinearMultistep
from ..methods.tableau import ButcherTableau
from ..reference.backend import Backend, get_backend
from ..reference.integrators import lmm_step
from ..reference.problems import Problem

__all__ = ["Stepper", "MethodStepper", "CellStepper", "is_cell"]


def _segment_of(prob: Problem, t: np.ndarray) -> np.ndarray:
    if not prob.segmented:
        return np.zeros(np.shape(t), dtype=int)
    seg = np.floor((np.asarray(t) - prob.tspan[0]) / prob.input_dt + 1e-9).astype(int)
    return np.clip(seg, 0, prob.n_segments - 1)


class Stepper:
    """Interface: ``name``, ``method``, ``trajectory(prob, dt)``, ``local_steps(prob, t, U, dt)``."""

    name: str = "stepper"
    method: ButcherTableau | LinearMultistep

    def trajectory(self, prob: Problem, dt: float) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def local_steps(self, prob: Problem, t: np.ndarray, U: np.ndarray, dt: float,
                    history: np.ndarray | None = None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class MethodStepper(Stepper):
    """A catalogue method integrated by ``backend`` (its own integrator when it supports the
    method, the embedded NumPy integrator otherwise)."""

    def __init__(self, method: ButcherTableau | LinearMultistep, backend: Backend, dps: int | None = None) -> None:
        self.method = method
        self.backend = backend
        self.dps = dps
        if dps is not None:
            if not isinstance(method, ButcherTableau):
                raise ValueError("precision: extended precision runs Runge-Kutta methods only")
            self.runner = get_backend("scipy")
            self.name = f"numpy/mpmath fixed-step integrator ({dps} digits)"
        else:
            self.runner = backend if backend.supports(method) else get_backend("scipy")
            self.name = f"{self.runner.name} fixed-step integrator"

    def trajectory(self, prob: Problem, dt: float) -> np.ndarray:
        if self.dps is not None:
            return self.runner.solve_mp(prob, self.method, dt, self.dps)  # type: ignore[attr-defined]
        return self.runner.solve(prob, self.method, dt=dt).u

    def local_steps(self, prob: Problem, t: np.ndarray, U: np.ndarray, dt: float,
                    history: np.ndarray | None = None) -> np.ndarray:
        m = self.method
        if isinstance(m, LinearMultistep):
            # history: (k, n, d) reference states before each target step
            p = prob.params_for(0)
            return lmm_step(m, lambda tt, u: prob.f(tt, u, p), float(t[0]), history, dt)
        if self.dps is not None:
            span = (prob.tspan[1] - prob.tspan[0])
            n = int(round(span / dt))
            import mpmath

            with workdps(self.dps):
                h = (mpmath.mpf(prob.tspan[1]) - mpmath.mpf(prob.tspan[0])) / n
                return self.runner.step(prob, m, float(t[0]), U, h, dps=self.dps)  # type: ignore[call-arg]
        out = np.empty_like(U)
        if not prob.autonomous:
            seg = _segment_of(prob, t)
            for i in range(U.shape[0]):
                out[i] = self.runner.step(prob, m, float(t[i]), U[i], dt, segment=int(seg[i]))
            return out
        seg = _segment_of(prob, t)
        for s in np.unique(seg):
            idx = np.nonzero(seg == s)[0]
            out[idx] = self.runner.step(prob, m, float(t[idx[0]]), U[idx], dt, segment=int(s))
        return out


def is_cell(obj: Any) -> bool:
    """Duck test for a torch RK cell (has ``field``, ``method`` and ``step``)."""
    return all(hasattr(obj, a) for a in ("field", "method", "step")) and hasattr(obj, "parameters")


class CellStepper(Stepper):
    """A torch :class:`~odernn_bridge.cells.RKCell` (a float64 copy) stepping the problem.

    For a problem made from the cell's own field (:func:`field_problem`) the cell steps its
    own field with the problem's inputs; for any other (autonomous) problem the problem's
    right-hand side is wrapped as a :class:`~odernn_bridge.cells.CallableField` and stepped
    by an RK cell with the same method.
    """

    def __init__(self, cell: Any, prob: Problem) -> None:
        import torch

        from ..cells import CallableField, RKCell

        if not isinstance(cell.method, ButcherTableau):
            raise TypeError(f"method_or_cell: validate() steps Runge-Kutta cells; {type(cell).__name__} runs "
                            f"{type(cell.method).__name__} {getattr(cell.method, 'name', '')!r} (validate the "
                            "method itself instead)")
        self.torch = torch
        self.method = cell.method
        self.name = f"torch {type(cell).__name__}"
        own = getattr(prob, "_field", None) is not None
        if own:
            self.field = prob._field  # type: ignore[attr-defined]
        else:
            if not prob.autonomous or prob.segmented:
                raise ValueError(f"problem: a cell can be validated on an autonomous problem without "
                                 f"inputs or on its own field (problem='field'); {prob.name!r} is neither")

            def fn(h: Any, x: Any) -> Any:
                return torch.from_numpy(prob.f(0.0, h.detach().cpu().numpy()))

            self.field = CallableField(fn, input_size=1, hidden_size=prob.dim).double()
        self._cell_cls = RKCell
        self._kwargs = {k: getattr(cell, k) for k in ("input_interpolation",) if hasattr(cell, k)}
        self.own = own

    def _cell(self, dt: float) -> Any:
        return self._cell_cls(self.field, self.method, dt=dt, substeps=1, **self._kwargs)

    def _inputs(self, prob: Problem, t: np.ndarray, batch: int) -> Any:
        torch = self.torch
        if self.own:
            seg = _segment_of(prob, t)
            return torch.from_numpy(np.ascontiguousarray(prob.inputs[seg]))
        return torch.zeros(batch, 1, dtype=torch.float64)

    def trajectory(self, prob: Problem, dt: float) -> np.ndarray:
        torch = self.torch
        t0, t1 = prob.tspan
        n = int(round((t1 - t0) / dt))
        cell = self._cell(dt)
        h = torch.from_numpy(prob.u0.copy())[None]
        out = np.empty((n + 1, prob.dim))
        out[0] = prob.u0
        autonomous = getattr(self.field, "autonomous", True)
        with torch.no_grad():
            for i in range(n):
                t = t0 + i * dt
                x = self._inputs(prob, np.array([t]), 1)
                h = cell(x, h, None if autonomous else t)
                out[i + 1] = h[0].numpy()
        return out

    def local_steps(self, prob: Problem, t: np.ndarray, U: np.ndarray, dt: float,
                    history: np.ndarray | None = None) -> np.ndarray:
        torch = self.torch
        cell = self._cell(dt)
        autonomous = getattr(self.field, "autonomous", True)
        with torch.no_grad():
            if autonomous:
                x = self._inputs(prob, t, U.shape[0])
                return cell(x, torch.from_numpy(np.ascontiguousarray(U))).numpy()
            out = np.empty_like(U)
            for i in range(U.shape[0]):
                x = self._inputs(prob, t[i:i + 1], 1)
                out[i] = cell(x, torch.from_numpy(U[i:i + 1].copy()), float(t[i]))[0].numpy()
            return out


def field_problem(field: Any, inputs: np.ndarray | None = None, *, input_dt: float = 0.5, steps: int = 8,
                  h0: np.ndarray | None = None, seed: int = 0, name: str | None = None) -> Problem:
    """The initial value problem of a torch vector field driven by a piecewise-constant input
    sequence, evaluated in float64 under ``torch.no_grad`` (a float64 copy of the field).

    ``inputs`` (steps, input_size) defaults to seeded standard-normal inputs; ``h0`` to a
    seeded state with entries in [-0.5, 0.5].

    >>> from odernn_bridge.cells import make_field
    >>> prob = field_problem(make_field("elman", 2, 3), steps=4)
    >>> prob.dim, prob.n_segments, prob.tspan
    (3, 4, (0.0, 2.0))
    """
    import torch

    input_dt = check_step_size(input_dt, "input_dt")
    f64 = copy.deepcopy(field).double()
    f64.eval()
    for q in f64.parameters():
        q.requires_grad_(False)
    rng = np.random.default_rng(seed)
    n_in = int(getattr(f64, "input_size"))
    d = int(getattr(f64, "state_size", getattr(f64, "hidden_size")))
    if inputs is None:
        inputs = rng.standard_normal((steps, n_in))
    inputs = np.asarray(inputs, dtype=np.float64)
    if inputs.ndim != 2 or inputs.shape[1] != n_in:
        raise ValueError(f"inputs: expected shape (steps, input_size={n_in}), got {inputs.shape}")
    if h0 is None:
        h0 = rng.uniform(-0.5, 0.5, d)
    autonomous = bool(getattr(f64, "autonomous", True))

    def numpy_rhs(t: Any, u: np.ndarray, p: dict) -> np.ndarray:
        x = np.asarray(p["x"], dtype=np.float64)
        with torch.no_grad():
            # a copy: the solver's state may be read-only, and a field must not write into it
            h = torch.tensor(np.asarray(u, dtype=np.float64)).reshape(-1, d)
            xx = torch.from_numpy(x.copy()).reshape(1, -1).expand(h.shape[0], -1)
            uu = f64.project_input(xx)
            out = f64.rhs(h, uu, None if autonomous else float(np.asarray(t).reshape(-1)[0]))
        return out.numpy().reshape(np.shape(u))

    prob = Problem(name or f"field:{type(field).__name__}", None, h0, (0.0, input_dt * inputs.shape[0]),
                   inputs=inputs, input_dt=input_dt, numpy_rhs=numpy_rhs, autonomous=autonomous,
                   description=f"{type(field).__name__} driven by a piecewise-constant input sequence "
                               f"({inputs.shape[0]} steps of {input_dt})")
    object.__setattr__(prob, "_field", f64)
    return prob
