"""Exact ODERNN forms of standard recurrent modules: :func:`as_odernn`.

``as_odernn(module)`` returns an :class:`~odernn_bridge.cells.ODERNN` — a vector field, a
Runge–Kutta method, a step ``dt`` and a derivative order — that shares the module's
``nn.Parameter`` objects and reproduces its outputs to round-off.  All forms are explicit
Euler steps; the derivations are in ``docs/theory.md``.

=================================  ===========  ======  =========================================
module                             method       dt      field
=================================  ===========  ======  =========================================
nn.RNN / nn.RNNCell                Euler        1       act(W_hh h + W_ih x + b) − h
nn.GRU / nn.GRUCell                Euler        1       (1 − z) ⊙ (n − h)
nn.LSTM / nn.LSTMCell              Euler        1       [h⁺ − h ; c⁺ − c] on the state [h; c]
URNNCell                           Euler        1       σ(Q h + V x) − h
ResidualRNNCell                    Euler        dt      tanh(W h + U x + b)
AntisymmetricRNNCell               Euler        ε       tanh((W − Wᵀ − γI) h + V x + b)
=================================  ===========  ======  =========================================

The returned :class:`TorchEquivalentODERNN` keeps torch's calling convention, including
``(output, (h_n, c_n))`` and ``(h_0, c_0)`` for LSTMs and unbatched 2-D inputs.

>>> import torch
>>> lstm = torch.nn.LSTM(3, 5, num_layers=2, dtype=torch.float64)
>>> ode = as_odernn(lstm)
>>> x = torch.randn(7, 2, 3, dtype=torch.float64)
>>> (y1, (h1, c1)), (y2, (h2, c2)) = lstm(x), ode(x)
>>> float((y1 - y2).abs().max().detach()) < 1e-12
True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..cells.layer import ODERNN
from ..cells.fields import AntisymmetricField, ElmanField, VectorField
from .reference_cells import AntisymmetricRNNCell, ResidualRNNCell, URNNCell, URNNField
from .torch_fields import GRUField, LSTMField, RNNField

__all__ = ["as_odernn", "TorchEquivalentODERNN"]


class TorchEquivalentODERNN(ODERNN):
    """An :class:`ODERNN` built on given fields, with the calling convention of a torch RNN.

    ``source`` names the module it re-expresses (``"LSTM"``, ``"GRUCell"``, …);
    ``classification`` is the (n, t) reading of that module (:func:`classify`).
    For LSTMs ``forward(input, (h0, c0)) -> (output, (h_n, c_n))``; the integrated state of
    each layer is ``[h; c]``.
    """

    def __init__(self, fields: list[VectorField], *, method: Any = "Euler", dt: float = 1.0,
                 batch_first: bool = False, dropout: float = 0.0, source: str = "",
                 lstm: bool = False) -> None:
        if not fields:
            raise ValueError("fields: expected at least one vector field")
        pending = list(fields)

        def factory(input_size: int, hidden_size: int, bias: bool = True) -> VectorField:
            f = pending.pop(0)
            if f.input_size != input_size or f.hidden_size != hidden_size:
                raise ValueError(f"fields: layer field sizes ({f.input_size}, {f.hidden_size}) do not match "
                                 f"({input_size}, {hidden_size})")
            return f

        p = next(iter(fields[0].parameters()))
        super().__init__(fields[0].input_size, fields[0].hidden_size, method=method, dt=dt,
                         field=factory, num_layers=len(fields), batch_first=batch_first,
                         dropout=dropout, dtype=p.dtype, device=p.device)
        for cell, f in zip(self.cells, fields):
            if cell.field is not f:  # pragma: no cover - depends on ODERNN internals
                cell.field = f
        self.source = source
        self.lstm = lstm

    @property
    def derivative_order(self) -> int:
        """t of the form: 1, or 2 for the LSTM (state [h; c], a two-step recurrence in h)."""
        return int(getattr(self.cells[0].field, "memory_order", 1))

    @property
    def classification(self) -> Any:
        from .classify import classify_name

        return classify_name(self.source)

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, Any]:  # noqa: A002
        if self.lstm and hx is not None:
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise ValueError("hx: expected a tuple (h0, c0) of tensors for an LSTM")
            hx = torch.cat([hx[0], hx[1]], dim=-1)
        out, hn = super().forward(input, hx)
        if self.lstm:
            H = self.cells[0].field.hidden_size
            return out, (hn[..., :H], hn[..., H:])
        return out, hn


_TORCH_LAYERS: dict[type, tuple[type, bool]] = {
    nn.RNN: (RNNField, False), nn.RNNCell: (RNNField, False),
    nn.GRU: (GRUField, False), nn.GRUCell: (GRUField, False),
    nn.LSTM: (LSTMField, True), nn.LSTMCell: (LSTMField, True),
}


def _torch_fields(module: nn.Module, field_cls: type) -> list[VectorField]:
    if isinstance(module, nn.RNNCellBase):
        layers = 1
    else:
        if getattr(module, "bidirectional", False):
            raise ValueError("module: bidirectional RNNs have no single-direction ODERNN form; "
                             "expected bidirectional=False")
        if getattr(module, "proj_size", 0):
            raise ValueError("module: LSTMs with proj_size > 0 are not supported; expected proj_size=0")
        layers = module.num_layers
    kw: dict[str, Any] = {}
    if field_cls is RNNField:
        kw["nonlinearity"] = module.nonlinearity
    return [field_cls.from_module(module, layer=l, **kw) for l in range(layers)]


def as_odernn(module: nn.Module) -> ODERNN:
    """The exact ODERNN form of ``module``, sharing its parameters.

    Supported: ``nn.RNN``/``nn.RNNCell`` (tanh or relu), ``nn.GRU``/``nn.GRUCell``,
    ``nn.LSTM``/``nn.LSTMCell`` (any ``num_layers``, ``batch_first``, ``bias``; not
    bidirectional, no ``proj_size``), :class:`URNNCell`, :class:`ResidualRNNCell`,
    :class:`AntisymmetricRNNCell`; an :class:`ODERNN` is returned unchanged.  A cell
    (``*Cell``) gives a one-layer ODERNN over sequences (``cells[0]`` is the single-step
    cell; for LSTMCell its state is ``[h; c]``).  Dropout between layers is kept (it acts
    in training mode only, as in torch).

    >>> import torch
    >>> gru = torch.nn.GRU(2, 3, batch_first=True, dtype=torch.float64)
    >>> ode = as_odernn(gru)
    >>> ode.method.name, ode.dt
    ('Euler', 1.0)
    """
    if isinstance(module, ODERNN):
        return module
    if not isinstance(module, nn.Module):
        raise TypeError(f"module: expected a torch nn.Module, got {type(module).__name__}")
    for cls, (field_cls, lstm) in _TORCH_LAYERS.items():
        if type(module) is cls:
            fields = _torch_fields(module, field_cls)
            return TorchEquivalentODERNN(
                fields, batch_first=bool(getattr(module, "batch_first", False)),
                dropout=float(getattr(module, "dropout", 0.0)), source=cls.__name__, lstm=lstm)
    if isinstance(module, URNNCell):
        return TorchEquivalentODERNN([URNNField(module)], source="URNNCell")
    if isinstance(module, ResidualRNNCell):
        f = ElmanField(module.input_size, module.hidden_size, bias=module.U.bias is not None,
                       dtype=module.U.weight.dtype)
        f.U, f.W = module.U, module.W  # share the modules (and so the parameters)
        return TorchEquivalentODERNN([f], dt=module.dt, source="ResidualRNNCell")
    if isinstance(module, AntisymmetricRNNCell):
        f = AntisymmetricField(module.input_size, module.hidden_size, bias=module.V.bias is not None,
                               gamma=module.gamma, dtype=module.W.dtype)
        f.V = module.V
        f.W = module.W
        return TorchEquivalentODERNN([f], dt=module.eps, source="AntisymmetricRNNCell")
    supported = ", ".join(c.__name__ for c in _TORCH_LAYERS) + \
        ", URNNCell, ResidualRNNCell, AntisymmetricRNNCell, ODERNN"
    raise TypeError(f"module: no exact ODERNN form is known for {type(module).__name__}; "
                    f"expected one of {supported}")
