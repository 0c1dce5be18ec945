"""VernerEfficient7 is its own 7(6) pair, not an alias of Vern7.

DiffEqDevTools' ``constructVernerEfficient7`` (OrdinaryDiffEqExplicitTableaus ``VernerEfficient7``)
has c₃ = 1633/15000, c₆ = 3872020203200/6348224000949; Vern7 (``Verner7`` there) has
c₃ = 49/450, c₆ = 3480084980/5709648941.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

import odernn_bridge as ob
from odernn_bridge.methods.order import verify_embedded_order
from odernn_bridge.reference.julia import tableau_name


def test_verner_efficient7_is_a_distinct_verified_7_6_pair() -> None:
    m = ob.get_method("VernerEfficient7")
    v7 = ob.get_method("Vern7")
    assert m.name == "VernerEfficient7" and m != v7
    assert m.exact is not None and m.exact.rational  # exact rational coefficients
    assert m.exact.c[2] == Fraction(1633, 15000) and v7.exact.c[2] == Fraction(49, 450)
    # the order conditions: exactly 7 (order 8 fails), embedded exactly 6
    assert ob.verify_order(m, max_order=8) == 7
    assert verify_embedded_order(m, max_order=7) == 6
    # an independent check of the transcription: DiffEqDevTools' stability_size for the same
    # tableau is 4.640792701835124 (ours is exact, rounded into the region)
    assert ob.real_stability_interval(m) == pytest.approx(4.640792701835124, rel=1e-12)


def test_vern7_alias_and_julia_name() -> None:
    assert "VernerEfficient7" not in ob.get_method("Vern7").aliases
    assert ob.get_method("Verner7").name == "Vern7"
    assert tableau_name("Vern7") == "Verner7"
    assert tableau_name("VernerEfficient7") == "VernerEfficient7"
