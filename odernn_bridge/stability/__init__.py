"""Stability analysis of every method: R(z), regions, intervals, A/L-stability, step sizes.

Imports neither torch nor matplotlib (plots import it on first use).

>>> import odernn_bridge as ob
>>> round(ob.real_stability_interval("RK4"), 10)
2.7852935634
"""

from .function import (
    StabilityFunction,
    internal_stability_functions,
    stability_function,
    stage_stability_functions,
)
from .intervals import (
    A_alpha_angle,
    imag_stability_interval,
    is_A_stable,
    is_L_stable,
    max_stable_dt,
    ray_exit,
    real_stability_interval,
)
from .multistep import MultistepStability, boundary_locus, max_root_modulus, root_condition
from .plot import plot_stability_regions
from .region import BoundaryCurves, stability_boundary, stability_region
from .table import stability_table

__all__ = [
    "StabilityFunction",
    "MultistepStability",
    "BoundaryCurves",
    "stability_function",
    "stage_stability_functions",
    "internal_stability_functions",
    "stability_region",
    "stability_boundary",
    "real_stability_interval",
    "imag_stability_interval",
    "ray_exit",
    "is_A_stable",
    "is_L_stable",
    "A_alpha_angle",
    "max_stable_dt",
    "plot_stability_regions",
    "root_condition",
    "boundary_locus",
    "max_root_modulus",
    "stability_table",
]
