"""Rooted trees and Runge–Kutta order conditions (Butcher's theory).

A rooted tree is represented canonically as a sorted tuple of its children
(the single-node tree is ``()``).  For a tableau (A, b, c) and a tree t,

* the stage weight vector is ``Psi(()) = 1`` and
  ``Psi([t1, ..., tm]) = prod_i (A @ Psi(t_i))`` (elementwise product),
* the elementary weight is ``Phi(t) = b @ Psi(t)``,
* the method has order p iff ``Phi(t) = 1/gamma(t)`` for every tree with ``|t| <= p``,

where ``gamma`` is the tree density.  Works for any scalar type supporting ``+``
and ``*``: ``Fraction`` (exact), ``mpmath.mpf`` (high precision) and ``float``.

>>> len(trees_of_order(5)), len(trees_of_order(10))
(9, 719)
"""

from __future__ import annotations

import threading
from functools import lru_cache
from math import prod
from operator import mul
from typing import Any, Callable, Sequence

__all__ = [
    "Tree",
    "trees_of_order",
    "trees_up_to",
    "tree_order",
    "tree_density",
    "OrderConditionEvaluator",
    "FixedPointEvaluator",
]

Tree = tuple  # recursive: tuple[Tree, ...]


@lru_cache(maxsize=None)
def tree_order(t: Tree) -> int:
    return 1 + sum(tree_order(ch) for ch in t)


@lru_cache(maxsize=None)
def tree_density(t: Tree) -> int:
    """Butcher's gamma(t) = |t| * prod gamma(children)."""
    return tree_order(t) * prod(tree_density(ch) for ch in t)


# Global canonical index: all trees of order 1, then order 2, ... each in generation order.
_ALL: list[Tree] = [()]          # trees by global index
_ORDER: list[int] = [1]          # their orders
_END: dict[int, int] = {1: 1}    # order k -> one past the last global index of order <= k
_BLOCKS: dict[tuple[int, int], list[tuple[Tree, ...]]] = {}
_LOCK = threading.RLock()  # the global index is built once, in order, by one thread


def _block(total: int, i: int) -> list[tuple[Tree, ...]]:
    """Non-decreasing (by global index) child sequences of total order ``total`` whose first
    child is tree ``i``, in lexicographic order of the index sequences (memoised)."""
    key = (total, i)
    out = _BLOCKS.get(key)
    if out is None:
        t, k = _ALL[i], _ORDER[i]
        if k == total:
            out = [(t,)]
        else:
            rem = total - k
            out = [(t,) + rest for j in range(i, _END[rem]) for rest in _block(rem, j)]
        _BLOCKS[key] = out
    return out


@lru_cache(maxsize=None)
def trees_of_order(n: int) -> tuple[Tree, ...]:
    """All rooted trees with exactly ``n`` nodes, canonical and without repeats.

    A tree of order ``n`` is the multiset of its children (total order ``n - 1``), written
    as the children sorted by their global index (order first, then position within
    :func:`trees_of_order` of that order).  The sequences are generated as "first child
    ``i``, then a non-decreasing sequence starting at ``i`` of the remaining order", with the
    blocks memoised, so each tree is built once from already built tuples (order 14:
    32973 trees in well under a second).

    >>> trees_of_order(3)
    (((), ()), (((),),))
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n: expected a positive integer tree order, got {n!r}")
    if n == 1:
        return ((),)
    with _LOCK:
        for k in range(2, n):  # make sure every smaller order has its global indices
            trees_of_order(k)
        rem = n - 1
        out = tuple(seq for i in range(_END[rem]) for seq in _block(rem, i))
        if n not in _END:
            _ALL.extend(out)
            _ORDER.extend([n] * len(out))
            _END[n] = len(_ALL)
        return out


def trees_up_to(p: int) -> list[Tree]:
    return [t for k in range(1, p + 1) for t in trees_of_order(k)]


class OrderConditionEvaluator:
    """Evaluates elementary weights of one tableau, memoising ``A @ Psi(t)`` per subtree.

    ``A`` is a list of rows, ``b`` and ``one``/``zero`` the scalars of the chosen
    arithmetic.  Zero entries of A (the upper triangle of an explicit tableau, and the
    many structural zeros of methods such as Feagin's) are skipped.  Only ``A @ Psi(t)``
    is cached (it is what a parent tree needs); ``Psi(t)`` itself is rebuilt from the
    cached vectors of the children, so memory grows with the number of trees used as
    subtrees (orders ``< p``), not with all the trees of order ``p``.

    >>> from fractions import Fraction as F
    >>> ev = OrderConditionEvaluator([[0, 0], [F(1, 2), 0]], [0, 1], F(1), F(0))
    >>> ev.residual(((),))  # midpoint rule: Phi([tau]) = c . b = 1/2
    Fraction(0, 1)
    """

    def __init__(self, A: Sequence[Sequence[Any]], b: Sequence[Any], one: Any, zero: Any) -> None:
        self.s = len(b)
        self.b = list(b)
        self.one, self.zero = one, zero
        # sparse rows: indices and values of the nonzero a_ij
        self.rows = [([j for j, a in enumerate(row) if a != 0], [a for a in row if a != 0]) for row in A]
        self._ones = [one] * self.s
        self._apsi: dict[Tree, list[Any]] = {}

    def _A_times(self, v: list[Any]) -> list[Any]:
        zero, get = self.zero, v.__getitem__
        return [sum(map(mul, vals, map(get, idx)), zero) for idx, vals in self.rows]

    def _product(self, vecs: list[list[Any]]) -> list[Any]:
        r = vecs[0]
        for v in vecs[1:]:
            r = list(map(mul, r, v))
        return r

    def apsi(self, t: Tree) -> list[Any]:
        """``A @ Psi(t)`` (cached)."""
        r = self._apsi.get(t)
        if r is None:
            r = self._A_times(self.psi(t))
            self._apsi[t] = r
        return r

    def psi(self, t: Tree) -> list[Any]:
        """Stage weights ``Psi(t)``: the elementwise product of ``A @ Psi(child)``."""
        if not t:
            return self._ones
        return self._product([self.apsi(ch) for ch in t])

    def phi(self, t: Tree, weights: Sequence[Any] | None = None) -> Any:
        """Elementary weight ``weights @ Psi(t)`` (``weights`` defaults to ``b``)."""
        w = self.b if weights is None else weights
        p = self.psi(t)
        return sum((wi * pi for wi, pi in zip(w, p) if wi != 0), self.zero)

    def residual(self, t: Tree, weights: Sequence[Any] | None = None,
                 inv: Callable[[int], Any] | None = None) -> Any:
        """``Phi(t) - 1/gamma(t)``."""
        g = tree_density(t)
        target = inv(g) if inv is not None else self.one / g
        return self.phi(t, weights) - target


class FixedPointEvaluator(OrderConditionEvaluator):
    """:class:`OrderConditionEvaluator` in binary fixed point: every number ``x`` is the
    Python integer ``round(x * 2**bits)``.

    Used for high-precision (non-rational) tableaux instead of mpmath numbers: integer
    products and sums are an order of magnitude faster, which makes 35-stage,
    order-14 checks (Feagin14, 53k trees) practical.  Each product is truncated back to
    ``bits`` fractional bits, an absolute error of at most ``2**-bits`` per operation;
    the caller chooses ``bits`` with enough guard bits for the growth of these errors
    through the tree (see :mod:`odernn_bridge.methods.order`).  Residuals are returned
    as scaled integers: ``residual(t) * 2**-bits`` is ``Phi(t) - 1/gamma(t)``.

    >>> ev = FixedPointEvaluator([[0, 0], [1 << 9, 0]], [0, 1 << 10], bits=10)  # midpoint
    >>> ev.residual(((),)), ev.residual(((), ()))  # 1/2 - 1/2 and 1/4 - 1/3, times 2**10
    (0, -85)
    """

    def __init__(self, A: Sequence[Sequence[int]], b: Sequence[int], bits: int) -> None:
        if not isinstance(bits, int) or bits < 1:
            raise ValueError(f"bits: expected a positive number of fractional bits, got {bits!r}")
        self.bits = bits
        super().__init__(A, b, 1 << bits, 0)

    def _A_times(self, v: list[Any]) -> list[Any]:
        bits, get = self.bits, v.__getitem__
        return [sum(map(mul, vals, map(get, idx)), 0) >> bits for idx, vals in self.rows]

    def _product(self, vecs: list[list[Any]]) -> list[Any]:
        r = vecs[0]
        bits = self.bits
        for v in vecs[1:]:
            r = [(x * y) >> bits for x, y in zip(r, v)]
        return r

    def phi(self, t: Tree, weights: Sequence[Any] | None = None) -> Any:
        w = self.b if weights is None else weights
        p = self.psi(t)
        return sum((wi * pi for wi, pi in zip(w, p) if wi != 0), 0) >> self.bits

    def residual(self, t: Tree, weights: Sequence[Any] | None = None,
                 inv: Callable[[int], Any] | None = None) -> Any:
        """``(Phi(t) - 1/gamma(t)) * 2**bits`` as an integer."""
        g = tree_density(t)
        target = ((1 << (self.bits + 1)) // g + 1) >> 1  # round(2**bits / g)
        return self.phi(t, weights) - target
