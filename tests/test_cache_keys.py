"""Caches are keyed on a method's coefficients, never on id(): CPython reuses the id of a
collected tableau for the next one, and ``theory.spectra`` used to hand the new tableau the old
one's ray exits (1242/1500 wrong in a direct probe; a stable step 5.71 reported for a true 2.67).
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

import odernn_bridge as ob
from odernn_bridge._cache import LRUCache, content_key
from odernn_bridge.reference.integrators import tableau_arrays
from odernn_bridge.stability import function as _function
from odernn_bridge.theory import spectra


def _two_stage(c: Fraction) -> ob.ButcherTableau:
    # R(z) = 1 + z + c z²  (A21 = 1/2, b = (1 - 2c, 2c))
    return ob.ButcherTableau([[0, 0], [Fraction(1, 2), 0]], [1 - 2 * c, 2 * c])


def _real_interval(c: Fraction) -> float:
    """First x > 0 with |1 − x + c x²| = 1, in closed form (independent of the library)."""
    cf = float(c)
    plus_one = 1 / cf                                   # R(−x) = 1 again
    disc = 1 - 8 * cf                                   # R(−x) = −1: c x² − x + 2 = 0
    minus_one = (1 - math.sqrt(disc)) / (2 * cf) if disc >= 0 else math.inf
    return min(plus_one, minus_one)


def test_spectra_caches_survive_id_reuse() -> None:
    lam = np.array([[-1.0 + 0.0j]])
    ids, wrong, n = set(), [], 200
    for i in range(n):
        # free each tableau as soon as it is dropped (the stability-function cache would keep
        # it alive), so that the next one can take its id
        c = Fraction(i + 20, 8 * (n + 40))       # c in (0, 1/8): both crossings exist
        m = _two_stage(c)
        ids.add(id(m))
        _, overall = spectra.approx_max_stable_dt(m, lam)
        if not overall == pytest.approx(_real_interval(c), rel=1e-9):
            wrong.append((i, overall, _real_interval(c)))
        del m
        _function._all_functions_named.cache_clear()
    # the probe is meaningful only if CPython did reuse ids
    assert len(ids) < n
    assert not wrong, f"{len(wrong)}/{n} wrong, e.g. {wrong[:3]}"


def test_mp_coefficient_arrays_follow_the_coefficients() -> None:
    for i in range(50):
        w = Fraction(i + 1, 101)
        m = ob.ButcherTableau([[0, 0], [1, 0]], [1 - w, w])
        A, b, c = tableau_arrays(m, dps=30)
        assert b[1] == pytest.approx(float(w), rel=1e-15)
        del m, A, b, c


def test_content_key_separates_decimal_from_equal_rational() -> None:
    exact = ob.ButcherTableau([[0, 0], [Fraction(1, 2), 0]], [0, 1])
    decimal = ob.ButcherTableau([[0, 0], [Decimal("0.50000000000000000"), 0]], [0, 1])
    assert exact == decimal                       # equal values ...
    assert content_key(exact) != content_key(decimal)  # ... analysed differently (exact vs digits)
    assert content_key(exact) == content_key(exact.with_name("renamed"))
    assert ob.stability_function(exact).exact is not None
    assert ob.stability_function(decimal).exact is None


def test_lru_cache_is_bounded() -> None:
    cache = LRUCache(maxsize=3)
    for k in range(10):
        cache.put(k, k * k)
    assert len(cache) == 3 and 9 in cache and 6 not in cache
    assert cache.get_or_compute(9, lambda: -1) == 81
    assert spectra._RAY_CACHE.maxsize <= 10_000 and spectra._EXACT_CACHE.maxsize <= 10_000
    with pytest.raises(ValueError, match="maxsize"):
        LRUCache(0)
