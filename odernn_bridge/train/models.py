"""Sequence models for the training tasks: a recurrent layer plus a linear read-out.

``SequenceModel(model="odernn")`` wraps :class:`odernn_bridge.cells.ODERNN`; ``"lstm"``,
``"gru"`` and ``"rnn"`` wrap the PyTorch layers of the same name, as baselines.  Inputs are
batch first, ``(batch, time, features)``; the output is ``(batch, out)`` for
``target="last"`` (a classifier on the last hidden state) or ``(batch, time, out)`` for
``target="sequence"``.

>>> m = SequenceModel(1, 16, 10, model="lstm")
>>> m(torch.zeros(4, 7, 1)).shape
torch.Size([4, 10])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._checks import check_positive_int

__all__ = ["SequenceModel", "MODELS"]

MODELS = ("odernn", "lstm", "gru", "rnn")


class SequenceModel(nn.Module):
    """A recurrent layer (ODERNN or a PyTorch baseline) followed by ``nn.Linear``.

    ``method``, ``dt``, ``field``, ``substeps`` and ``cell_kwargs`` are used only by the
    ODERNN; ``num_layers``/``dropout`` by all.  ``.rnn`` is the recurrent layer (what a
    stability monitor inspects), ``.head`` the read-out.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, *, model: str = "odernn",
                 method: str = "RK4", dt: float = 1.0, field: Any = "elman", num_layers: int = 1,
                 dropout: float = 0.0, substeps: int = 1, target: str = "last",
                 cell_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("output_size", output_size),
                            ("num_layers", num_layers)):
            check_positive_int(value, name)
        if model not in MODELS:
            raise ValueError(f"model: expected one of {MODELS}, got {model!r}")
        if target not in ("last", "sequence"):
            raise ValueError(f"target: expected 'last' or 'sequence', got {target!r}")
        self.kind = model
        self.target = target
        if model == "odernn":
            from ..cells import ODERNN

            self.rnn: nn.Module = ODERNN(input_size, hidden_size, method=method, dt=dt, field=field,
                                         num_layers=num_layers, batch_first=True, dropout=dropout,
                                         substeps=substeps, **(cell_kwargs or {}))
        else:
            cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[model]
            self.rnn = cls(input_size, hidden_size, num_layers=num_layers, batch_first=True, dropout=dropout)
        self.head = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (batch, time, features) -> logits/predictions, see the class docstring."""
        if x.ndim != 3:
            raise ValueError(f"x: expected a (batch, time, features) tensor, got shape {tuple(x.shape)}")
        out, _ = self.rnn(x)
        if self.target == "last":
            out = out[:, -1]
        return self.head(out)
