"""Cross-validation of methods and torch cells against a reference backend.

>>> import odernn_bridge as ob
>>> ds = ob.validate("RK4", "linear", dts=[0.1, 0.05, 0.025], backend="scipy")
>>> ds.attrs["verdict"]
'pass'
"""

from .core import DEFAULT_TOLERANCE, observed_order, validate, validate_sweep, verdict
from .steppers import CellStepper, MethodStepper, field_problem

__all__ = ["validate", "validate_sweep", "observed_order", "verdict", "field_problem", "DEFAULT_TOLERANCE",
           "MethodStepper", "CellStepper"]
