"""ButcherTableau / LinearMultistep construction and validation."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import odernn_bridge as ob
from odernn_bridge.errors import MethodValidationError, OrderConditionError


def test_exact_coefficients_are_source_of_truth():
    m = ob.ButcherTableau([[], ["1/3"], [0, "2/3"]], ["1/4", 0, "3/4"], name="Heun3x", order=3)
    assert m.exact is not None and m.exact.rational
    assert m.exact.b == (Fraction(1, 4), Fraction(0), Fraction(3, 4))
    # float64 arrays derived from the exact values (correctly rounded)
    assert m.A[1, 0] == 1 / 3 and m.c[2] == 2 / 3
    assert m.kind == "explicit" and m.stages == 3 and m.order == 3
    assert not m.A.flags.writeable


def test_kinds_detected():
    dirk = ob.ButcherTableau([["1/2"]], [1], name="IM", order=2)
    assert dirk.kind == "diagonally_implicit"
    gauss2 = ob.ButcherTableau([["1/4", "1/4 - sqrt(3)/6"], ["1/4 + sqrt(3)/6", "1/4"]], ["1/2", "1/2"],
                               c=["1/2 - sqrt(3)/6", "1/2 + sqrt(3)/6"], name="G2", order=4)
    assert gauss2.kind == "implicit"
    assert gauss2.coefficient_kind == "algebraic"
    assert ob.verify_order(gauss2) == 4
    assert ob.verify_stage_order(gauss2) == 2


def test_fsal_detected_for_bs3_like_tableau():
    A = [[], ["1/2"], [0, "3/4"], ["2/9", "1/3", "4/9"]]
    m = ob.ButcherTableau(A, ["2/9", "1/3", "4/9", 0], b_embedded=["7/24", "1/4", "1/3", "1/8"],
                          order=3, embedded_order=2, name="BS3x")
    assert m.fsal
    assert ob.verify_embedded_order(m) == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(A=[[0, 0, 0], [1, 0, 0]], b=[0.5, 0.5]), "A"),
        (dict(A=[[0, 0], [1, 0]], b=[0.5, 0.25, 0.25]), "b"),
        (dict(A=[[0, 0], [1, 0]], b=[0.5, 0.5], c=[0, 1, 2]), "c"),
        (dict(A=[[0, 0], [float("nan"), 0]], b=[0.5, 0.5]), "finite|NaN"),
        (dict(A=[[0, 0], [1, 0]], b=[0.5, 0.6]), "sum to 1"),
        (dict(A=[[0, 0], [1, 0]], b=[0.5, 0.5], c=[0, "1/2"]), "row sum"),
        (dict(A=[[0, 0], [1, 0]], b=[0.5, 0.5], b_embedded=[1, 0, 0]), "b_embedded"),
        (dict(A=[[0, 0], [1, 0]], b=[0.5, 0.5], embedded_order=1), "embedded"),
        (dict(A=[[0, 0], [1, 0]], b=[0.5, 0.5], order=0), "order"),
    ],
)
def test_bad_tableaux_raise_clear_errors(kwargs, match):
    with pytest.raises((MethodValidationError, ob.MethodFormatError), match=match):
        ob.ButcherTableau(**kwargs)


def test_refuted_order_claim():
    # Heun's 2nd-order method claimed to be 3rd order: the tree [[tau]] condition fails
    with pytest.raises(OrderConditionError, match="order 2"):
        ob.ButcherTableau([[0, 0], [1, 0]], ["1/2", "1/2"], order=3, name="Heun")
    # an embedded claim is checked as well
    with pytest.raises(OrderConditionError, match="embedded_order"):
        ob.ButcherTableau([[0, 0], [1, 0]], ["1/2", "1/2"], b_embedded=[1, 0], order=2,
                          embedded_order=2)


def test_row_sum_exception_is_explicit():
    m = ob.ButcherTableau([[0, 0], [1, 0]], ["1/2", "1/2"], c=[0, "1/2"], check_row_sums=False, verify=False)
    assert m.c[1] == 0.5


def test_float_tableau_verified_with_tolerance():
    # Ralston's method in floats: 2/3 is not representable, so verification uses a tolerance
    m = ob.ButcherTableau(np.array([[0, 0], [2 / 3, 0]]), np.array([0.25, 0.75]), order=2)
    assert m.coefficient_kind == "decimal" and m.exact is None
    assert ob.verify_order(m) == 2


def test_order_without_claim_is_computed():
    m = ob.ButcherTableau([[], ["1/2"], [0, "1/2"], [0, 0, 1]], ["1/6", "1/3", "1/3", "1/6"])
    assert m.order == 4


def test_linear_multistep_conventions():
    ab2 = ob.LinearMultistep([0, -1, 1], ["-1/2", "3/2", 0], name="AB2x", order=2)
    assert ab2.explicit and ab2.steps == 2 and ab2.order == 2
    assert ab2.error_constant == pytest.approx(5 / 12, abs=1e-15)
    # normalisation alpha_k = 1
    bdf2 = ob.LinearMultistep([1, -4, 3], [0, 0, 2], name="BDF2x")
    assert bdf2.alpha.tolist() == pytest.approx([1 / 3, -4 / 3, 1])
    assert bdf2.implicit and bdf2.order == 2
    with pytest.raises(OrderConditionError):
        ob.LinearMultistep([0, -1, 1], [0, 0, 1], order=2)
    with pytest.raises(MethodValidationError, match="beta"):
        ob.LinearMultistep([0, -1, 1], [0, 1])
    with pytest.raises(MethodValidationError, match="sum to 0"):
        ob.LinearMultistep([0, -2, 1], [0, 0, 1])


def test_equal_methods_hash_equal_whatever_their_names():
    # __eq__ compares coefficients only; a hash that used the name broke sets and dicts
    # (found in review: Heun and a renamed copy were equal yet both kept in a set)
    heun = ob.get_method("Heun")
    renamed = heun.with_name("MyHeun")
    assert renamed == heun and hash(renamed) == hash(heun) and len({heun, renamed}) == 1
    ab2 = ob.LinearMultistep([0, -1, 1], ["-1/2", "3/2", 0], name="AB2x", order=2)
    ab2_other = ob.LinearMultistep([0, -1, 1], ["-1/2", "3/2", 0], name="AB2y", order=2)
    assert ab2 == ab2_other and len({ab2, ab2_other}) == 1


def test_verify_functions_accept_catalogue_names():
    # found in review: ob.verify_order("RK4") raised AttributeError ('str' has no _claimed_order)
    assert ob.verify_order("RK4") == 4 and ob.verify_order("AB3") == 3
    assert ob.verify_embedded_order("BS3") == 2 and ob.verify_stage_order("RadauIIA3") == 2
    with pytest.raises(TypeError, match="method"):
        ob.verify_embedded_order("AB3")
    with pytest.raises(TypeError, match="method"):
        ob.verify_order(None)


def test_renamed_copy_can_be_registered():
    # found in review: with_name kept the original's aliases, so registering a renamed copy of
    # RK4 failed with "'ClassicRK4' is already used by method 'RK4'"
    from odernn_bridge.methods import catalogue

    mine = ob.get_method("RK4").with_name("ReviewRK4Copy")
    assert mine.aliases == () and mine == ob.get_method("RK4")
    try:
        ob.register_method(mine)
        assert ob.get_method("reviewrk4copy") is mine
    finally:
        with catalogue._LOCK:
            catalogue._ENTRIES.pop("ReviewRK4Copy", None)
            catalogue._LOOKUP.pop("reviewrk4copy", None)
