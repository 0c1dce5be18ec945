"""Reference backends for cross-validation: the embedded SciPy/mpmath backend and the
optional Julia backend (DifferentialEquations.jl through juliacall, loaded lazily).

>>> import odernn_bridge as ob
>>> ob.get_backend("scipy").solve(ob.get_problem("linear"), "RK4", dt=0.5).u.shape
(3, 1)
"""

from .backend import (
    BACKENDS,
    Backend,
    ReferenceFallbackWarning,
    Solution,
    available_backends,
    get_backend,
    imag_interval,
    real_interval,
    stability_function_values,
)
from .integrators import integrate_lmm, integrate_rk, lmm_step, rk_step
from .problems import Problem, get_problem, list_problems, register_problem
from .scipy_backend import REFERENCE_ALGS, ScipyBackend

__all__ = [
    "Backend",
    "BACKENDS",
    "Solution",
    "ReferenceFallbackWarning",
    "get_backend",
    "available_backends",
    "Problem",
    "get_problem",
    "list_problems",
    "register_problem",
    "ScipyBackend",
    "REFERENCE_ALGS",
    "rk_step",
    "integrate_rk",
    "lmm_step",
    "integrate_lmm",
    "stability_function_values",
    "real_interval",
    "imag_interval",
]
