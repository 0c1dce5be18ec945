"""Observed convergence order of every catalogue method of order <= 8 against its nominal order.

Explicit methods: Van der Pol (mu = 1, smooth, nonlinear).  Implicit methods: Van der Pol with
mu = 3 (mildly stiff).  Orders <= 4 run in float64 over the whole span; orders 5-8 run in
mpmath (40 digits) against a 50-digit Taylor-series reference over a quarter of a time unit:
in float64 their asymptotic range lies below round-off (e.g. Vern7 on Van der Pol shows
pairwise orders 8.3-8.8 down to errors of 1e-13 and settles to 7 only near 1e-20; DP5 shows
6.5-6.9 above 1e-12).  ``dts=None`` lets validate pick halving steps whose pairwise orders have
settled; the verdict is |observed - nominal| <= 0.3.
"""

from __future__ import annotations

import pytest

import odernn_bridge as ob
from odernn_bridge.reference import get_problem

TOL = 0.3


def _methods(*kinds: str) -> list[str]:
    out = []
    for kind in kinds:
        for name in ob.list_methods(kind):
            if ob.get_method(name).order <= 8:
                out.append(name)
    return out


EXPLICIT = _methods("explicit")
IMPLICIT = _methods("implicit", "diagonally_implicit")

# Methods whose asymptotic range cannot be reached in the precision their coefficients carry:
# the catalogue stores them as published decimals (Calvo6: 15 digits, DormandPrince8: 18) and the
# order-6/8 regime starts below that floor; validate reports "inconclusive".
COEFFICIENT_LIMITED = {"Calvo6", "DormandPrince8"}
# RKV76IIa (Verner's "most efficient" 7(6)): its order-8 residuals are <= 8e-6, so the global error
# is dominated by the dt^8 terms down to dt ~ 1e-3 and passes through a cancellation between the
# dt^7 and dt^8 terms there (pairwise orders 9.1 -> 6.9 -> 6.2 on [0, 1/16]); the order-7 regime
# lies below dt ~ 1e-4, beyond what this test affords in 40-digit arithmetic.
TINY_PRINCIPAL_ERROR = {"RKV76IIa"}


def _check(name: str, problem: str, mp_span: float) -> None:
    m = ob.get_method(name)
    ds = ob.validate(name, problem, backend="scipy") if m.order <= 4 else None
    if ds is None or ds.attrs["verdict"] == "inconclusive":
        # orders >= 5 (and low-order methods whose float64 run is not asymptotic above round-off)
        short = get_problem(problem).with_tspan((0.0, mp_span))
        ds = ob.validate(name, short, backend="scipy", precision="mp", dps=40, n_dts=4, max_steps=128)
        if ds.attrs["verdict"] != "pass" and name not in COEFFICIENT_LIMITED | TINY_PRINCIPAL_ERROR:
            # methods with tiny principal error coefficients (Vern7; RKV76IIa, whose order-8
            # residuals are ~1e-6) reach their asymptotic regime only for dt below ~1e-3: same
            # problem over a shorter span, so that such steps stay affordable in mpmath
            shorter = get_problem(problem).with_tspan((0.0, mp_span / 4))
            ds = ob.validate(name, shorter, backend="scipy", precision="mp", dps=40, n_dts=4, max_steps=512)
    observed = float(ds.observed_order)
    if name in TINY_PRINCIPAL_ERROR and ds.attrs["verdict"] != "pass":
        pytest.xfail(f"{name}: asymptotic regime below dt ~ 1e-4 (observed {observed:.2f}, pairwise "
                     f"{ds.pairwise_order.values[1:].round(2).tolist()})")
    if name in COEFFICIENT_LIMITED and ds.attrs["verdict"] != "pass":
        pytest.xfail(f"{name}: decimal coefficients limit the attainable error (verdict "
                     f"{ds.attrs['verdict']}, observed {observed:.2f}, floor {ds.attrs['floor']:.1e})")
    assert ds.attrs["verdict"] == "pass", (name, observed, ds.pairwise_order.values)
    assert abs(observed - m.order) <= TOL
    assert int(ds.nominal_order) == m.order and ds.sizes["dt"] >= 3


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPLICIT)
def test_explicit_observed_order(name: str) -> None:
    _check(name, "vanderpol", 0.25)


@pytest.mark.slow
@pytest.mark.parametrize("name", IMPLICIT)
def test_implicit_observed_order(name: str) -> None:
    _check(name, "vanderpol_mild", 0.25)


def test_catalogue_was_collected() -> None:
    assert {"Euler", "Midpoint", "RK4"} <= set(EXPLICIT)
