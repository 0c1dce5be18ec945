"""Higher-order (memory t) ODE cells ``h^{(t)} = f(h, h', …, h^{(t−1)}, x)`` and coRNN.

The t-th order ODE is integrated as a first-order system on the augmented state
``z = [h, h', …, h^{(t−1)}]`` (width t·n): ``z' = [h', …, h^{(t−1)}, f(z, x)]``, by any
Butcher tableau (:class:`RKCell` on :class:`AugmentedField`), or — for t = 2 — by the
symplectic Euler or Störmer–Verlet schemes.  :class:`CoRNNCell` is the coupled oscillatory
RNN of Rusch & Mishra (ICLR 2021) as the symplectic-Euler instance.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ._validate import check_dt, check_finite, check_positive_int, check_step_args
from .fields import FIELDS, VectorField
from .rk import RKCell, check_field

__all__ = ["AugmentedField", "HigherOrderCell", "CoRNNField", "CoRNNCell", "SECOND_ORDER_SCHEMES"]

SECOND_ORDER_SCHEMES = ("symplectic_euler", "stormer_verlet")


class AugmentedField(VectorField):
    """First-order form ``z' = [z_2, …, z_t, f(z, x)]`` of a t-th order field ``f``.

    ``f`` (``inner``) takes the whole augmented state (its ``state_size`` is t·n) and
    returns the t-th derivative (width n = ``inner.hidden_size``).
    """

    def __init__(self, inner: VectorField, order: int) -> None:
        check_positive_int(order, "order")
        if inner.hidden_size is None:
            raise ValueError("field: a higher-order cell needs a sized field (CallableField(fn, input_size, "
                             "hidden_size, state_size=order*hidden_size, derivative_order=order))")
        n = inner.hidden_size
        if inner.state_size != order * n:
            raise ValueError(f"field: a field for an order-{order} ODE must read the augmented state "
                             f"[h, h', ...] of width order*hidden_size = {order * n}; its state_size is "
                             f"{inner.state_size} (build it with state_size={order * n})")
        super().__init__(inner.input_size, n, order * n)
        self.inner = inner
        self.order = order

    @property
    def autonomous(self) -> bool:
        return self.inner.autonomous

    def project_input(self, x: Tensor) -> Tensor:
        return self.inner.project_input(x)

    def rhs(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        n = self.hidden_size
        return torch.cat([h[..., n:], self.inner.rhs(h, u, t)], dim=-1)

    def readout(self, state: Tensor) -> Tensor:
        return state[..., : self.hidden_size]

    def jacobian(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        n, S = self.hidden_size, self.state_size
        B = h.shape[0]
        J = h.new_zeros(B, S, S)
        idx = torch.arange(S - n, device=h.device)
        J[:, idx, idx + n] = 1.0
        J[:, S - n:, :] = self.inner.jacobian(h, u, t)
        return J


class HigherOrderCell(nn.Module):
    """Memory-t cell for ``h^{(t)} = f(h, h', …, h^{(t−1)}, x)``; state ``[h, h', …]`` (batch, t·n).

    ``method``: any Butcher tableau / catalogue name, or for ``order == 2``
    ``"symplectic_euler"`` (``v ← v + dt f(y, v, u); y ← y + dt v``) or ``"stormer_verlet"``
    (``v½ = v + dt/2 f(y, v, u); y ← y + dt v½; v ← v½ + dt/2 f(y_new, v½, u)`` — the
    explicit velocity-Verlet form, exactly Störmer–Verlet when f does not depend on h').

    >>> import torch
    >>> from odernn_bridge.cells import ElmanField
    >>> cell = HigherOrderCell(ElmanField(3, 4, state_size=8), order=2, method="RK4", dt=0.1)
    >>> cell(torch.zeros(2, 3), torch.zeros(2, 8)).shape
    torch.Size([2, 8])
    """

    def __init__(self, field: VectorField, order: int = 2, method: Any = "symplectic_euler", dt: float = 1.0,
                 substeps: int = 1, *, check_finite: bool = True, **rk_kwargs: Any) -> None:
        super().__init__()
        field = check_field(field)
        check_positive_int(order, "order")
        self.order = order
        self.aug = AugmentedField(field, order)
        self.dt = check_dt(dt)
        self.substeps = check_positive_int(substeps, "substeps")
        self.check_finite = bool(check_finite)
        self.scheme = method.lower() if isinstance(method, str) and method.lower() in SECOND_ORDER_SCHEMES else None
        if self.scheme is not None:
            if order != 2:
                raise ValueError(f"method: {method!r} is a scheme for second-order ODEs (order=2), got order={order}")
            if rk_kwargs:
                raise TypeError(f"unexpected keyword arguments for {method!r}: {sorted(rk_kwargs)}")
            self.rk = None
            self.method = self.scheme
            self.stages = 1 if self.scheme == "symplectic_euler" else 2
        else:
            self.rk = RKCell(self.aug, method, dt=dt, substeps=substeps, check_finite=False, **rk_kwargs)
            self.method = self.rk.method
            self.stages = self.rk.stages
        self.last_stats: dict[str, Any] = {}

    @property
    def field(self) -> VectorField:
        """The augmented first-order field (state ``[h, h', …]``)."""
        return self.aug

    @property
    def inner_field(self) -> VectorField:
        return self.aug.inner

    @property
    def state_size(self) -> int:
        return self.aug.state_size

    def readout(self, state: Tensor) -> Tensor:
        return self.aug.readout(state)

    def extra_repr(self) -> str:
        name = self.scheme or self.method.name
        return f"order={self.order}, method={name}, dt={self.dt}, substeps={self.substeps}"

    def forward(self, x: Tensor, h: Tensor, t: Tensor | float | None = None) -> Tensor:
        f = self.aug
        check_step_args(f, x, h, state_what=f"(batch, order*hidden_size={f.state_size})")
        if self.check_finite:
            check_finite(x, "x")
            check_finite(h, "h")
        self.last_stats = {}
        return self.step_projected(f.project_input(x), h, t)

    step = forward

    def step_projected(self, u: Tensor, h: Tensor, t: Tensor | float | None = None) -> Tensor:
        if self.rk is not None:
            self.rk.last_stats = self.rk._new_stats()
            out = self.rk.step_projected(u, h, t)
            self.last_stats = dict(self.rk.last_stats)
            return out
        n = self.aug.hidden_size
        inner = self.aug.inner
        hs = self.dt / self.substeps
        y, v = h[:, :n], h[:, n:]
        t0 = 0.0 if t is None else t
        for m in range(self.substeps):
            tm = None if inner.autonomous else t0 + m * hs
            if self.scheme == "symplectic_euler":
                v = v + hs * inner.rhs(torch.cat([y, v], 1), u, tm)
                y = y + hs * v
            else:
                v_half = v + (0.5 * hs) * inner.rhs(torch.cat([y, v], 1), u, tm)
                y = y + hs * v_half
                t1 = None if inner.autonomous else tm + hs
                v = v_half + (0.5 * hs) * inner.rhs(torch.cat([y, v_half], 1), u, t1)
        self.last_stats = {"nfev": self.stages * self.substeps, "steps": self.substeps}
        return torch.cat([y, v], 1)

    def run_sequence(self, u_seq: Tensor, h0: Tensor, t0: float = 0.0) -> Tensor:
        outs, h = [], h0
        for k, u in enumerate(u_seq.unbind(0)):  # one unbind: no O(T²) select gradients
            h = self.step_projected(u, h, t0 + k * self.dt)
            outs.append(h)
        return torch.stack(outs, 0)


class CoRNNField(VectorField):
    """coRNN's second-order field ``y'' = tanh(W y + 𝒲 y' + V x + b) − γ y − ε y'`` on ``[y; y']``."""

    derivative_order = 2

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, gamma: float = 2.7,
                 epsilon: float = 4.7, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__(input_size, hidden_size, 2 * hidden_size)
        for nm, val in (("gamma", gamma), ("epsilon", epsilon)):
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val):
                raise ValueError(f"{nm}: expected a finite number, got {val!r}")
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)
        self.V = nn.Linear(input_size, hidden_size, bias=bias, dtype=dtype, device=device)
        self.W = nn.Linear(hidden_size, hidden_size, bias=False, dtype=dtype, device=device)
        self.Wz = nn.Linear(hidden_size, hidden_size, bias=False, dtype=dtype, device=device)
        # the published code uses one nn.Linear(input + 2·hidden, hidden): same init bound
        k = 1.0 / math.sqrt(input_size + 2 * hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)

    def project_input(self, x: Tensor) -> Tensor:
        return self.V(x)

    def rhs(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        n = self.hidden_size
        y, z = h[..., :n], h[..., n:]
        return torch.tanh(self.W(y) + self.Wz(z) + u) - self.gamma * y - self.epsilon * z

    def jacobian(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        n = self.hidden_size
        y, z = h[..., :n], h[..., n:]
        a = torch.tanh(self.W(y) + self.Wz(z) + u)
        d = (1 - a * a).unsqueeze(-1)
        eye = torch.eye(n, dtype=h.dtype, device=h.device)
        return torch.cat([d * self.W.weight - self.gamma * eye, d * self.Wz.weight - self.epsilon * eye], dim=-1)

    @torch.no_grad()
    def load_published(self, weight: Tensor, bias: Tensor | None = None) -> "CoRNNField":
        """Copy the weights of the reference implementation's ``i2h = nn.Linear(n_inp + 2 n_hid, n_hid)``
        applied to ``cat((x, hz, hy), 1)``."""
        m, n = self.input_size, self.hidden_size
        if tuple(weight.shape) != (n, m + 2 * n):
            raise ValueError(f"weight: expected shape ({n}, {m + 2 * n}), got {tuple(weight.shape)}")
        self.V.weight.copy_(weight[:, :m])
        self.Wz.weight.copy_(weight[:, m:m + n])
        self.W.weight.copy_(weight[:, m + n:])
        if bias is not None:
            if self.V.bias is None:
                raise ValueError("bias: this field was built with bias=False")
            self.V.bias.copy_(bias)
        return self


class CoRNNCell(HigherOrderCell):
    """Coupled oscillatory RNN (T. K. Rusch, S. Mishra, "Coupled Oscillatory Recurrent Neural
    Network (coRNN)", ICLR 2021) — symplectic Euler on ``y'' = σ(W y + 𝒲 y' + V u + b) − γ y − ε y'``:

        z_n = z_{n−1} + dt (tanh(W y_{n−1} + 𝒲 z_{n−1} + V u_n + b) − γ y_{n−1} − ε z_{n−1})
        y_n = y_{n−1} + dt z_n

    State ``[y; z]`` (batch, 2·hidden); readout ``y``.  Defaults are the paper's psMNIST
    settings (dt = 0.042, γ = 2.7, ε = 4.7).  ``method`` may be any other scheme.

    >>> import torch
    >>> cell = CoRNNCell(3, 4)
    >>> cell(torch.zeros(2, 3), torch.zeros(2, 8)).shape
    torch.Size([2, 8])
    """

    def __init__(self, input_size: int, hidden_size: int, dt: float = 0.042, gamma: float = 2.7,
                 epsilon: float = 4.7, bias: bool = True, *, method: Any = "symplectic_euler",
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None, **kw: Any) -> None:
        field = CoRNNField(input_size, hidden_size, bias, gamma=gamma, epsilon=epsilon, dtype=dtype, device=device)
        super().__init__(field, order=2, method=method, dt=dt, **kw)
        self.input_size = input_size
        self.hidden_size = hidden_size

    @property
    def gamma(self) -> float:
        return self.aug.inner.gamma

    @property
    def epsilon(self) -> float:
        return self.aug.inner.epsilon


FIELDS["cornn"] = CoRNNField
