"""The paper, executable (THEORY.md; derivations in ``docs/theory.md``).

* :func:`classify` — the (n, t) class of a recurrent module (:class:`Classification`);
* :func:`as_odernn` — exact ODERNN forms (same parameters, same outputs) of ``nn.RNN``,
  ``nn.GRU``, ``nn.LSTM`` (and ``*Cell``), :class:`URNNCell`, residual and antisymmetric RNNs;
* :func:`stability_report`, :class:`StabilityMonitor` — Jacobian spectra along a trajectory
  against the method's stability region; :class:`DampedAntisymmetric`,
  :class:`SpectralScaling` parametrisations;
* :class:`QUNNCell` and the parameter-count formulas.

Imports torch (layer ``theory`` of ARCHITECTURE.md: may import ``cells`` and ``stability``).
"""

from .classify import Classification, classify, classify_name
from .exact_forms import TorchEquivalentODERNN, as_odernn
from .monitor import DampedAntisymmetric, SpectralScaling, StabilityMonitor, stable_scale
from .qunn import (
    PolynomialField,
    QUNNCell,
    elman_odernn_param_count,
    lstm_param_count,
    odernn_param_count,
    pauli_matrix,
    pauli_strings,
    qunn_generator_count,
    qunn_param_count,
)
from .reference_cells import AntisymmetricRNNCell, ResidualRNNCell, URNNCell, URNNField
from .spectra import complex_eigenvalues, find_odernn, stability_report, trajectory_jacobians
from .torch_fields import GRUField, LSTMField, RNNField, modrelu

__all__ = [
    "Classification",
    "classify",
    "classify_name",
    "as_odernn",
    "TorchEquivalentODERNN",
    "stability_report",
    "trajectory_jacobians",
    "complex_eigenvalues",
    "find_odernn",
    "StabilityMonitor",
    "DampedAntisymmetric",
    "SpectralScaling",
    "stable_scale",
    "QUNNCell",
    "URNNCell",
    "URNNField",
    "ResidualRNNCell",
    "AntisymmetricRNNCell",
    "RNNField",
    "GRUField",
    "LSTMField",
    "modrelu",
    "pauli_strings",
    "pauli_matrix",
    "qunn_generator_count",
    "qunn_param_count",
    "lstm_param_count",
    "odernn_param_count",
    "elman_odernn_param_count",
    "PolynomialField",
]
