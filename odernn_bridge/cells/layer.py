"""The ``ODERNN`` layer: stacked ODE cells with ``nn.RNN``'s calling convention."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..methods import LinearMultistep, get_method
from ._validate import check_dt, check_finite, check_positive_int, check_tensor, field_dtype_device
from .fields import VectorField, make_field

__all__ = ["ODERNN"]

FieldSpec = str | VectorField | Callable[[int, int, bool], VectorField]


class ODERNN(nn.Module):
    """A multi-layer ODE-RNN: every layer integrates ``dh/dt = f_θ(h, x)`` between inputs.

    Same conventions as ``nn.RNN``: ``forward(input, h0=None) -> (output, h_n)`` with
    input (seq, batch, input_size) — (batch, seq, input_size) if ``batch_first`` — or
    unbatched (seq, input_size); output holds the last layer's ``field.readout(state)``
    at every step, ``h_n`` (num_layers, batch, state_size) the final states.

    ``field``: a name for :func:`make_field`, a :class:`VectorField` (``num_layers=1``
    only) or a factory ``(input_size, hidden_size, bias) -> VectorField``.  ``method``: a
    catalogue name or a ButcherTableau (→ :class:`RKCell`, or :class:`AdaptiveRKCell`
    with ``adaptive=True``), a LinearMultistep (→ :class:`MultistepCell`) or ``"learnable"``
    (→ :class:`LearnableRKCell`; ``stages``, ``order``, ``init``, … go to the cells).  Extra
    keyword arguments go to the cells.

    >>> import torch
    >>> rnn = ODERNN(3, 8, method="RK4", dt=0.5, num_layers=2)
    >>> out, h_n = rnn(torch.randn(5, 4, 3))
    >>> out.shape, h_n.shape
    (torch.Size([5, 4, 8]), torch.Size([2, 4, 8]))
    """

    def __init__(self, input_size: int, hidden_size: int, method: Any = "RK4", dt: float = 1.0,
                 field: FieldSpec = "elman", num_layers: int = 1, batch_first: bool = False,
                 bias: bool = True, dropout: float = 0.0, substeps: int = 1,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                 **cell_kwargs: Any) -> None:
        super().__init__()
        check_positive_int(input_size, "input_size")
        check_positive_int(hidden_size, "hidden_size")
        check_positive_int(num_layers, "num_layers")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1], got {dropout!r}")
        if isinstance(field, VectorField) and num_layers != 1:
            raise ValueError("field: a VectorField instance can only be used with num_layers=1; pass a name "
                             "or a factory (input_size, hidden_size, bias) -> VectorField for stacked layers")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.batch_first = bool(batch_first)
        self.bias = bool(bias)
        self.dropout = float(dropout)
        self.dt = check_dt(dt)
        from .higher_order import SECOND_ORDER_SCHEMES

        learnable = isinstance(method, str) and method.lower() == "learnable"
        second_order = isinstance(method, str) and method.lower() in SECOND_ORDER_SCHEMES
        m = "learnable" if learnable else (
            get_method(method) if isinstance(method, str) and not second_order else method)
        adaptive = bool(cell_kwargs.pop("adaptive", False))
        cells = []
        in_size = input_size
        for _ in range(num_layers):
            f = self._build_field(field, in_size, hidden_size, bias, dtype, device)
            cells.append(self._build_cell(f, m, dt, substeps, adaptive, cell_kwargs))
            in_size = f.output_size
        self.cells = nn.ModuleList(cells)
        self.method = m

    @staticmethod
    def _build_field(field: FieldSpec, in_size: int, hidden: int, bias: bool, dtype: Any, device: Any) -> VectorField:
        if isinstance(field, str):
            kw = {}
            if dtype is not None:
                kw["dtype"] = dtype
            if device is not None:
                kw["device"] = device
            return make_field(field, in_size, hidden, bias, **kw)
        if isinstance(field, VectorField):
            f = make_field(field, in_size, hidden, bias)
        elif callable(field):
            hint = ("field: a callable is used as a factory (input_size, hidden_size, bias) -> VectorField; "
                    "wrap a plain vector field fn(h, x) as CallableField(fn, input_size, hidden_size)")
            try:
                f = field(in_size, hidden, bias)
            except TypeError as exc:
                raise TypeError(f"{hint} (calling it failed: {exc})") from exc
            if not isinstance(f, VectorField):
                raise TypeError(f"{hint}; it returned {type(f).__name__}")
            if f.input_size != in_size or f.hidden_size != hidden:
                raise ValueError(f"field: the factory built a field with input_size={f.input_size}, "
                                 f"hidden_size={f.hidden_size}; expected {in_size}, {hidden}")
        else:
            raise TypeError(f"field: expected a name, a VectorField or a factory, got {type(field).__name__}")
        if dtype is not None or device is not None:
            f = f.to(dtype=dtype, device=device)
        return f

    @staticmethod
    def _build_cell(f: VectorField, m: Any, dt: float, substeps: int, adaptive: bool, kw: dict[str, Any]) -> nn.Module:
        order = getattr(f, "derivative_order", 1)
        if isinstance(m, str) and m == "learnable":
            if order > 1:
                raise ValueError("method: 'learnable' needs a first-order field (derivative_order=1)")
            from .learnable import LearnableRKCell

            return LearnableRKCell(f, dt=dt, substeps=substeps, **kw)
        if order > 1 or isinstance(m, str):
            from .higher_order import HigherOrderCell

            return HigherOrderCell(f, order=order, method=m, dt=dt, substeps=substeps, **kw)
        if isinstance(m, LinearMultistep):
            from .multistep import MultistepCell

            if substeps != 1:
                raise ValueError("substeps: multistep cells take one step per input (substeps=1)")
            return MultistepCell(f, m, dt=dt, **kw)
        if adaptive:
            from .adaptive import AdaptiveRKCell

            return AdaptiveRKCell(f, m, dt=dt, **kw)
        from .rk import RKCell

        return RKCell(f, m, dt=dt, substeps=substeps, **kw)

    @property
    def state_size(self) -> int:
        """Width of each layer's state (``h_n``'s last dimension)."""
        return self.cells[0].state_size

    def extra_repr(self) -> str:
        name = getattr(self.method, "name", self.method)
        return (f"{self.input_size}, {self.hidden_size}, method={name}, dt={self.dt}, "
                f"num_layers={self.num_layers}, batch_first={self.batch_first}")

    def initial_state(self, batch: int, dtype: torch.dtype | None = None,
                      device: torch.device | None = None) -> Tensor:
        """Zeros of shape (num_layers, batch, state_size)."""
        pdtype, pdevice = field_dtype_device(self)
        return torch.zeros(self.num_layers, batch, self.state_size, dtype=dtype or pdtype, device=device or pdevice)

    def forward(self, input: Tensor, h0: Tensor | None = None,
                timespans: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``timespans`` (seq, batch) — (batch, seq) if ``batch_first`` — per-sample time gaps
        between consecutive inputs (ODE-RNN style irregular sampling); adaptive cells only."""
        dtype, device = field_dtype_device(self)
        check_tensor(input, "input", ndim=(2, 3), last=self.input_size,
                     what="(seq, batch, input_size)" + (" with batch_first" if self.batch_first else ""),
                     dtype=dtype, device=device)
        unbatched = input.dim() == 2
        x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first else input)
        T, B = x.shape[0], x.shape[1]
        if T == 0:
            raise ValueError("input: the sequence is empty (length 0)")
        check_finite(x, "input")
        S = self.state_size
        if h0 is None:
            h = x.new_zeros(self.num_layers, B, S)
        else:
            if unbatched and h0.dim() == 2:
                h0 = h0.unsqueeze(1)
            check_tensor(h0, "h0", ndim=3, dtype=dtype, device=device)
            check_finite(h0, "h0")
            if h0.shape[0] != self.num_layers or h0.shape[1] != B:
                raise ValueError(f"h0: expected shape (num_layers={self.num_layers}, batch={B}, state_size={S}), "
                                 f"got {tuple(h0.shape)}")
            h = self._expand_h0(h0)
        if timespans is not None:
            from .adaptive import AdaptiveRKCell

            if not all(isinstance(c, AdaptiveRKCell) for c in self.cells):
                raise ValueError("timespans: per-sample time gaps need adaptive cells (ODERNN(..., adaptive=True))")
            if not isinstance(timespans, Tensor):
                raise TypeError(f"timespans: expected a tensor, got {type(timespans).__name__}")
            if unbatched and timespans.dim() == 1:
                timespans = timespans.unsqueeze(1)
            elif self.batch_first and timespans.dim() == 2:
                timespans = timespans.transpose(0, 1)
            if timespans.shape != (T, B):
                raise ValueError(f"timespans: expected shape (seq={T}, batch={B})"
                                 f"{' as (batch, seq) with batch_first' if self.batch_first else ''}, "
                                 f"got {tuple(timespans.shape)}")
        finals = []
        layer_in = x
        for l, cell in enumerate(self.cells):
            u_seq = cell.field.project_input(layer_in)
            if timespans is not None:
                states = cell.run_sequence(u_seq, h[l], timespans=timespans)
            else:
                states = cell.run_sequence(u_seq, h[l])
            finals.append(states[-1])
            out = cell.field.readout(states) if not hasattr(cell, "readout") else cell.readout(states)
            if self.dropout > 0 and self.training and l < self.num_layers - 1:
                out = nn.functional.dropout(out, self.dropout, training=True)
            layer_in = out
        h_n = torch.stack(finals, 0)
        output = layer_in
        if unbatched:
            return output.squeeze(1), h_n.squeeze(1)
        if self.batch_first:
            output = output.transpose(0, 1)
        return output, h_n

    def _expand_h0(self, h0: Tensor) -> Tensor:
        S = self.state_size
        if h0.shape[-1] == S:
            return h0
        cell = self.cells[0]
        if hasattr(cell, "expand_state") and h0.shape[-1] == cell.field.state_size:
            return torch.stack([c.expand_state(h0[l]) for l, c in enumerate(self.cells)], 0)
        raise ValueError(f"h0: expected last dimension state_size={S}, got shape {tuple(h0.shape)}")
