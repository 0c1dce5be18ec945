"""The n-t classification of recurrent cells (Niu, Horesh & Chuang 2019, THEORY.md §2).

* **n** — the number of Runge–Kutta stages of the cell's exact ODERNN form: how many times
  the vector field is evaluated (nested) per step;
* **t** — the temporal memory: the number of hidden-state slots one update reads — the
  derivative order of the ODE for a t-th order cell, the number of steps of a linear
  multistep method, and 2 for the LSTM, whose update reads ``[h; c]`` (eliminating c
  leaves a two-step recurrence in h; ``docs/theory.md``).

>>> import torch
>>> classify(torch.nn.GRU(3, 4))[:2]
(1, 1)
>>> classify(torch.nn.LSTM(3, 4))[:2]
(1, 2)
"""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import nn

__all__ = ["Classification", "classify", "classify_name"]


class Classification(NamedTuple):
    """``(n, t, explanation)``: stages, temporal memory and the derivation in one sentence."""

    n: int
    t: int
    explanation: str


_KNOWN: dict[str, Classification] = {
    "RNN": Classification(1, 1, (
        "Elman RNN h⁺ = act(W h + U x + b) is explicit Euler (1 stage) with dt = 1 on "
        "f = act(W h + U x + b) − h; the update reads h_k only (t = 1).")),
    "GRU": Classification(1, 1, (
        "GRU h⁺ = (1−z)⊙n + z⊙h = h + (1−z)⊙(n − h) is explicit Euler (1 stage) with dt = 1 on "
        "f = (1−z)⊙(n − h), gates z, r and candidate n functions of (h, x); reads h_k only (t = 1).")),
    "LSTM": Classification(1, 2, (
        "LSTM: c⁺ = f⊙c + i⊙g, h⁺ = o⊙tanh(c⁺) is explicit Euler (1 stage) with dt = 1 on the "
        "augmented state [h; c] with f = [h⁺ − h; c⁺ − c]. Two memory slots (t = 2): where "
        "|h_k| < o_{k−1}, c_k = artanh(h_k / o_{k−1}) with o_{k−1} = σ(W_o h_{k−1} + U_o x_{k−1} + b_o), "
        "so h_{k+1} = G(h_k, h_{k−1}, x_k, x_{k−1}) is a two-step recurrence in h — a second-order "
        "(t = 2) ODERNN in the paper's sense.")),
    "URNN": Classification(1, 1, (
        "Unitary RNN h⁺ = σ(Q h + V x), Q orthogonal/unitary, is explicit Euler (1 stage) with dt = 1 on "
        "f = σ(Q h + V x) − h; reads h_k only (t = 1).")),
    "ResidualRNN": Classification(1, 1, (
        "Residual RNN h⁺ = h + dt·tanh(W h + U x + b) is explicit Euler (1 stage) on "
        "f = tanh(W h + U x + b); t = 1.")),
    "AntisymmetricRNN": Classification(1, 1, (
        "AntisymmetricRNN h⁺ = h + ε·tanh((W − Wᵀ − γI) h + V x + b) is explicit Euler (1 stage) with "
        "dt = ε on an (almost) skew field; t = 1.")),
    "coRNN": Classification(1, 2, (
        "coRNN y'' = tanh(W y + 𝒲 y' + V x + b) − γ y − ε y' is a second-order ODE (t = 2) advanced by one "
        "(semi-implicit/symplectic) Euler step on [y; y'] per input: one field evaluation (n = 1).")),
}

_ALIASES = {
    "RNNCell": "RNN", "GRUCell": "GRU", "LSTMCell": "LSTM", "URNNCell": "URNN",
    "ResidualRNNCell": "ResidualRNN", "AntisymmetricRNNCell": "AntisymmetricRNN",
    "CoRNNCell": "coRNN", "Elman": "RNN",
}


def classify_name(name: str) -> Classification:
    """Classification of a named architecture (``"LSTM"``, ``"GRUCell"``, ``"coRNN"``, …)."""
    key = _ALIASES.get(name, name)
    if key not in _KNOWN:
        raise LookupError(f"name: unknown architecture {name!r}; expected one of "
                          f"{sorted(set(_KNOWN) | set(_ALIASES))}")
    return _KNOWN[key]


def _method_name(m: Any) -> str:
    return str(getattr(m, "name", m))


def _classify_cell(cell: nn.Module, layers: int = 1) -> Classification:
    """Read (n, t) from an ODERNN cell: n = stages of its method, t = memory."""
    from ..methods import LinearMultistep

    field = getattr(cell, "field", None)
    method = getattr(cell, "method", None)
    lay = f" ({layers} stacked layers, each of this class)" if layers > 1 else ""
    cname = type(cell).__name__
    if cname == "CoRNNCell":
        return _KNOWN["coRNN"]
    order = None
    for attr in ("order", "derivative_order", "ode_order"):
        v = getattr(cell, attr, None)
        if isinstance(v, int) and not isinstance(v, bool):
            order = v
            break
    if isinstance(method, LinearMultistep):
        k = method.steps
        impl = "implicit" if method.implicit else "explicit"
        return Classification(1, k, (
            f"{cname} with the {k}-step {impl} linear multistep method {method.name}: one new field "
            f"evaluation per step (n = 1); the update reads the {k} previous states (t = {k}){lay}."))
    if isinstance(method, str) and isinstance(getattr(cell, "stages", None), int):
        n = int(cell.stages)
        t = order or 2
        return Classification(n, t, (
            f"{cname} with the {method} scheme for a second-order ODE: {n} field evaluation(s) per step "
            f"(n = {n}); state [h, h'] (t = {t}){lay}."))
    if method is None or not hasattr(method, "stages"):
        raise TypeError(f"module: {cname} has no Runge–Kutta/multistep method attribute; expected an "
                        "ODERNN cell (RKCell, AdaptiveRKCell, MultistepCell, HigherOrderCell, CoRNNCell)")
    n = int(method.stages)
    kind = getattr(method, "kind", "explicit")
    if order is not None and cname == "HigherOrderCell":
        t = order
        why = (f"the field defines the order-{t} ODE h^({t}) = f(h, …, h^({t - 1}), x), integrated on the "
               f"augmented state [h, h', …, h^({t - 1})] (t = {t})")
    else:
        t = int(getattr(field, "memory_order", 1))
        why = ("the field's state carries " + (f"{t} memory slots (t = {t})" if t > 1 else
                                               "h only; the update reads h_k (t = 1)"))
    return Classification(n, t, (
        f"{cname} with the {n}-stage {kind} Runge–Kutta method {_method_name(method)} "
        f"(n = {n}: the field is evaluated {n} times per step); {why}{lay}."))


def classify(module: nn.Module) -> Classification:
    """The (n, t) class of a recurrent module, with its derivation.

    Accepts ``nn.RNN``/``GRU``/``LSTM`` and their ``*Cell``s, :class:`URNNCell`,
    :class:`ResidualRNNCell`, :class:`AntisymmetricRNNCell`, :class:`QUNNCell`, any
    :class:`~odernn_bridge.cells.ODERNN` (n = stages of its method, t = derivative order or
    multistep memory) and any single ODERNN cell (RKCell, MultistepCell, HigherOrderCell,
    CoRNNCell, …).  The exact forms returned by :func:`as_odernn` classify as their source.

    >>> import odernn_bridge as ob
    >>> ob.classify(ob.ODERNN(2, 3, method="RK4")).n
    4
    """
    from ..cells.layer import ODERNN
    from .qunn import QUNNCell

    if not isinstance(module, nn.Module):
        raise TypeError(f"module: expected a torch nn.Module, got {type(module).__name__}")
    source = getattr(module, "source", "")
    if isinstance(module, ODERNN) and source:
        return classify_name(source)
    if isinstance(module, QUNNCell):
        return module.classification()
    for torch_cls, key in ((nn.RNN, "RNN"), (nn.RNNCell, "RNN"), (nn.GRU, "GRU"), (nn.GRUCell, "GRU"),
                           (nn.LSTM, "LSTM"), (nn.LSTMCell, "LSTM")):
        if type(module) is torch_cls:
            return _KNOWN[key]
    name = type(module).__name__
    if name in _ALIASES and name != "CoRNNCell":
        return classify_name(name)
    if isinstance(module, ODERNN):
        return _classify_cell(module.cells[0], layers=module.num_layers)
    if hasattr(module, "method") and hasattr(module, "field") or name == "CoRNNCell":
        return _classify_cell(module)
    inner = getattr(module, "rnn", None)
    if isinstance(inner, nn.Module) and inner is not module:
        c = classify(inner)  # a model wrapping its recurrent layer as .rnn (e.g. the trainer's)
        return Classification(c.n, c.t, f"{name}.rnn: {c.explanation}")
    raise TypeError(f"module: cannot classify {name}; expected a torch RNN/GRU/LSTM (or *Cell), "
                    "URNNCell, ResidualRNNCell, AntisymmetricRNNCell, QUNNCell, an ODERNN or an ODERNN cell")
