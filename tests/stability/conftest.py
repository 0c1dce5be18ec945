"""Fixtures of the stability tests: small hand-written methods independent of the catalogue."""

from __future__ import annotations

import pytest

import odernn_bridge as ob
from odernn_bridge.errors import UnknownMethodError


def catalogue_method(name: str):
    """A catalogue method, or skip while the catalogue work that adds it has not landed."""
    try:
        return ob.get_method(name)
    except UnknownMethodError:
        pytest.skip(f"{name} is not in the catalogue yet")


@pytest.fixture(scope="session")
def implicit_midpoint() -> ob.ButcherTableau:
    return ob.ButcherTableau([["1/2"]], [1], name="my_ImplicitMidpoint", order=2)


@pytest.fixture(scope="session")
def radau2() -> ob.ButcherTableau:
    """2-stage Radau IIA, order 3 (Hairer–Wanner II, Table IV.5.5)."""
    return ob.ButcherTableau([["5/12", "-1/12"], ["3/4", "1/4"]], ["3/4", "1/4"], name="my_RadauIIA3", order=3)


@pytest.fixture(scope="session")
def bdf2() -> ob.LinearMultistep:
    return ob.LinearMultistep(["1/3", "-4/3", 1], [0, 0, "2/3"], name="my_BDF2", order=2)


@pytest.fixture(scope="session")
def ab2() -> ob.LinearMultistep:
    return ob.LinearMultistep([0, -1, 1], ["-1/2", "3/2", 0], name="my_AB2", order=2)


@pytest.fixture(scope="session")
def heun_euler() -> ob.ButcherTableau:
    """Heun's method with Euler embedded (order 2(1))."""
    return ob.ButcherTableau([[0, 0], [1, 0]], ["1/2", "1/2"], b_embedded=[1, 0], order=2,
                             embedded_order=1, name="my_HeunEuler")


@pytest.fixture(scope="session")
def sdirk_crouzeix() -> ob.ButcherTableau:
    """Crouzeix's 2-stage SDIRK of order 3, γ = 1/2 + √3/6: algebraic, non-rational R(z)."""
    g = "1/2 + sqrt(3)/6"
    return ob.ButcherTableau([[g, 0], ["-sqrt(3)/3", g]], ["1/2", "1/2"], order=3, name="my_SDIRK3")


@pytest.fixture(scope="session")
def two_islands() -> ob.ButcherTableau:
    """A 2-stage first-order method with R(z) = 1 + z + z²/10 (b₂c₂ = 1/10): its stability
    region has two components."""
    return ob.ButcherTableau([[0, 0], [1, 0]], ["9/10", "1/10"], name="my_two_islands", order=1)
