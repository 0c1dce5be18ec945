"""Reference implementations of recurrent cells the paper reads as ODERNNs.

Each cell computes its published update formula directly (not through an integrator),
so that :func:`~odernn_bridge.theory.as_odernn` can be checked against it:

* :class:`ResidualRNNCell` — ``h + dt·tanh(W h + U x + b)``;
* :class:`AntisymmetricRNNCell` — Chang et al. (2019), ``h + ε·tanh((W − Wᵀ − γI) h + V x + b)``;
* :class:`URNNCell` — a unitary RNN ``h⁺ = σ(Q h + V x)`` with an orthogonal (real unitary)
  recurrence matrix ``Q = exp(A − Aᵀ)`` (Lezcano-Casado & Martínez-Rubio 2019) or
  ``Q = (I − S)⁻¹(I + S)`` (Cayley, Helfrich et al. 2018), σ = modReLU (Arjovsky et al.
  2016) or tanh.  A complex n×n unitary matrix acts on ℝ²ⁿ as a real orthogonal one, so
  the real form loses no generality for the linear part.

All take ``forward(x, h) -> h_next`` with x (batch, input) and h (batch, hidden), like
``nn.RNNCell``.

>>> import torch
>>> cell = URNNCell(3, 4, dtype=torch.float64)
>>> Q = cell.recurrent_matrix()
>>> bool(torch.allclose(Q @ Q.T, torch.eye(4, dtype=torch.float64), atol=1e-13))
True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_positive_int
from ..cells.fields import VectorField
from .torch_fields import modrelu

__all__ = ["ResidualRNNCell", "AntisymmetricRNNCell", "URNNCell", "URNNField"]


def _check_pos_float(name: str, v: object, allow_zero: bool = False) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name}: expected a finite number {'>= 0' if allow_zero else '> 0'}, got {v!r}")
    return float(v)


class ResidualRNNCell(nn.Module):
    """``h_{k+1} = h_k + dt · tanh(W h_k + U x_k + b)`` — explicit Euler on ``tanh(W h + U x + b)``.

    Parameters: ``U`` (Linear input→hidden, with bias), ``W`` (Linear hidden→hidden, no bias).
    """

    def __init__(self, input_size: int, hidden_size: int, dt: float = 1.0, bias: bool = True,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.dt = _check_pos_float("dt", dt)
        self.U = nn.Linear(input_size, hidden_size, bias=bias, dtype=dtype)
        self.W = nn.Linear(hidden_size, hidden_size, bias=False, dtype=dtype)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        return h + self.dt * torch.tanh(self.W(h) + self.U(x))


class AntisymmetricRNNCell(nn.Module):
    """AntisymmetricRNN (Chang, Chen, Beutel, Chi, ICLR 2019), ungated form:

    ``h_{k+1} = h_k + ε · tanh((W − Wᵀ − γ I) h_k + V x_k + b)``.
    """

    def __init__(self, input_size: int, hidden_size: int, eps: float = 0.1, gamma: float = 0.01,
                 bias: bool = True, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.eps = _check_pos_float("eps", eps)
        self.gamma = _check_pos_float("gamma", gamma, allow_zero=True)
        self.V = nn.Linear(input_size, hidden_size, bias=bias, dtype=dtype)
        self.W = nn.Parameter(torch.randn(hidden_size, hidden_size, dtype=dtype) / math.sqrt(hidden_size))

    def recurrent_matrix(self) -> Tensor:
        """``W − Wᵀ − γI``."""
        eye = torch.eye(self.hidden_size, dtype=self.W.dtype, device=self.W.device)
        return self.W - self.W.t() - self.gamma * eye

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        return h + self.eps * torch.tanh(h @ self.recurrent_matrix().t() + self.V(x))


def _orthogonal(A: Tensor, parametrization: str) -> Tensor:
    S = A - A.t()
    if parametrization == "expm":
        return torch.linalg.matrix_exp(S)
    eye = torch.eye(S.shape[0], dtype=S.dtype, device=S.device)
    return torch.linalg.solve(eye - S, eye + S)


class URNNCell(nn.Module):
    """Unitary RNN cell ``h_{k+1} = σ(Q h_k + V x_k [+ b])`` with Q orthogonal.

    Args:
        parametrization: ``"expm"`` (Q = exp(A − Aᵀ)) or ``"cayley"`` (Q = (I−S)⁻¹(I+S),
            S = A − Aᵀ).  Both give ‖Q h‖ = ‖h‖ exactly in exact arithmetic.
        nonlinearity: ``"modrelu"`` (bias inside the modReLU, as Arjovsky et al.) or ``"tanh"``
            (bias added before tanh).

    >>> import torch
    >>> cell = URNNCell(2, 6, nonlinearity="tanh", dtype=torch.float64)
    >>> cell(torch.zeros(5, 2, dtype=torch.float64), torch.zeros(5, 6, dtype=torch.float64)).shape
    torch.Size([5, 6])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 parametrization: str = "expm", nonlinearity: str = "modrelu",
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        if parametrization not in ("expm", "cayley"):
            raise ValueError(f"parametrization: expected 'expm' or 'cayley', got {parametrization!r}")
        if nonlinearity not in ("modrelu", "tanh"):
            raise ValueError(f"nonlinearity: expected 'modrelu' or 'tanh', got {nonlinearity!r}")
        self.parametrization = parametrization
        self.nonlinearity = nonlinearity
        self.A = nn.Parameter(torch.randn(hidden_size, hidden_size, dtype=dtype) / (2 * math.sqrt(hidden_size)))
        self.V = nn.Linear(input_size, hidden_size, bias=False, dtype=dtype)
        if bias:
            init = -0.01 if nonlinearity == "modrelu" else 0.0
            self.b = nn.Parameter(torch.full((hidden_size,), init, dtype=dtype))
            with torch.no_grad():
                self.b.add_(0.01 * torch.randn(hidden_size, dtype=dtype))
        else:
            self.register_parameter("b", None)

    def recurrent_matrix(self) -> Tensor:
        """The orthogonal recurrence matrix Q."""
        return _orthogonal(self.A, self.parametrization)

    def activate(self, z: Tensor) -> Tensor:
        """σ(z): modReLU with bias b, or tanh(z + b)."""
        if self.nonlinearity == "modrelu":
            return modrelu(z, self.b) if self.b is not None else modrelu(z, torch.zeros_like(z))
        return torch.tanh(z + self.b) if self.b is not None else torch.tanh(z)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        return self.activate(h @ self.recurrent_matrix().t() + self.V(x))


class URNNField(VectorField):
    """``f(h, x) = σ(Q h + V x) − h`` sharing a :class:`URNNCell`'s parameters; Euler dt=1 is the cell."""

    def __init__(self, cell: URNNCell) -> None:
        super().__init__(cell.input_size, cell.hidden_size)
        self.cell = cell

    def project_input(self, x: Tensor) -> Tensor:
        return self.cell.V(x)

    def rhs(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        Q = self.cell.recurrent_matrix()
        return self.cell.activate(F.linear(h, Q) + u) - h
