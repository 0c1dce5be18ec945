"""Linear multistep methods of the catalogue (``methods/families.py``).

All coefficients are exact Fractions, so orders and error constants are compared exactly
(error constants as Fractions; the float property ``error_constant`` to 1e-15).
Convention (multistep.py): sum_j alpha_j y_{n+j} = dt sum_j beta_j f_{n+j}, alpha_k = 1;
error constant C_{p+1}/sigma(1) (Hairer–Nørsett–Wanner I, III.2 (2.13)).
"""

from __future__ import annotations

from fractions import Fraction as Fr

import numpy as np
import pytest

import odernn_bridge as ob
from odernn_bridge import LinearMultistep, MethodFormatError, MethodValidationError, OrderConditionError
from odernn_bridge.methods import families
from odernn_bridge.methods.order import lmm_error_constants

MULTISTEP = ob.list_methods("multistep")

EXPLICIT = {f"AB{k}" for k in range(1, 7)} | {f"Nystrom{k}" for k in range(3, 7)} | {"Leapfrog", "Milne4"}

#: C_{p+1} with alpha_k = 1 (Lambert; HNW I Tables III.1.1-1.3)
C_P1 = {
    "AB1": Fr(1, 2), "AB2": Fr(5, 12), "AB3": Fr(3, 8), "AB4": Fr(251, 720), "AB5": Fr(95, 288),
    "AB6": Fr(19087, 60480),
    "AM1": Fr(-1, 12), "AM2": Fr(-1, 24), "AM3": Fr(-19, 720), "AM4": Fr(-3, 160), "AM5": Fr(-863, 60480),
    "AM6": Fr(-275, 24192),
    "BDF1": Fr(-1, 2), "BDF2": Fr(-2, 9), "BDF3": Fr(-3, 22), "BDF4": Fr(-12, 125), "BDF5": Fr(-10, 137),
    "BDF6": Fr(-20, 343),
    "Leapfrog": Fr(1, 3), "MilneSimpson": Fr(-1, 90), "Milne4": Fr(14, 45),
}


def test_catalogue_has_the_requested_multistep_methods() -> None:
    wanted = {f"{f}{k}" for f in ("AB", "AM", "BDF") for k in range(1, 7)}
    wanted |= {"Nystrom3", "Nystrom4", "MilneSimpson", "Leapfrog"}
    assert wanted <= set(MULTISTEP)


@pytest.mark.parametrize("name", MULTISTEP)
def test_orders_consistency_and_flags(name: str) -> None:
    m = ob.get_method(name)
    assert isinstance(m, LinearMultistep)
    assert m.exact is not None  # exact Fractions
    assert ob.verify_order(m) == m.verified_order() == m.order
    alpha, beta = m.alpha_exact, m.beta_exact
    assert alpha[-1] == 1 and sum(alpha) == 0
    assert sum(j * a for j, a in enumerate(alpha)) == sum(beta)  # rho'(1) = sigma(1)
    assert m.explicit == (name in EXPLICIT) and m.implicit == (name not in EXPLICIT)
    assert m.citation and m.description
    assert ob.method_info(name)["kind"] == "multistep"


@pytest.mark.parametrize("name", sorted(C_P1))
def test_error_constants(name: str) -> None:
    m = ob.get_method(name)
    p = m.order
    consts = lmm_error_constants(list(m.alpha_exact), list(m.beta_exact), p + 1)
    assert all(c == 0 for c in consts[: p + 1])
    assert consts[p + 1] == C_P1[name]
    # the library's normalisation divides by sigma(1)
    assert m.error_constant == pytest.approx(float(C_P1[name] / sum(m.beta_exact)), abs=1e-15)


def test_normalised_error_constants_of_examples() -> None:
    # C_{p+1}/sigma(1): AB2 5/12, trapezoid -1/12 (sigma(1) = 1 for Adams), BDF2 -1/3 (= -2/9 / (2/3)),
    # BDFk -1/(k+1), leapfrog 1/6, Milne–Simpson -1/180
    assert ob.get_method("AB2").error_constant == pytest.approx(5 / 12, abs=1e-16)
    assert ob.get_method("AM1").error_constant == pytest.approx(-1 / 12, abs=1e-16)
    for k in range(1, 7):
        assert ob.get_method(f"BDF{k}").error_constant == pytest.approx(-1 / (k + 1), abs=1e-15)
    assert ob.get_method("Leapfrog").error_constant == pytest.approx(1 / 6, abs=1e-16)
    assert ob.get_method("MilneSimpson").error_constant == pytest.approx(-1 / 180, abs=1e-16)


def test_known_coefficients() -> None:
    ab4 = ob.get_method("AB4")
    assert list(ab4.beta_exact) == [Fr(-9, 24), Fr(37, 24), Fr(-59, 24), Fr(55, 24), 0]
    am3 = ob.get_method("AM3")
    assert list(am3.beta_exact) == [Fr(1, 24), Fr(-5, 24), Fr(19, 24), Fr(9, 24)]  # 3 steps
    bdf3 = ob.get_method("BDF3")
    assert list(bdf3.alpha_exact) == [Fr(-2, 11), Fr(9, 11), Fr(-18, 11), 1]
    assert list(bdf3.beta_exact) == [0, 0, 0, Fr(6, 11)]
    bdf6 = ob.get_method("BDF6")
    assert list(bdf6.alpha_exact) == [Fr(10, 147), Fr(-72, 147), Fr(225, 147), Fr(-400, 147), Fr(450, 147),
                                      Fr(-360, 147), 1]
    assert bdf6.beta_exact[-1] == Fr(20, 49)
    ms = ob.get_method("MilneSimpson")
    assert list(ms.alpha_exact) == [-1, 0, 1] and list(ms.beta_exact) == [Fr(1, 3), Fr(4, 3), Fr(1, 3)]
    lf = ob.get_method("Leapfrog")
    assert list(lf.alpha_exact) == [-1, 0, 1] and list(lf.beta_exact) == [0, 2, 0]
    n3 = ob.get_method("Nystrom3")
    assert list(n3.beta_exact) == [Fr(1, 3), Fr(-2, 3), Fr(7, 3), 0]


def test_adams_moulton_convention_matches_abm_pairs() -> None:
    # AMk = k steps, order k+1; OrdinaryDiffEq's ABM32/ABM43/ABM54 pair AB(k+1) with AM(k)
    for k in range(1, 7):
        m = ob.get_method(f"AM{k}")
        assert (m.steps, m.order) == (k, k + 1)
    for p, c in ((3, 2), (4, 3), (5, 4)):
        assert ob.get_method(f"AB{p}").order == ob.get_method(f"AM{c}").order == p
    # the zero-step Adams–Moulton method is backward Euler = BDF1
    assert ob.get_method("AM0").name == "BDF1"
    assert ob.get_method("Nystrom2").name == "Leapfrog"
    assert ob.get_method("adamsbashforth3").name == "AB3"


@pytest.mark.parametrize("name", MULTISTEP)
def test_root_condition(name: str) -> None:
    # zero stability: roots of rho in the closed unit disc, those on the circle simple
    m = ob.get_method(name)
    roots = np.roots(m.alpha[::-1])
    assert np.all(np.abs(roots) <= 1 + 1e-9)
    on_circle = roots[np.abs(np.abs(roots) - 1) < 1e-6]
    for r in on_circle:
        assert np.sum(np.abs(on_circle - r) < 1e-6) == 1
    # weakly stable (root -1) exactly for the Nyström/Milne family
    has_minus_one = np.any(np.abs(roots + 1) < 1e-9)
    assert has_minus_one == (name.startswith(("Nystrom", "Milne")) or name == "Leapfrog")


def test_bdf7_is_not_offered() -> None:
    # BDF7 violates the root condition; the factory stops at 6
    with pytest.raises(ValueError, match="k:"):
        families.bdf(7)
    with pytest.raises(ValueError, match="k:"):
        families.adams_bashforth(0)
    with pytest.raises(ValueError, match="k:"):
        families.nystrom(1)


# -- bad input to LinearMultistep -----------------------------------------------------------

def test_mismatched_lengths_raise() -> None:
    with pytest.raises(MethodValidationError, match="beta"):
        LinearMultistep([0, -1, 1], [0, 1])


def test_too_short_raises() -> None:
    with pytest.raises(MethodValidationError, match="alpha"):
        LinearMultistep([1], [1])


def test_zero_leading_coefficient_raises() -> None:
    with pytest.raises(MethodValidationError, match="alpha_k"):
        LinearMultistep([-1, 1, 0], [0, 1, 0])


def test_inconsistent_methods_raise() -> None:
    with pytest.raises(MethodValidationError, match="sum to 0"):
        LinearMultistep([1, 1], [0, 1])  # rho(1) != 0
    with pytest.raises(MethodValidationError, match="inconsistent"):
        LinearMultistep([-1, 1], [0, 2])  # rho'(1) != sigma(1)


def test_overclaimed_order_raises() -> None:
    with pytest.raises(OrderConditionError, match="order"):
        LinearMultistep([-1, 1], [0, 1], order=2, name="BE")


def test_non_finite_coefficients_raise() -> None:
    with pytest.raises(MethodFormatError, match="finite"):
        LinearMultistep([-1, 1], [float("nan"), 1])
