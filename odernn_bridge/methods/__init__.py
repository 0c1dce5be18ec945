"""Integrators: Butcher tableaux, linear multistep methods, the catalogue, order conditions.

Imports neither torch nor SymPy eagerly.
"""

from .catalogue import KINDS, as_method, get_method, list_methods, method_info, register_method
from .multistep import LinearMultistep
from .order import verify_embedded_order, verify_order, verify_stage_order
from .serialization import dumps_method, load_method, loads_method, method_from_dict, save_method
from .tableau import ButcherTableau, ExactCoefficients

__all__ = [
    "ButcherTableau",
    "ExactCoefficients",
    "LinearMultistep",
    "KINDS",
    "get_method",
    "as_method",
    "list_methods",
    "method_info",
    "register_method",
    "verify_order",
    "verify_embedded_order",
    "verify_stage_order",
    "load_method",
    "loads_method",
    "save_method",
    "dumps_method",
    "method_from_dict",
]
