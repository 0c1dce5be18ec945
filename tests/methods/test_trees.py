"""Rooted trees and order conditions against known counts and classical results."""

from __future__ import annotations

from fractions import Fraction

import pytest

import odernn_bridge as ob
from odernn_bridge.methods.order import order_residuals
from odernn_bridge.methods.trees import tree_density, tree_order, trees_of_order, trees_up_to


def test_tree_counts_match_oeis_a000081():
    # A000081: number of rooted trees with n nodes
    assert [len(trees_of_order(n)) for n in range(1, 11)] == [1, 1, 2, 4, 9, 20, 48, 115, 286, 719]
    assert len(trees_up_to(8)) == 200  # the 200 conditions of an 8th-order method


def test_trees_are_distinct_and_of_the_right_order():
    ts = trees_of_order(7)
    assert len(set(ts)) == len(ts)
    assert all(tree_order(t) == 7 for t in ts)


def test_densities():
    # gamma of the bushy tree [tau^m] is m+1; of the tall tree of n nodes is n!
    assert tree_density(((),) * 4) == 5
    tall = ()
    for _ in range(4):
        tall = (tall,)
    assert tree_density(tall) == 120


def test_sum_of_inverse_densities_times_symmetry():
    # sum over trees of order n of n!/(gamma*sigma) = n^(n-1) (Cayley); check via alpha(t)
    # alpha(t) = n!/(gamma(t) sigma(t)) counts labellings; sum_t alpha(t) = (n-1)!... use known:
    # the number of monotonically labelled trees with n nodes is (n-1)!
    from math import factorial

    def sigma(t):
        from collections import Counter

        s = 1
        for ch, k in Counter(t).items():
            s *= factorial(k) * sigma(ch) ** k
        return s

    for n in range(1, 9):
        total = sum(Fraction(factorial(n), tree_density(t) * sigma(t)) for t in trees_of_order(n))
        assert total == factorial(n - 1)


def test_rk4_residuals_at_order_5_nonzero():
    res = order_residuals(ob.get_method("RK4"), 5)
    assert len(res) == 9
    assert any(abs(r) > 1e-6 for _, r in res)
    assert all(abs(r) == 0 for _, r in order_residuals(ob.get_method("RK4"), 4))


@pytest.mark.parametrize("name, order", [("Euler", 1), ("Midpoint", 2), ("RK4", 4)])
def test_classical_orders(name, order):
    assert ob.verify_order(ob.get_method(name)) == order
