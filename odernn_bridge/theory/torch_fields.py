"""Vector fields whose explicit-Euler step with dt = 1 *is* a standard recurrent cell.

Each field shares the :class:`torch.nn.Parameter` objects of the module it re-expresses
(no copy), so ``as_odernn(module)`` and ``module`` stay identical when one is trained.

=====================  ==================================================  ===========
cell                   field f (Euler, dt = 1: h_{k+1} = h_k + f(h_k, x_k))  state
=====================  ==================================================  ===========
nn.RNN / RNNCell       act(W_hh h + W_ih x + b_ih + b_hh) − h                h
nn.GRU / GRUCell       (1 − z) ⊙ (n − h)                                     h
nn.LSTM / LSTMCell     [o ⊙ tanh(f⊙c + i⊙g) − h ; f⊙c + i⊙g − c]             [h; c]
URNN (modReLU / tanh)  σ(W h + V x) − h, W orthogonal                         h
=====================  ==================================================  ===========

The derivations are in ``docs/theory.md``.  ``memory_order`` is the number of hidden-state
slots the update reads (t of the n-t classification): 2 for the LSTM's ``[h; c]``.

>>> import torch
>>> rnn = torch.nn.RNNCell(3, 4, dtype=torch.float64)
>>> f = RNNField.from_weights(rnn.weight_ih, rnn.weight_hh, rnn.bias_ih, rnn.bias_hh)
>>> x, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
>>> bool(torch.allclose(h + f(h, x), rnn(x, h), atol=1e-14))
True
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cells.fields import AffineForm, VectorField

__all__ = ["RNNField", "GRUField", "LSTMField", "modrelu"]


def modrelu(z: Tensor, bias: Tensor) -> Tensor:
    """Real modReLU (Arjovsky et al. 2016): ``sign(z) · relu(|z| + b)``.

    For a complex z the original is ``z/|z| · relu(|z| + b)``; on the real line z/|z| is
    the sign.  Written without a division so that it is differentiable at z = 0.
    """
    return torch.sign(z) * torch.relu(torch.abs(z) + bias)


def _share(module: nn.Module, name: str, p: Tensor | None) -> None:
    if p is None:
        module.register_parameter(name, None)
    elif isinstance(p, nn.Parameter):
        module.register_parameter(name, p)
    else:
        module.register_buffer(name, p)


class _TorchWeightsField(VectorField):
    """Common code: weights ``weight_ih`` (gates·H, in), ``weight_hh`` (gates·H, H), biases."""

    gates: int = 1
    memory_order: int = 1

    def __init__(self, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None,
                 bias_hh: Tensor | None, state_size: int | None = None) -> None:
        if weight_hh.dim() != 2 or weight_hh.shape[0] != self.gates * weight_hh.shape[1]:
            raise ValueError(f"weight_hh: expected shape ({self.gates}·H, H), got {tuple(weight_hh.shape)}")
        hidden = weight_hh.shape[1]
        if weight_ih.dim() != 2 or weight_ih.shape[0] != self.gates * hidden:
            raise ValueError(f"weight_ih: expected shape ({self.gates * hidden}, input_size), "
                             f"got {tuple(weight_ih.shape)}")
        if (bias_ih is None) != (bias_hh is None):
            raise ValueError("bias_ih, bias_hh: expected both or neither")
        super().__init__(weight_ih.shape[1], hidden, state_size)
        _share(self, "weight_ih", weight_ih)
        _share(self, "weight_hh", weight_hh)
        _share(self, "bias_ih", bias_ih)
        _share(self, "bias_hh", bias_hh)

    @classmethod
    def from_weights(cls, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None = None,
                     bias_hh: Tensor | None = None, **kw: object) -> "_TorchWeightsField":
        """Field on the given (shared) weights, torch's layout and gate order."""
        return cls(weight_ih, weight_hh, bias_ih, bias_hh, **kw)  # type: ignore[arg-type]

    @classmethod
    def from_module(cls, module: nn.Module, layer: int = 0, **kw: object) -> "_TorchWeightsField":
        """Field sharing the weights of layer ``layer`` of an nn.RNN/GRU/LSTM (or a *Cell)."""
        sfx = "" if isinstance(module, nn.RNNCellBase) else f"_l{layer}"
        bias = bool(getattr(module, "bias", True))
        return cls(getattr(module, f"weight_ih{sfx}"), getattr(module, f"weight_hh{sfx}"),
                   getattr(module, f"bias_ih{sfx}") if bias else None,
                   getattr(module, f"bias_hh{sfx}") if bias else None, **kw)  # type: ignore[arg-type]


class RNNField(_TorchWeightsField):
    """``f(h, x) = act(W_hh h + W_ih x + b_ih + b_hh) − h``; Euler dt=1 is ``nn.RNN``.

    ``nonlinearity``: ``"tanh"`` or ``"relu"`` (as ``nn.RNN``).
    """

    def __init__(self, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None = None,
                 bias_hh: Tensor | None = None, nonlinearity: str = "tanh") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(weight_ih, weight_hh, bias_ih, bias_hh)
        self.nonlinearity = nonlinearity

    def project_input(self, x: Tensor) -> Tensor:
        u = F.linear(x, self.weight_ih, self.bias_ih)
        return u + self.bias_hh if self.bias_hh is not None else u

    def rhs(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        act: Callable[[Tensor], Tensor] = torch.tanh if self.nonlinearity == "tanh" else torch.relu
        return act(F.linear(h, self.weight_hh) + u) - h

    def affine_form(self) -> AffineForm:
        return AffineForm(self.weight_hh, self.nonlinearity, 1.0)


class GRUField(_TorchWeightsField):
    """``f(h, x) = (1 − z) ⊙ (n − h)`` with torch's GRU gates (order r, z, n):

    r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)).  Euler dt=1: h + (1−z)(n−h) = (1−z)n + z h.
    """

    gates = 3

    def project_input(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)

    def rhs(self, h: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        gh = F.linear(h, self.weight_hh, self.bias_hh)
        H = self.hidden_size
        r = torch.sigmoid(u[..., :H] + gh[..., :H])
        z = torch.sigmoid(u[..., H:2 * H] + gh[..., H:2 * H])
        n = torch.tanh(u[..., 2 * H:] + r * gh[..., 2 * H:])
        return (1.0 - z) * (n - h)


class LSTMField(_TorchWeightsField):
    """LSTM on the augmented state ``s = [h; c]`` (width 2H), torch's gate order (i, f, g, o):

    c⁺ = f⊙c + i⊙g, h⁺ = o⊙tanh(c⁺);  ``f(s, x) = [h⁺ − h ; c⁺ − c]``, so Euler with dt=1
    gives ``s + f(s, x) = [h⁺; c⁺]``.  ``readout(s) = h``.  ``memory_order = 2``: eliminating
    c leaves a two-step recurrence in h (docs/theory.md).
    """

    gates = 4
    memory_order = 2

    def __init__(self, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None = None,
                 bias_hh: Tensor | None = None) -> None:
        super().__init__(weight_ih, weight_hh, bias_ih, bias_hh, state_size=2 * weight_hh.shape[1])

    def project_input(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)

    def rhs(self, s: Tensor, u: Tensor, t: Tensor | float | None = None) -> Tensor:
        H = self.hidden_size
        h, c = s[..., :H], s[..., H:]
        g_all = u + F.linear(h, self.weight_hh, self.bias_hh)
        i = torch.sigmoid(g_all[..., :H])
        f = torch.sigmoid(g_all[..., H:2 * H])
        g = torch.tanh(g_all[..., 2 * H:3 * H])
        o = torch.sigmoid(g_all[..., 3 * H:])
        c_new = f * c + i * g
        h_new = o * torch.tanh(c_new)
        return torch.cat([h_new - h, c_new - c], dim=-1)

    def readout(self, state: Tensor) -> Tensor:
        return state[..., : self.hidden_size]
