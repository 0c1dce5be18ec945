r"""Learnable explicit Runge–Kutta tableaux, kept on the order-p manifold while they train.

:class:`LearnableRKCell` is an explicit :class:`~odernn_bridge.cells.RKCell` whose Butcher
coefficients (strictly lower ``A`` and ``b``; ``c = A𝟙``) are one float64
``nn.Parameter`` ``theta`` trained with the network.  The order conditions of all rooted
trees up to order ``p`` (:class:`~odernn_bridge.methods.manifold.ExplicitOrderConditions`)
are enforced by *projection*: after each optimiser step (:meth:`LearnableRKCell.after_optimizer_step`,
called by the :class:`~odernn_bridge.train.Trainer`, or :meth:`LearnableRKCell.project_`
by hand) ``theta`` is moved back onto ``{r(θ) = 0}`` by float64 Gauss–Newton steps of
minimum norm.  What is guaranteed: after every projection the coefficients satisfy all
order-``p`` conditions to ``tol`` (default 1e-13, max |Φ(t) − 1/γ(t)|); if a projection
fails to converge (an optimiser step that jumped far), the cell returns to its last
projected coefficients, so the guarantee holds at every projection.  Between projections
(``project_every > 1``) an optional quadratic penalty ``penalty·‖r(θ)‖²`` pulls towards the
manifold.

The optional ``stability=r`` adds a penalty ``stability_weight · mean(max(|R(x)| − 1, 0)²)``
over 65 points ``x`` evenly spaced in ``[−r, 0]`` (``R`` the stability polynomial,
``R(z) = Σ α_k z^k``, ``α_k = bᵀA^{k−1}𝟙``).  It *encourages* a real stability interval
``≥ r``; it does not guarantee it (the interval is recorded per epoch by the trainer, and
:func:`odernn_bridge.real_stability_interval` of :meth:`LearnableRKCell.tableau` gives it
exactly).  Only methods with more stages than order have a free stability polynomial: for
``stages == order`` (≤ 4) every order-p tableau has ``R(z) = Σ_{k≤p} z^k/k!``, so the
stability region cannot move and ``stability`` is refused.

>>> import torch
>>> from odernn_bridge.cells import make_field
>>> cell = LearnableRKCell(make_field("elman", 2, 3), stages=4, order=3, init="RK4", dt=0.5)
>>> cell(torch.zeros(5, 2), torch.zeros(5, 3)).shape
torch.Size([5, 3])
>>> from odernn_bridge import verify_order
>>> verify_order(cell.tableau()) >= 3
True
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConvergenceError, MethodValidationError, OrderConditionError
from ..methods import ButcherTableau, get_method, list_methods
from ..methods.manifold import ExplicitOrderConditions
from ._validate import check_dt, check_positive_int
from .rk import RKCell, check_field, resolve_tableau

__all__ = ["LearnableRKCell", "learnable_cells", "learnable_penalty", "after_optimizer_step",
           "project_learnable_", "tableau_record"]

_STABILITY_POINTS = 65
_RANDOM_TRIES = 60


class _Residual(torch.autograd.Function):
    """``r(θ)`` of the order conditions with ``∂r/∂θ`` from the analytic forward-mode Jacobian."""

    @staticmethod
    def forward(ctx: Any, theta: Tensor, conditions: ExplicitOrderConditions) -> Tensor:  # type: ignore[override]
        r, J = conditions.residual_and_jacobian(theta.detach().cpu().numpy())
        ctx.save_for_backward(torch.from_numpy(J).to(theta.device))
        return torch.from_numpy(r).to(theta.device)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (J,) = ctx.saved_tensors
        return grad @ J, None


def _pad(tab: ButcherTableau, stages: int) -> tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` of ``tab`` with zero stages appended up to ``stages`` (order unchanged:
    an appended stage has a zero row and a zero weight)."""
    A = np.zeros((stages, stages))
    b = np.zeros(stages)
    A[: tab.stages, : tab.stages] = tab.A
    b[: tab.stages] = tab.b
    return A, b


class _TableauState(nn.Module):
    """The trainable packed coefficients and the projection state (all in the state dict).
    ``theta`` stays float64 under ``.float()``/``.to(dtype)``: the order conditions are
    enforced to ~1e-13, beyond float32."""

    def __init__(self, theta0: np.ndarray, device: torch.device) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(theta0, dtype=torch.float64, device=device))
        self.register_buffer("feasible_theta", self.theta.detach().clone())
        self.register_buffer("optimizer_steps", torch.zeros((), dtype=torch.int64, device=device))
        self.register_buffer("projection_failures", torch.zeros((), dtype=torch.int64, device=device))

    def _apply(self, fn: Any, recurse: bool = True) -> "_TableauState":
        stores = ((self._parameters, "theta"), (self._buffers, "feasible_theta"))
        saved = [store[name].detach() for store, name in stores]  # float64 values, before a cast
        super()._apply(fn, recurse)
        for (store, name), old in zip(stores, saved):
            t = store[name]
            if t.dtype != torch.float64:  # a dtype cast: keep the float64 values (moved only)
                t.data = old.to(device=t.device)
        return self


class LearnableRKCell(RKCell):
    """An explicit RK cell whose tableau is learned under the order-``order`` conditions.

    Args:
        field: the vector field (as for :class:`RKCell`).
        stages: number of stages ``s`` (≤ 12).
        order: order ``p`` kept during training (≤ 5 and reachable with ``s`` explicit
            stages: order 5 needs 6 stages).
        init: the starting tableau: a catalogue name or an explicit
            :class:`~odernn_bridge.methods.ButcherTableau` with at most ``s`` stages and
            order ≥ ``p`` (fewer stages are padded with unused zero stages), or
            ``"random"`` (a random point of the manifold, drawn with torch's RNG).
        dt, substeps, input_interpolation, check_finite: as for :class:`RKCell`.
        stability: ``None`` or a target real stability interval ``r > 0`` (penalty, see the
            module docstring); ``stability_weight`` its weight.
        penalty: weight of ``‖r(θ)‖²`` added by :func:`learnable_penalty` (useful only with
            ``project_every > 1``).
        project_every: optimiser steps between projections (1: after every step).
        tol, maxiter: projection tolerance on max |r| and Gauss–Newton iteration limit.

    ``theta`` (float64 whatever the field's dtype: ``.float()`` leaves it in float64) packs
    the strictly lower triangle of ``A`` row by row, then ``b``.

    >>> import torch, odernn_bridge as ob
    >>> from odernn_bridge.cells import make_field
    >>> cell = ob.LearnableRKCell(make_field("elman", 2, 3), stages=4, order=4)
    >>> with torch.no_grad():
    ...     _ = cell.theta.add_(1e-3)              # an optimiser step leaves the manifold
    >>> info = cell.project_()
    >>> info["converged"], info["residual"] < 1e-13
    (True, True)
    """

    def __init__(self, field: Any, stages: int = 4, order: int = 4, init: Any = "RK4", dt: float = 1.0,
                 substeps: int = 1, *, stability: float | None = None, stability_weight: float = 1.0,
                 penalty: float = 0.0, project_every: int = 1, tol: float = 1e-13, maxiter: int = 50,
                 input_interpolation: str = "constant", check_finite: bool = True) -> None:
        nn.Module.__init__(self)  # RKCell.__init__ resolves a fixed tableau; everything it sets is set here
        self.field = check_field(field)  # registered first: its dtype is the layer's dtype
        self.conditions = ExplicitOrderConditions(stages, order)
        self.order = self.conditions.order
        self.stages = self.conditions.stages
        self.dt = check_dt(dt)
        self.substeps = check_positive_int(substeps, "substeps")
        if input_interpolation not in ("constant", "linear"):
            raise ValueError(f"input_interpolation: expected 'constant' or 'linear', got {input_interpolation!r}")
        self.input_interpolation = input_interpolation
        self.check_finite = bool(check_finite)
        self.fused = False  # the fused kernel has no gradient for the coefficients
        self.stability = self._check_stability(stability)
        self.stability_weight = self._nonnegative(stability_weight, "stability_weight")
        self.penalty_weight = self._nonnegative(penalty, "penalty")
        self.project_every = check_positive_int(project_every, "project_every")
        if not (isinstance(tol, (int, float)) and not isinstance(tol, bool) and 0 < tol < 1e-6):
            raise ValueError(f"tol: expected a projection tolerance in (0, 1e-6), got {tol!r}")
        self.tol = float(tol)
        self.maxiter = check_positive_int(maxiter, "maxiter")
        self.last_stats: dict[str, Any] = {}
        self._needed = list(range(self.stages))  # any stage may get a nonzero weight
        theta0, self.init_name = self._initial_theta(init)
        device = next((p.device for p in self.field.parameters()), torch.device("cpu"))
        # a submodule registered after the field, so that the layer's dtype/device checks (its
        # first parameter) see the field's parameters, not this float64 vector
        self.coefficients_state = _TableauState(theta0, device)
        self._scope: dict[Any, tuple[Tensor, Tensor, Tensor]] | None = None
        self._tableau_cache: tuple[bytes, ButcherTableau] | None = None

    # -- argument checks -------------------------------------------------------------------
    @staticmethod
    def _nonnegative(value: Any, name: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
        return float(value)

    def _check_stability(self, stability: Any) -> float | None:
        if stability is None:
            return None
        if isinstance(stability, bool) or not isinstance(stability, (int, float)) \
                or not math.isfinite(stability) or stability <= 0:
            raise ValueError(f"stability: expected None or a target real stability interval > 0, got {stability!r}")
        if self.stages == self.order:
            raise ValueError(f"stability: with stages == order == {self.order} the stability polynomial of every "
                             "order-p tableau is the Taylor polynomial sum z^k/k!, so it cannot be trained; use "
                             "more stages than the order (e.g. stages=4, order=3)")
        return float(stability)

    def _initial_theta(self, init: Any) -> tuple[np.ndarray, str]:
        oc = self.conditions
        if isinstance(init, str) and init.lower() == "random":
            return self._random_theta(), "random"
        if not isinstance(init, (str, ButcherTableau)):
            raise TypeError(f"init: expected a method name, a ButcherTableau or 'random', got {type(init).__name__}")
        tab = resolve_tableau(init, "init")
        if tab.kind != "explicit":
            raise MethodValidationError(f"init: {tab.name} is {tab.kind}; a learnable tableau starts from an "
                                        "explicit method")
        if tab.stages > oc.stages:
            raise MethodValidationError(f"init: {tab.name} has {tab.stages} stages, more than stages={oc.stages}")
        if tab.order < oc.order:
            raise MethodValidationError(f"init: {tab.name} has order {tab.order} < order={oc.order}; start from a "
                                        f"method of order >= {oc.order} (or init='random')")
        if tab.c is not None and not np.allclose(tab.c, tab.A.sum(1), rtol=0, atol=1e-14):
            raise MethodValidationError(f"init: {tab.name} has c != A·1, which a learnable tableau cannot represent")
        theta = oc.pack(*_pad(tab, oc.stages))
        res = float(np.abs(oc.residual(theta)).max())
        if res > self.tol:  # float rounding of a verified tableau: tidy it onto the manifold
            proj = oc.project(theta, self.tol, self.maxiter)
            if not proj.converged:
                raise ConvergenceError(f"init: could not project {tab.name} onto the order-{oc.order} conditions "
                                       f"(residual {proj.residual:.2e})")
            theta = proj.theta
        return theta, tab.name

    def _random_theta(self) -> np.ndarray:
        """A random point of the manifold: a catalogue method of order ≥ p with ≤ s stages
        (cycling through them) plus N(0, 0.3²) noise, projected; a few tries."""
        oc = self.conditions
        bases = []
        for name in list_methods("explicit"):
            m = get_method(name)
            if m.stages <= oc.stages and m.order >= oc.order and np.allclose(m.c, m.A.sum(1), atol=1e-14):
                bases.append(oc.pack(*_pad(m, oc.stages)))
        bases.sort(key=lambda t: float(np.abs(t).sum()))
        bases = bases[:8] or [np.zeros(oc.n_params)]
        for k in range(_RANDOM_TRIES):
            noise = torch.randn(oc.n_params, dtype=torch.float64).numpy()
            proj = oc.project(bases[k % len(bases)] + 0.3 * noise, self.tol, self.maxiter)
            if proj.converged:
                return proj.theta
        raise ConvergenceError(f"init: no random point of the order-{oc.order} manifold found in {_RANDOM_TRIES} "
                               "tries; start from a method (init='RK4', ...)")

    # -- tableau ---------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return "explicit"

    def coefficients(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The current ``(A, b, c)`` as float64 NumPy arrays."""
        A, b = self.conditions.unpack(self.theta.detach().cpu().numpy())
        return A, b, A.sum(1)

    def order_residual(self) -> float:
        """max |Φ(t) − 1/γ(t)| over the trees of order ≤ p at the current coefficients."""
        return float(np.abs(self.conditions.residual(self.theta.detach().cpu().numpy())).max())

    def _build_tableau(self) -> ButcherTableau:
        theta = self.theta.detach().cpu().numpy()
        key = theta.tobytes()
        if self._tableau_cache is not None and self._tableau_cache[0] == key:
            return self._tableau_cache[1]
        A, b = self.conditions.unpack(theta)
        # the name carries a digest of the coefficients: caches keyed by method name stay right
        digest = hashlib.sha1(theta.tobytes()).hexdigest()[:10]
        name = f"Learnable{self.stages}s{self.order}p-{digest}"
        tab = ButcherTableau([[float(x) for x in row] for row in A], [float(x) for x in b],
                             order=self.order, name=name,
                             description=f"learned from {self.init_name} under the order-{self.order} conditions")
        self._tableau_cache = (key, tab)
        return tab

    def tableau(self) -> ButcherTableau:
        """The current coefficients as a validated :class:`ButcherTableau` claiming order ``p``
        (the claim is checked by :func:`~odernn_bridge.verify_order`'s arithmetic at
        construction).  Raises :class:`~odernn_bridge.OrderConditionError` if the
        coefficients are off the manifold (an optimiser step without :meth:`project_`)."""
        res = self.order_residual()
        if res > max(1e3 * self.tol, 1e-11):
            raise OrderConditionError(f"tableau: the coefficients are off the order-{self.order} conditions "
                                      f"(max residual {res:.2e}); call cell.project_() first")
        return self._build_tableau()

    @property
    def method(self) -> ButcherTableau:  # type: ignore[override]
        """Same as :meth:`tableau` (what stability analyses of the cell use)."""
        return self.tableau()

    def extra_repr(self) -> str:
        return (f"stages={self.stages}, order={self.order}, init={self.init_name}, dt={self.dt}, "
                f"substeps={self.substeps}, stability={self.stability}, project_every={self.project_every}")

    # -- projection ------------------------------------------------------------------------
    @torch.no_grad()
    def project_(self) -> dict[str, Any]:
        """Project ``theta`` onto the order conditions (float64 Gauss–Newton, minimum norm).

        If the projection does not converge (or ``theta`` holds NaN/Inf), ``theta`` returns
        to the last projected coefficients and ``projection_failures`` is incremented.
        Returns ``residual_before``, ``residual`` (max |r| before/after), ``iterations``,
        ``converged`` and ``distance`` (‖Δθ‖₂ moved by the projection).
        """
        x = self.theta.detach().cpu().numpy()
        if np.all(np.isfinite(x)):
            proj = self.conditions.project(x, self.tol, self.maxiter)
            before, its, ok = proj.start_residual, proj.iterations, proj.converged
        else:
            before, its, ok = math.inf, 0, False
        if ok:
            new = torch.from_numpy(proj.theta)
        else:
            self.projection_failures.add_(1)
            new = self.feasible_theta.detach().cpu()
        dist = float(np.linalg.norm(new.numpy() - x)) if np.all(np.isfinite(x)) else math.inf
        self.theta.copy_(new.to(self.theta))
        self.feasible_theta.copy_(self.theta)
        return {"residual_before": before, "residual": self.order_residual(), "iterations": its,
                "converged": ok, "distance": dist}

    def after_optimizer_step(self) -> dict[str, Any] | None:
        """Count an optimiser step and project every ``project_every`` steps (the trainer's
        hook); returns :meth:`project_`'s figures when it projected."""
        self.optimizer_steps.add_(1)
        if int(self.optimizer_steps) % self.project_every == 0:
            return self.project_()
        return None

    def penalty(self) -> Tensor | None:
        """The differentiable penalty terms (order residual and stability), or None."""
        terms = []
        if self.penalty_weight > 0:
            r = _Residual.apply(self.theta, self.conditions)
            terms.append(self.penalty_weight * (r * r).sum())
        if self.stability is not None:
            A, b = self._A_b()
            alpha = [torch.ones((), dtype=torch.float64, device=b.device)]
            v = torch.ones_like(b)
            for _ in range(self.stages):
                alpha.append(b @ v)
                v = A @ v
            x = torch.linspace(-self.stability, 0.0, _STABILITY_POINTS, dtype=torch.float64, device=b.device)
            R = torch.zeros_like(x)
            for a in reversed(alpha):  # Horner
                R = R * x + a
            terms.append(self.stability_weight * torch.relu(R.abs() - 1.0).pow(2).mean())
        return sum(terms[1:], terms[0]) if terms else None

    @property
    def theta(self) -> nn.Parameter:
        """The packed coefficients (float64 parameter): lower triangle of A by rows, then b."""
        return self.coefficients_state.theta

    @property
    def feasible_theta(self) -> Tensor:
        """The coefficients after the last projection (buffer)."""
        return self.coefficients_state.feasible_theta

    @property
    def optimizer_steps(self) -> Tensor:
        return self.coefficients_state.optimizer_steps

    @property
    def projection_failures(self) -> Tensor:
        """Projections that did not converge (and returned to the previous coefficients)."""
        return self.coefficients_state.projection_failures

    # -- engine ----------------------------------------------------------------------------
    def _A_b(self) -> tuple[Tensor, Tensor]:
        oc = self.conditions
        A = self.theta.new_zeros(self.stages, self.stages)
        A[torch.as_tensor(oc._rows), torch.as_tensor(oc._cols)] = self.theta[: oc.n_a]
        return A, self.theta[oc.n_a:]

    def _scaled_coefficients(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(h·A, h·b, c)`` in ``like``'s dtype, differentiable in ``theta``; built once per
        :meth:`run_sequence` (a fresh graph per call, never reused across backward passes)."""
        key = (like.dtype, like.device)
        if self._scope is not None and key in self._scope:
            return self._scope[key]
        A, b = self._A_b()
        hs = self.step_size
        out = ((hs * A).to(like), (hs * b).to(like), A.sum(1).to(like))
        if self._scope is not None:
            self._scope[key] = out
        return out

    def run_sequence(self, u_seq: Tensor, h0: Tensor, t0: float = 0.0) -> Tensor:
        self._scope = {}
        try:
            return super().run_sequence(u_seq, h0, t0)
        finally:
            self._scope = None

    def fused_eligible(self, requires_grad: bool = True) -> bool:
        return False

    def compile(self, **compile_kwargs: Any) -> "RKCell":
        raise NotImplementedError("compile: not supported for LearnableRKCell (its coefficients change every step)")

    def _stage_inputs(self, u: Tensor, u_next: Tensor | None, m: int) -> list[Tensor]:
        if u_next is None or self.input_interpolation == "constant":
            return [u] * self.stages
        _, _, c = self._scaled_coefficients(u)
        du = u_next - u
        return [u + du * ((m + c[i]) / self.substeps) for i in range(self.stages)]

    def _times(self, t: Any, m: int) -> list[Any]:
        if self.field.autonomous:
            return [None] * self.stages
        t0 = 0.0 if t is None else t
        c = self.coefficients()[2]  # stage times: not differentiated w.r.t. the nodes
        return [t0 + (m + float(ci)) * self.step_size for ci in c]

    def _explicit_update(self, h: Tensor, us: list[Tensor], ts: list[Any]) -> Tensor:
        hA, hb, _ = self._scaled_coefficients(h)
        rhs = self.field.rhs
        K: list[Tensor] = []
        for i in range(self.stages):
            y = h
            for j in range(i):
                y = y + hA[i, j] * K[j]
            K.append(rhs(y, us[i], ts[i]))
        out = h
        for i in range(self.stages):
            out = out + hb[i] * K[i]
        return out


# -- helpers for training loops ---------------------------------------------------------------

def learnable_cells(model: nn.Module) -> list[LearnableRKCell]:
    """The :class:`LearnableRKCell` modules of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, LearnableRKCell)]


def learnable_penalty(model: nn.Module) -> Tensor | None:
    """Sum of the cells' :meth:`~LearnableRKCell.penalty` terms (None when there are none):
    add it to the loss before ``backward``."""
    terms = [p for p in (c.penalty() for c in learnable_cells(model)) if p is not None]
    return sum(terms[1:], terms[0]) if terms else None


def after_optimizer_step(model: nn.Module) -> dict[str, float]:
    """Call after ``optimizer.step()``: counts the step in every learnable cell and projects
    those that are due.  Returns ``tableau_residual_before``, ``tableau_residual``,
    ``tableau_projection_iterations``, ``tableau_projection_distance`` (max over the cells
    that projected) and ``tableau_projection_failures`` (total so far); empty when nothing
    was projected."""
    infos = [i for i in (c.after_optimizer_step() for c in learnable_cells(model)) if i is not None]
    return _summarise(model, infos)


def project_learnable_(model: nn.Module) -> dict[str, float]:
    """Project every learnable cell of ``model`` now (figures as :func:`after_optimizer_step`)."""
    return _summarise(model, [c.project_() for c in learnable_cells(model)])


def _summarise(model: nn.Module, infos: list[dict[str, Any]]) -> dict[str, float]:
    if not infos:
        return {}
    return {"tableau_residual_before": max(i["residual_before"] for i in infos),
            "tableau_residual": max(i["residual"] for i in infos),
            "tableau_projection_iterations": float(max(i["iterations"] for i in infos)),
            "tableau_projection_distance": max(i["distance"] for i in infos),
            "tableau_projection_failures": float(sum(int(c.projection_failures) for c in learnable_cells(model)))}


def tableau_record(model: nn.Module) -> dict[str, Any]:
    """The learnable tableaux of ``model`` for one history record: ``tableau_A`` (s×s),
    ``tableau_b``, ``tableau_c`` (s) as nested lists — with a leading layer axis when the
    model has several learnable cells — and ``tableau_order_residual``,
    ``tableau_real_stability_interval``, ``tableau_imag_stability_interval`` (max/min over
    the cells).  Empty when the model has no learnable cell."""
    from ..stability import imag_stability_interval, real_stability_interval

    cells = learnable_cells(model)
    if not cells:
        return {}
    As, bs, cs, real, imag = [], [], [], [], []
    for cell in cells:
        A, b, c = cell.coefficients()
        As.append(A.tolist())
        bs.append(b.tolist())
        cs.append(c.tolist())
        tab = cell.method
        real.append(float(real_stability_interval(tab)))
        imag.append(float(imag_stability_interval(tab)))
    one = len(cells) == 1
    return {"tableau_A": As[0] if one else As, "tableau_b": bs[0] if one else bs, "tableau_c": cs[0] if one else cs,
            "tableau_order_residual": max(c.order_residual() for c in cells),
            "tableau_real_stability_interval": min(real), "tableau_imag_stability_interval": min(imag)}
