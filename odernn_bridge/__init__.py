"""odernn_bridge — recurrent neural networks built from numerical ODE integrators.

The method catalogue and stability analysis import without torch; the torch-based
names (cells, layers, theory, validation) are loaded on first use.

>>> import odernn_bridge as ob
>>> ob.get_method("RK4").order
4
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from .errors import (
    ConvergenceError,
    JuliaUnavailableError,
    MaxStepsWarning,
    MethodFormatError,
    MethodValidationError,
    NativeKernelError,
    NativeKernelWarning,
    NonFiniteError,
    OdernnError,
    OrderConditionError,
    SweepResumeError,
    UnknownMethodError,
    UnsupportedOperationError,
)
from .methods import (
    ButcherTableau,
    LinearMultistep,
    dumps_method,
    get_method,
    list_methods,
    load_method,
    loads_method,
    method_info,
    register_method,
    save_method,
    verify_embedded_order,
    verify_order,
    verify_stage_order,
)

# name -> module that defines it; imported lazily (torch, xarray, matplotlib live there)
_LAZY: dict[str, str] = {
    # stability
    "stability_function": "odernn_bridge.stability",
    "stability_region": "odernn_bridge.stability",
    "stability_boundary": "odernn_bridge.stability",
    "real_stability_interval": "odernn_bridge.stability",
    "imag_stability_interval": "odernn_bridge.stability",
    "is_A_stable": "odernn_bridge.stability",
    "is_L_stable": "odernn_bridge.stability",
    "A_alpha_angle": "odernn_bridge.stability",
    "max_stable_dt": "odernn_bridge.stability",
    "plot_stability_regions": "odernn_bridge.stability",
    "root_condition": "odernn_bridge.stability",
    "boundary_locus": "odernn_bridge.stability",
    # cells
    "RKCell": "odernn_bridge.cells",
    "LearnableRKCell": "odernn_bridge.cells",
    "ODERNN": "odernn_bridge.cells",
    "AdaptiveRKCell": "odernn_bridge.cells",
    "MultistepCell": "odernn_bridge.cells",
    "HigherOrderCell": "odernn_bridge.cells",
    "CoRNNCell": "odernn_bridge.cells",
    "make_field": "odernn_bridge.cells",
    "native_status": "odernn_bridge.cells",
    # theory
    "classify": "odernn_bridge.theory",
    "as_odernn": "odernn_bridge.theory",
    "Classification": "odernn_bridge.theory",
    "stability_report": "odernn_bridge.theory",
    "StabilityMonitor": "odernn_bridge.theory",
    "QUNNCell": "odernn_bridge.theory",
    "URNNCell": "odernn_bridge.theory",
    # validation / reference
    "validate": "odernn_bridge.validate",
    "get_backend": "odernn_bridge.reference",
    "Problem": "odernn_bridge.reference",
    "get_problem": "odernn_bridge.reference",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'odernn_bridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = [
    "__version__",
    "ButcherTableau",
    "LinearMultistep",
    "get_method",
    "list_methods",
    "method_info",
    "register_method",
    "load_method",
    "loads_method",
    "save_method",
    "dumps_method",
    "verify_order",
    "verify_embedded_order",
    "verify_stage_order",
    "OdernnError",
    "MethodValidationError",
    "OrderConditionError",
    "MethodFormatError",
    "UnknownMethodError",
    "JuliaUnavailableError",
    "ConvergenceError",
    "NonFiniteError",
    "UnsupportedOperationError",
    "MaxStepsWarning",
    "SweepResumeError",
    "NativeKernelError",
    "NativeKernelWarning",
    *_LAZY,
]
