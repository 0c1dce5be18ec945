"""Vector fields ``dh/dt = f(h, x, t)`` on torch tensors.

A :class:`VectorField` splits its evaluation in two:

* ``project_input(x) -> u`` — the part that depends on the input only (e.g. ``U x + b``).
  Cells apply it **once** per input step (or once per whole sequence in
  :class:`~odernn_bridge.cells.ODERNN`), never once per Runge–Kutta stage;
* ``rhs(h, u, t=None) -> dh/dt`` — evaluated at every stage.

``forward(h, x, t=None) = rhs(h, project_input(x), t)`` keeps the plain ``field(h, x)``
calling convention of ARCHITECTURE.md.

Fields of the form ``act(W h + u) - leak * h`` expose that structure through
:meth:`VectorField.affine_form`; the cells then use an analytic Jacobian for Newton
iterations and the fused whole-sequence kernel of :mod:`odernn_bridge.cells.fused`.

>>> import torch
>>> f = make_field("elman", 3, 4)
>>> f(torch.zeros(2, 4), torch.ones(2, 3)).shape
torch.Size([2, 4])
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor, nn

from ._validate import check_positive_int

__all__ = [
    "VectorField",
    "AffineForm",
    "ElmanField",
    "LeakyField",
    "GatedField",
    "AntisymmetricField",
    "StiffField",
    "CallableField",
    "make_field",
    "FIELDS",
]

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "identity": lambda z: z,
}


def _activation(name: str) -> Callable[[Tensor], Tensor]:
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation: expected one of {sorted(_ACTIVATIONS)}, got {name!r}") from None


#: the pre-activation scale :func:`activation_from_scaled_` expects (see there)
PREACTIVATION_SCALE = {"tanh": 2.0}


def activation_from_scaled_(name: str, z: Tensor) -> Tensor:
    """``act(z / s)`` in place on ``z`` (a buffer the caller owns, outside autograd), where
    ``s = PREACTIVATION_SCALE.get(name, 1)``: callers fold ``s`` into the product that forms
    the pre-activation (``torch.addmm(u, h, Wᵀ, beta=s, alpha=s)``) for free.

    tanh is evaluated as ``2 σ(2x) − 1``: PyTorch's CPU ``tanh`` kernel is about 3× slower than
    ``sigmoid`` (43 µs vs 15 µs for 64×256 float32 values, torch 2.13, AVX-512), which made
    the activations cost about half as much as the matrix products of an RK4 step.  The
    identity is exact; rounding differs by about one ulp of 1 (absolute), i.e. 2e-16 in
    float64 and 1e-7 in float32.
    """
    if name == "tanh":
        return z.sigmoid_().mul_(2.0).sub_(1.0)
    if name == "sigmoid":
        return z.sigmoid_()
    if name == "relu":
        return z.relu_()
    if name == "identity":
        return z
    raise ValueError(f"activation: expected one of {sorted(_ACTIVATIONS)}, got {name!r}")


def activation_derivative(name: str, a: Tensor) -> Tensor:
    """d act / d z expressed through the activation's *value* ``a = act(z)``."""
    if name == "tanh":
        return 1.0 - a * a
    if name == "sigmoid":
        return a * (1.0 - a)
    if name == "relu":
        return (a > 0).to(a.dtype)
    if name == "identity":
        return torch.ones_like(a)
    raise ValueError(f"activation: expected one of {sorted(_ACTIVATIONS)}, got {name!r}")


class AffineForm(NamedTuple):
    """``f(h, u) = act(h @ weight.T + u) - leak * h`` (``weight``: (hidden, hidden))."""

    weight: Tensor
    activation: str
    leak: float


class VectorField(nn.Module):
    """Base class of vector fields ``dh/dt = f(h, x, t)``.

    Subclasses implement :meth:`rhs` and usually :meth:`project_input`.  ``state_size``
    is the width of the integrated state (default ``hidden_size``); :meth:`readout`
    maps a state to the features a layer outputs (default: identity).
    """

    #: t of a t-th order field ``h^{(t)} = f(h, h', …, h^{(t−1)}, x)`` that reads the augmented
    #: state (width t·hidden) and returns the t-th derivative (width hidden); 1 otherwise
    derivative_order: int = 1

    #: True if ``project_input`` is affine in x (linear input interpolation may then
    #: interpolate the projection instead of the input).
    affine_projection: bool = True

    def __init__(self, input_size: int, hidden_size: int, state_size: int | None = None) -> None:
        super().__init__()
        check_positive_int(input_size, "input_size")
        check_positive_int(hidden_size, "hidden_size")
        if state_size is not None:
            check_positive_int(state_size, "state_size")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.state_size = hidden_size if state_size is None else state_size

    # -- the three pieces ------------------------------------------------------------
    def project_input(self, x: Tensor) -> Tensor:
        """The x-dependent part, for one step ``(batch, input)`` or a sequence ``(seq, batch, input)``."""
        return x

    def rhs(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        """dh/dt at state ``h`` (batch, state_size) given the projected input ``u``."""
        raise NotImplementedError

    def forward(self, h: Tensor, x: Tensor, t: Tensor | float | None = None) -> Tensor:
        return self.rhs(h, self.project_input(x), t)

    def readout(self, state: Tensor) -> Tensor:
        """Output features of a state (default: the state itself)."""
        return state

    @property
    def output_size(self) -> int:
        """Width of :meth:`readout`'s result (``hidden_size``)."""
        return self.hidden_size

    # -- structure used by the cells ---------------------------------------------------
    def affine_form(self) -> AffineForm | None:
        """``(W, activation, leak)`` if ``f(h, u) = act(W h + u) - leak h``, else None."""
        return None

    @property
    def autonomous(self) -> bool:
        """False if ``rhs`` uses ``t``."""
        return True

    def jacobian(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        """Batched Jacobian ∂f/∂h, shape (batch, state, state).

        Analytic for fields with an :meth:`affine_form`; otherwise ``torch.func``
        (vmap of jacrev), falling back to one reverse pass per output component
        (which assumes samples of a batch do not interact, as for any RNN field).
        """
        form = self.affine_form()
        if form is not None:
            W, act, leak = form
            a = _activation(act)(torch.nn.functional.linear(h, W) + u)
            J = activation_derivative(act, a).unsqueeze(-1) * W
            if leak:
                J = J - leak * torch.eye(h.shape[-1], dtype=h.dtype, device=h.device)
            return J
        return _generic_jacobian(self.rhs, h, u, t)

    def mean_jacobian(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        """One Jacobian approximation (state, state) for the whole batch: what the implicit
        cells' default simplified Newton (``newton_jacobian="shared"``) factorises.

        For an :meth:`affine_form` it is the exact batch mean ``diag(mean act′) W − leak I``
        (one product with W, no per-sample Jacobian); otherwise the batch mean of
        :meth:`jacobian` (correct for any field, including ones whose samples do not share one
        function, at the cost of the per-sample Jacobians — formed only when the cells refresh
        the shared matrix).  Override it for a cheaper or better one: it only sets Newton's
        convergence rate, never the converged result.
        """
        form = self.affine_form()
        if form is not None:
            W, act, leak = form
            a = _activation(act)(torch.nn.functional.linear(h, W) + u)
            d = activation_derivative(act, a).mean(0)
            J = d.unsqueeze(-1) * W
            if leak:
                J = J - leak * torch.eye(W.shape[0], dtype=W.dtype, device=W.device)
            return J
        return self.jacobian(h, u, t).mean(0)


def _generic_jacobian(fn: Callable[..., Tensor], h: Tensor, u: Tensor, t: Any) -> Tensor:
    try:
        from torch.func import jacrev, vmap

        def single(hi: Tensor, ui: Tensor) -> Tensor:
            return fn(hi.unsqueeze(0), ui.unsqueeze(0), t).squeeze(0)

        with torch.enable_grad():
            return vmap(jacrev(single))(h.detach(), u.detach())
    except Exception:  # noqa: BLE001 - torch.func cannot trace every user function
        with torch.enable_grad():
            hv = h.detach().requires_grad_(True)
            out = fn(hv, u.detach(), t)
            rows = []
            for i in range(out.shape[-1]):
                (g,) = torch.autograd.grad(out[:, i].sum(), hv, retain_graph=True)
                rows.append(g)
            return torch.stack(rows, dim=1)


class ElmanField(VectorField):
    """``f(h, x) = act(W h + U x + b)`` — explicit Euler with dt=1 on it is a residual RNN.

    ``U x + b`` is the input projection (bias in ``U``), ``W`` has no bias.

    >>> f = ElmanField(3, 5)
    >>> f.rhs(torch.zeros(2, 5), f.project_input(torch.zeros(2, 3))).shape
    torch.Size([2, 5])
    """

    leak: float = 0.0

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 activation: str = "tanh", state_size: int | None = None,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> None:
        super().__init__(input_size, hidden_size, state_size)
        _activation(activation)
        if self.leak and self.state_size != hidden_size:
            raise ValueError(f"state_size: a leaky field needs state_size == hidden_size, got {state_size}")
        if self.state_size % hidden_size:
            raise ValueError(f"state_size: expected a multiple of hidden_size={hidden_size} (the state "
                             f"[h, h', ...] of a higher-order ODE), got {state_size}")
        self.derivative_order = self.state_size // hidden_size
        self.activation = activation
        self.U = nn.Linear(input_size, hidden_size, bias=bias, dtype=dtype, device=device)
        # W maps the (possibly augmented, see HigherOrderCell) state to hidden_size
        self.W = nn.Linear(self.state_size, hidden_size, bias=False, dtype=dtype, device=device)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.RNN's initialisation: U(−1/√H, 1/√H) for every weight and bias."""
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)

    def project_input(self, x: Tensor) -> Tensor:
        return self.U(x)

    def rhs(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        W = self.W.weight
        if h.dim() == 2 and not (torch.is_grad_enabled() and (h.requires_grad or u.requires_grad or W.requires_grad)):
            # no graph (Newton iterations, inference): a fresh buffer, activated in place
            sc = PREACTIVATION_SCALE.get(self.activation, 1.0)
            z = activation_from_scaled_(self.activation, torch.addmm(u, h, W.t(), beta=sc, alpha=sc))
            return z.sub_(h, alpha=self.leak) if self.leak else z
        z = _activation(self.activation)(torch.addmm(u, h, W.t()) if h.dim() == 2 else self.W(h) + u)
        return z - self.leak * h if self.leak else z

    def affine_form(self) -> AffineForm | None:
        if self.state_size != self.hidden_size:
            return None
        return AffineForm(self.W.weight, self.activation, float(self.leak))

    def jacobian(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        a = _activation(self.activation)(torch.nn.functional.linear(h, self.W.weight) + u)
        J = activation_derivative(self.activation, a).unsqueeze(-1) * self.W.weight
        if self.leak:
            J = J - self.leak * torch.eye(h.shape[-1], dtype=h.dtype, device=h.device)
        return J


class LeakyField(ElmanField):
    """``f(h, x) = act(W h + U x + b) − h`` — explicit Euler with dt=1 is the Elman RNN
    ``h' = tanh(W h + U x + b)``."""

    leak = 1.0


class AntisymmetricField(VectorField):
    """``f(h, x) = act((W − Wᵀ − γI) h + V x + b)`` (AntisymmetricRNN, Chang et al. 2019).

    The recurrent Jacobian has eigenvalues with real part −γ·act' (nearly imaginary).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, gamma: float = 0.01,
                 activation: str = "tanh", dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__(input_size, hidden_size)
        if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"gamma: expected a finite number >= 0, got {gamma!r}")
        _activation(activation)
        self.gamma = float(gamma)
        self.activation = activation
        self.V = nn.Linear(input_size, hidden_size, bias=bias, dtype=dtype, device=device)
        self.W = nn.Parameter(torch.empty(hidden_size, hidden_size, dtype=dtype, device=device))
        nn.init.normal_(self.W, std=1.0 / math.sqrt(hidden_size))

    def recurrent_matrix(self) -> Tensor:
        """``W − Wᵀ − γI``."""
        eye = torch.eye(self.hidden_size, dtype=self.W.dtype, device=self.W.device)
        return self.W - self.W.t() - self.gamma * eye

    def project_input(self, x: Tensor) -> Tensor:
        return self.V(x)

    def rhs(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        return _activation(self.activation)(torch.nn.functional.linear(h, self.recurrent_matrix()) + u)

    def affine_form(self) -> AffineForm:
        return AffineForm(self.recurrent_matrix(), self.activation, 0.0)


class StiffField(VectorField):
    """``f(h, x) = tanh(W h + U x + b) − Λ h`` with a fixed decay spectrum
    ``Λ = diag(logspace(0, log10(stiffness), hidden))`` — eigenvalues of ∂f/∂h from about −1
    to −``stiffness``: a stiff recurrence for which explicit cells need dt < 2.8/stiffness
    (RK4) while L-stable implicit cells (ImplicitEuler, SDIRK2, RadauIIA5) take any dt.

    >>> f = StiffField(2, 4, stiffness=1000.0)
    >>> float(f.decay.max()), float(f.decay.min())
    (1000.0, 1.0)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, stiffness: float = 1000.0,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> None:
        super().__init__(input_size, hidden_size)
        if isinstance(stiffness, bool) or not isinstance(stiffness, (int, float)) or not (
                math.isfinite(stiffness) and stiffness >= 1.0):
            raise ValueError(f"stiffness: expected a finite number >= 1, got {stiffness!r}")
        self.stiffness = float(stiffness)
        self.U = nn.Linear(input_size, hidden_size, bias=bias, dtype=dtype, device=device)
        self.W = nn.Linear(hidden_size, hidden_size, bias=False, dtype=dtype, device=device)
        k = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)
        decay = torch.logspace(0.0, math.log10(self.stiffness), hidden_size, dtype=torch.float64)
        self.register_buffer("decay", decay.to(dtype=dtype or torch.get_default_dtype(), device=device))

    def project_input(self, x: Tensor) -> Tensor:
        return self.U(x)

    def rhs(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        return torch.tanh(self.W(h) + u) - self.decay * h

    def jacobian(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        a = torch.tanh(self.W(h) + u)
        return (1.0 - a * a).unsqueeze(-1) * self.W.weight - torch.diag(self.decay)

    def mean_jacobian(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        a = torch.tanh(self.W(h) + u)
        return (1.0 - a * a).mean(0).unsqueeze(-1) * self.W.weight - torch.diag(self.decay)


class GatedField(VectorField):
    """A gated (GRU-like, continuous-time) field:

    ``z = σ(W_z h + U_z x + b_z)``,  ``f(h, x) = z ⊙ (tanh(W h + U x + b) − h)``.

    Explicit Euler with dt = 1 gives ``h_{k+1} = (1 − z) h_k + z tanh(·)``, the GRU-style
    convex update without a reset gate (the "minimal gated unit" of Zhou et al. 2016).
    The projection ``u = [U_z x + b_z ; U x + b]`` has width 2·hidden.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> None:
        super().__init__(input_size, hidden_size)
        self.U = nn.Linear(input_size, 2 * hidden_size, bias=bias, dtype=dtype, device=device)
        self.W = nn.Linear(hidden_size, 2 * hidden_size, bias=False, dtype=dtype, device=device)
        k = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)

    def project_input(self, x: Tensor) -> Tensor:
        return self.U(x)

    def rhs(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        pre = self.W(h) + u
        H = self.hidden_size
        z = torch.sigmoid(pre[..., :H])
        return z * (torch.tanh(pre[..., H:]) - h)


def _accepts_t(fn: Callable[..., Any]) -> bool:
    target = fn.forward if isinstance(fn, nn.Module) else fn
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return False
    params = sig.parameters
    if "t" in params:
        return True
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class CallableField(VectorField):
    """Wrap a user callable ``fn(h, x)`` or ``fn(h, x, t=...)`` (or any ``nn.Module``).

    The input is passed through unprojected (``project_input`` is the identity); if
    ``fn`` is an ``nn.Module`` its parameters become the field's parameters.  The sizes may
    be omitted for a standalone cell (the cells then skip the size checks); ``ODERNN`` and
    the memory-t cells need them.

    >>> f = CallableField(lambda h, x: -h + x, input_size=2, hidden_size=2)
    >>> f(torch.ones(1, 2), torch.zeros(1, 2))
    tensor([[-1., -1.]])
    >>> CallableField(lambda h, x: -h).state_size is None
    True
    """

    def __init__(self, fn: Callable[..., Tensor], input_size: int | None = None, hidden_size: int | None = None,
                 state_size: int | None = None, *, derivative_order: int = 1) -> None:
        if not callable(fn):
            raise TypeError(f"fn: expected a callable fn(h, x) or fn(h, x, t=...), got {type(fn).__name__}")
        if input_size is None or hidden_size is None:
            if input_size is not None or hidden_size is not None or state_size is not None or derivative_order != 1:
                raise ValueError("input_size, hidden_size: give both sizes (or neither, for an unsized field)")
            nn.Module.__init__(self)
            self.input_size = self.hidden_size = self.state_size = None  # type: ignore[assignment]
        else:
            super().__init__(input_size, hidden_size, state_size)
        if isinstance(derivative_order, bool) or not isinstance(derivative_order, int) or derivative_order < 1:
            raise ValueError(f"derivative_order: expected a positive integer, got {derivative_order!r}")
        if derivative_order > 1 and self.state_size != derivative_order * hidden_size:
            raise ValueError(f"state_size: an order-{derivative_order} field reads [h, h', ...] of width "
                             f"{derivative_order * hidden_size}, got state_size={self.state_size}")
        self.derivative_order = derivative_order
        if isinstance(fn, nn.Module):
            self.fn = fn
        else:
            self._fn = fn
        self._takes_t = _accepts_t(fn)

    @property
    def captures_closure(self) -> bool:
        """True for a plain function: tensors it captured are found by tracing (implicit cells)."""
        return "fn" not in self._modules

    @property
    def _callable(self) -> Callable[..., Tensor]:
        return self.fn if "fn" in self._modules else self._fn

    @property
    def autonomous(self) -> bool:
        return not self._takes_t

    def rhs(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        fn = self._callable
        out = fn(h, u, t=t) if self._takes_t else fn(h, u)
        if not isinstance(out, Tensor):
            raise TypeError(f"fn: expected the field to return a tensor, got {type(out).__name__}")
        width = self.state_size if self.derivative_order == 1 else self.hidden_size
        if width is None:
            width = h.shape[-1]
        if out.shape != h.shape[:-1] + (width,):
            raise ValueError(f"fn: the field returned shape {tuple(out.shape)}, expected "
                             f"{tuple(h.shape[:-1]) + (width,)}")
        return out


FIELDS: dict[str, type[VectorField]] = {
    "elman": ElmanField,
    "tanh": ElmanField,
    "leaky": LeakyField,
    "gated": GatedField,
    "antisymmetric": AntisymmetricField,
    "stiff": StiffField,
}


def make_field(name_or_field: str | VectorField | Callable[..., Tensor], input_size: int, hidden_size: int,
               bias: bool = True, **kw: Any) -> VectorField:
    """Build a vector field by name (``"elman"``, ``"leaky"``, ``"gated"``, ``"antisymmetric"``),
    pass a :class:`VectorField` through (checking its sizes), or wrap a callable.

    >>> make_field("leaky", 3, 4).leak
    1.0
    """
    if isinstance(name_or_field, VectorField):
        f = name_or_field
        if f.input_size != input_size or f.hidden_size != hidden_size:
            raise ValueError(
                f"field: its sizes (input_size={f.input_size}, hidden_size={f.hidden_size}) do not match "
                f"input_size={input_size}, hidden_size={hidden_size}")
        return f
    if isinstance(name_or_field, str):
        cls = FIELDS.get(name_or_field.lower())
        if cls is None:
            raise ValueError(f"field: unknown field {name_or_field!r}; expected one of {sorted(FIELDS)}, "
                             "a VectorField or a callable fn(h, x)")
        return cls(input_size, hidden_size, bias, **kw)
    if callable(name_or_field):
        return CallableField(name_or_field, input_size, hidden_size, **kw)
    raise TypeError(f"field: expected a name, a VectorField or a callable, got {type(name_or_field).__name__}")
