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

from functools import lru_cache
from math import prod
from typing import Any, Callable, Sequence

__all__ = [
    "Tree",
    "trees_of_order",
    "trees_up_to",
    "tree_order",
    "tree_density",
    "OrderConditionEvaluator",
]

Tree = tuple  # recursive: tuple[Tree, ...]


@lru_cache(maxsize=None)
def tree_order(t: Tree) -> int:
    return 1 + sum(tree_order(ch) for ch in t)


@lru_cache(maxsize=None)
def tree_density(t: Tree) -> int:
    """Butcher's gamma(t) = |t| * prod gamma(children)."""
    return tree_order(t) * prod(tree_density(ch) for ch in t)


def _multisets(items: Sequence[tuple[Tree, int]], total: int, start: int) -> list[tuple[Tree, ...]]:
    """All non-decreasing (by index) sequences of trees with orders summing to ``total``."""
    if total == 0:
        return [()]
    out: list[tuple[Tree, ...]] = []
    for i in range(start, len(items)):
        t, n = items[i]
        if n > total:
            continue
        for rest in _multisets(items, total - n, i):
            out.append((t,) + rest)
    return out


@lru_cache(maxsize=None)
def _ordered_trees_below(n: int) -> tuple[tuple[Tree, int], ...]:
    items: list[tuple[Tree, int]] = []
    for k in range(1, n):
        items.extend((t, k) for t in trees_of_order(k))
    return tuple(items)


@lru_cache(maxsize=None)
def trees_of_order(n: int) -> tuple[Tree, ...]:
    """All rooted trees with exactly ``n`` nodes, canonical and without repeats."""
    if n < 1:
        raise ValueError(f"n: expected a positive tree order, got {n}")
    if n == 1:
        return ((),)
    items = _ordered_trees_below(n)
    # children sequences are non-decreasing in the global index: each multiset once
    return tuple(tuple(ms) for ms in _multisets(items, n - 1, 0))


def trees_up_to(p: int) -> list[Tree]:
    return [t for k in range(1, p + 1) for t in trees_of_order(k)]


class OrderConditionEvaluator:
    """Evaluates elementary weights of one tableau, memoising ``A @ Psi(t)``.

    ``A`` is a list of rows, ``b`` and ``one``/``zero`` the scalars of the chosen
    arithmetic.  Explicit tableaux skip the zero upper triangle.
    """

    def __init__(self, A: Sequence[Sequence[Any]], b: Sequence[Any], one: Any, zero: Any) -> None:
        self.s = len(b)
        self.b = list(b)
        self.one, self.zero = one, zero
        # sparse rows: (j, a_ij) for nonzero a_ij
        self.rows = [[(j, a) for j, a in enumerate(row) if a != 0] for row in A]
        self._psi: dict[Tree, list[Any]] = {(): [one] * self.s}
        self._apsi: dict[Tree, list[Any]] = {}

    def _A_times(self, v: list[Any]) -> list[Any]:
        out = []
        for row in self.rows:
            acc = self.zero
            for j, a in row:
                acc = acc + a * v[j]
            out.append(acc)
        return out

    def apsi(self, t: Tree) -> list[Any]:
        r = self._apsi.get(t)
        if r is None:
            r = self._A_times(self.psi(t))
            self._apsi[t] = r
        return r

    def psi(self, t: Tree) -> list[Any]:
        r = self._psi.get(t)
        if r is None:
            vecs = [self.apsi(ch) for ch in t]
            r = [prod((v[i] for v in vecs), start=self.one) for i in range(self.s)]
            self._psi[t] = r
        return r

    def phi(self, t: Tree, weights: Sequence[Any] | None = None) -> Any:
        w = self.b if weights is None else weights
        p = self.psi(t)
        acc = self.zero
        for wi, pi in zip(w, p):
            if wi != 0:
                acc = acc + wi * pi
        return acc

    def residual(self, t: Tree, weights: Sequence[Any] | None = None,
                 inv: Callable[[int], Any] | None = None) -> Any:
        """``Phi(t) - 1/gamma(t)``."""
        g = tree_density(t)
        target = inv(g) if inv is not None else self.one / g
        return self.phi(t, weights) - target
