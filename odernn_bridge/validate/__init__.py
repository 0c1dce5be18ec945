"""Cross-validation of methods and torch cells against a reference backend.

>>> import odernn_bridge as ob
>>> ds = ob.validate("RK4", "linear", dts=[0.1, 0.05, 0.025], backend="scipy")
>>> ds.attrs["verdict"]
'pass'
"""

import inspect as _inspect
import sys as _sys
import types as _types

from .agreement import cell_agreement
from .core import DEFAULT_TOLERANCE, observed_order, validate, validate_sweep, verdict, verdict_reason
from .steppers import CellStepper, MethodStepper, field_problem

__all__ = ["validate", "cell_agreement", "validate_sweep", "observed_order", "verdict", "verdict_reason", "field_problem",
           "DEFAULT_TOLERANCE",
           "MethodStepper", "CellStepper"]


class _CallableModule(_types.ModuleType):
    """``odernn_bridge.validate`` is both this package and the function ``ob.validate``: once the
    package is imported, Python binds the *module* to the parent's ``validate`` attribute, so
    the module forwards calls to :func:`validate`."""

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return validate(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
# ``inspect.signature(ob.validate)`` (help, IDEs) then shows the function's parameters whichever
# object ``ob.validate`` is at the moment
__signature__ = _inspect.signature(validate)
