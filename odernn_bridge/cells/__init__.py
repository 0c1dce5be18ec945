"""PyTorch cells built from numerical integrators (layer ``cells`` of ARCHITECTURE.md).

* :mod:`.fields` — vector fields ``dh/dt = f(h, x)`` (Elman, leaky, gated, antisymmetric,
  user callables) with the input projection split off;
* :class:`RKCell` — any Butcher tableau (explicit, diagonally implicit, fully implicit);
* :class:`LearnableRKCell` — an explicit tableau trained under its order conditions;
* :class:`AdaptiveRKCell` — embedded pairs with per-sample step-size control;
* :class:`MultistepCell`, :class:`HigherOrderCell`, :class:`CoRNNCell` — memory-t cells;
* :class:`ODERNN` — the multi-layer layer with ``nn.RNN``'s conventions;
* :func:`native_status` — whether the fused kernel's native (C++) loop is built and used.
"""

from ._native import native_status
from .adaptive import AdaptiveRKCell
from .fields import (
    FIELDS,
    AffineForm,
    AntisymmetricField,
    CallableField,
    ElmanField,
    GatedField,
    LeakyField,
    StiffField,
    VectorField,
    make_field,
)
from .higher_order import AugmentedField, CoRNNCell, CoRNNField, HigherOrderCell
from .layer import ODERNN
from .learnable import LearnableRKCell
from .multistep import MultistepCell
from .rk import RKCell

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
    "RKCell",
    "LearnableRKCell",
    "AdaptiveRKCell",
    "MultistepCell",
    "HigherOrderCell",
    "AugmentedField",
    "CoRNNField",
    "CoRNNCell",
    "ODERNN",
    "native_status",
]
