"""Order verification from the order conditions.

Runge–Kutta methods: Butcher's rooted-tree conditions, evaluated

* exactly (``Fraction``) when every coefficient is rational,
* with mpmath at 60 significant digits (tolerance 1e-40) when some are algebraic
  (SymPy expressions), and
* with mpmath at the published precision (tolerance 10**-(digits-8)) when some
  coefficients are published decimals or floats.

In the two inexact cases the tree recursion itself runs in binary fixed point
(:class:`~odernn_bridge.methods.trees.FixedPointEvaluator`: Python integers scaled by
``2**bits``), with ``bits`` = the working precision plus guard bits for the growth of
rounding errors through ``MAX_VERIFIED_ORDER`` levels of ``A``; the residuals are
compared with the same tolerances.  This is about ten times faster than mpmath numbers
and is what makes 35-stage order-14 checks (Feagin14) take seconds rather than minutes.

Verification stops at ``MAX_VERIFIED_ORDER`` = 14 (32973 trees of order 14; order 15
would add 87811 more), also for the "one past the claim" search of
:func:`verify_order`: a method claiming order 14 is confirmed at 14 but not shown to
stop there.

Linear multistep methods: the classical conditions C_q = 0 (exact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Callable, Union

import mpmath

from .._mp import mp_guarded, workdps
from ..errors import MethodValidationError, OrderConditionError
from .exact import decimal_digits, to_mpf
from .trees import FixedPointEvaluator, OrderConditionEvaluator, Tree, trees_of_order

if TYPE_CHECKING:
    from .multistep import LinearMultistep
    from .tableau import ButcherTableau

__all__ = [
    "verify_order",
    "verify_embedded_order",
    "verify_stage_order",
    "order_residuals",
    "check_claimed_orders",
    "MAX_VERIFIED_ORDER",
]

#: highest order the tree conditions are ever evaluated to (also caps the search one
#: order past a claimed order: order 15 alone has 87811 trees)
MAX_VERIFIED_ORDER = 14


@dataclass
class _Arithmetic:
    A: list[list[Any]]
    b: list[Any]
    c: list[Any]
    b_embedded: list[Any] | None
    one: Any
    zero: Any
    tol: Any  # 0 for exact arithmetic
    dps: int | None
    label: str
    exact: tuple[list[list[Any]], list[Any], list[Any] | None] | None = None  # stored coefficients
    _fixed: tuple[int, list[list[int]], list[int], list[int] | None] | None = field(default=None, repr=False)

    def is_zero(self, x: Any) -> bool:
        return x == 0 if self.tol == 0 else abs(x) <= self.tol

    def fixed(self) -> tuple[int, list[list[int]], list[int], list[int] | None]:
        """``(bits, A, b, b_embedded)`` as integers scaled by ``2**bits`` (inexact kinds)."""
        if self._fixed is None:
            assert self.dps is not None and self.exact is not None
            A, b, be = self.exact
            rowabs = max([sum(abs(float(a)) for a in row) for row in self.A] + [2.0])
            bits = (math.ceil(self.dps * math.log2(10)) + 32
                    + MAX_VERIFIED_ORDER * math.ceil(math.log2(rowabs)))
            conv = lambda v, v_mp: [_scaled(x, y, bits) for x, y in zip(v, v_mp)]  # noqa: E731
            rows = [conv(row, row_mp) for row, row_mp in zip(A, self.A)]
            bi = conv(b, self.b)
            bei = conv(be, self.b_embedded) if be is not None else None
            self._fixed = (bits, rows, bi, bei)
        return self._fixed


def _scaled(x: Any, x_mp: Any, bits: int) -> int:
    """``round(x * 2**bits)``: exact for rationals and decimals, else from the mpmath value."""
    if isinstance(x, Decimal):
        x = Fraction(x)
    if isinstance(x, Fraction):
        n = x.numerator << (bits + 1)
        return (n // x.denominator + 1) >> 1
    return int(mpmath.nint(mpmath.ldexp(x_mp, bits)))


def _evaluator(ar: _Arithmetic) -> tuple[OrderConditionEvaluator, Callable[[list[Any] | None], Any],
                                         Callable[[Any], bool], Callable[[Any], float]]:
    """Evaluator for ``ar`` with maps: weights -> its scalars, residual -> is zero?, -> float."""
    if ar.dps is None:
        ev = OrderConditionEvaluator(ar.A, ar.b, ar.one, ar.zero)
        return ev, (lambda w: w), ar.is_zero, float
    bits, A, b, be = ar.fixed()
    fev = FixedPointEvaluator(A, b, bits)
    tol = int(mpmath.floor(mpmath.ldexp(ar.tol, bits)))
    weights = {id(ar.b): b, id(ar.b_embedded): be}
    return (fev, lambda w: weights[id(w)],
            lambda r: abs(r) <= tol, lambda r: r / (1 << bits))


def _arithmetic(m: "ButcherTableau") -> _Arithmetic:
    co = m.coefficients
    kind = m.coefficient_kind
    if kind == "rational":
        return _Arithmetic([list(r) for r in co.A], list(co.b), list(co.c),
                           list(co.b_embedded) if co.b_embedded is not None else None,
                           Fraction(1), Fraction(0), 0, None, "exact rational")
    if kind == "algebraic":
        dps, tol = 60, mpmath.mpf("1e-40")
        label = "mpmath, 60 digits (algebraic coefficients)"
    else:
        digits = min(d for d in (decimal_digits(x) for x in co._all()) if d is not None)
        dps = max(digits + 10, 30)
        tol = mpmath.mpf(10) ** (-(max(digits, 12) - 8))
        label = f"mpmath, coefficients published to {digits} digits"
    with workdps(dps):
        conv = lambda v: [to_mpf(x) for x in v]  # noqa: E731
        return _Arithmetic([conv(r) for r in co.A], conv(co.b), conv(co.c),
                           conv(co.b_embedded) if co.b_embedded is not None else None,
                           mpmath.mpf(1), mpmath.mpf(0), tol, dps, label,
                           exact=([list(r) for r in co.A], list(co.b),
                                  list(co.b_embedded) if co.b_embedded is not None else None))


def _run(ar: _Arithmetic, fn: Callable[[], Any]) -> Any:
    if ar.dps is None:
        return fn()
    with workdps(ar.dps):
        return fn()


def _max_order_for(m: "ButcherTableau") -> int:
    # an explicit s-stage method has order <= s; an implicit one <= 2s
    cap = m.stages if m.kind == "explicit" else 2 * m.stages
    return min(cap, MAX_VERIFIED_ORDER)


def _established(ar: _Arithmetic, weights: list[Any], limit: int) -> int:
    ev, conv, is_zero, _ = _evaluator(ar)
    w = conv(weights)
    established = 0
    for p in range(1, limit + 1):
        for t in trees_of_order(p):
            if not is_zero(ev.residual(t, w)):
                return established
        established = p
    return established


def _as_method(method: Any) -> Union["ButcherTableau", "LinearMultistep"]:
    from .catalogue import as_method

    return as_method(method)


def _as_tableau(method: Any) -> "ButcherTableau":
    from .tableau import ButcherTableau

    m = _as_method(method)
    if not isinstance(m, ButcherTableau):
        raise TypeError(f"method: expected a Runge–Kutta method (ButcherTableau), got {type(m).__name__} {m.name!r}")
    return m


@mp_guarded
def verify_order(method: Union["ButcherTableau", "LinearMultistep"], max_order: int | None = None, *,
                 tol: float | None = None) -> int:
    """The order established by the order conditions (trees up to ``max_order``).

    For a Runge–Kutta method the search stops one past the claimed order (so a
    method that is secretly of higher order reports its claimed order + 1), or at
    the largest order its stage count allows when nothing is claimed, but never
    beyond ``MAX_VERIFIED_ORDER`` (14) unless ``max_order`` asks for more: a method
    claiming order 14 (Feagin14) is reported as 14 without checking the 87811 trees
    of order 15.

    ``tol``: absolute tolerance on the residuals ``Phi(t) - 1/gamma(t)`` for tableaux with
    inexact (decimal/float) coefficients, instead of the one derived from their published
    digits (``10**-(digits-8)``, between 1e-4 and 1e-9 for float64 values); rational
    tableaux are always checked exactly.  E.g. ``tol=1e-12`` for a tableau of float64
    coefficients computed to rounding error (a learned tableau).

    >>> from odernn_bridge import get_method
    >>> verify_order(get_method("RK4"))
    4
    """
    from .multistep import LinearMultistep

    method = _as_method(method)
    if isinstance(method, LinearMultistep):
        return _lmm_order(method)
    claimed = method._claimed_order
    limit = max_order if max_order is not None else (
        min(claimed + 1, _max_order_for(method)) if claimed else _max_order_for(method))
    ar = _arithmetic(method)
    if tol is not None:
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol <= 0:
            raise ValueError(f"tol: expected a positive finite tolerance or None, got {tol!r}")
        if ar.dps is not None:
            ar.tol = mpmath.mpf(tol)
    return _run(ar, lambda: _established(ar, ar.b, limit))


@mp_guarded
def verify_embedded_order(method: "ButcherTableau", max_order: int | None = None) -> int | None:
    """Order of the embedded solution ``b_embedded`` (None if there is none)."""
    method = _as_tableau(method)
    if method.b_embedded is None:
        return None
    claimed = method._claimed_embedded
    limit = max_order if max_order is not None else (
        min(claimed + 1, _max_order_for(method)) if claimed else _max_order_for(method))
    ar = _arithmetic(method)
    return _run(ar, lambda: _established(ar, ar.b_embedded, limit))  # type: ignore[arg-type]


@mp_guarded
def verify_stage_order(method: "ButcherTableau") -> int:
    """Largest q with B(q) and C(q): sum_j a_ij c_j^(k-1) = c_i^k / k and
    sum_i b_i c_i^(k-1) = 1/k for k = 1..q."""
    ar = _arithmetic(_as_tableau(method))
    return _run(ar, lambda: _stage_order(ar))


def _stage_order(ar: _Arithmetic) -> int:
    s = len(ar.b)
    q = 0
    for k in range(1, 2 * s + 2):
        okB = ar.is_zero(sum((ar.b[i] * ar.c[i] ** (k - 1) for i in range(s)), ar.zero) - ar.one / k)
        okC = all(ar.is_zero(sum((ar.A[i][j] * ar.c[j] ** (k - 1) for j in range(s)), ar.zero)
                             - ar.c[i] ** k / k) for i in range(s))
        if not (okB and okC):
            return q
        q = k
    return q


@mp_guarded
def order_residuals(method: "ButcherTableau", order: int, embedded: bool = False) -> list[tuple[Tree, float]]:
    """``(tree, Phi(t) - 1/gamma(t))`` for every tree of exactly ``order`` nodes."""
    ar = _arithmetic(method)
    w = ar.b_embedded if embedded else ar.b
    if w is None:
        raise MethodValidationError("embedded: this method has no embedded weights")

    def compute():
        ev, conv, _, to_float = _evaluator(ar)
        ww = conv(w)
        return [(t, to_float(ev.residual(t, ww))) for t in trees_of_order(order)]

    return _run(ar, compute)


@mp_guarded
def check_claimed_orders(method: "ButcherTableau") -> None:
    """Raise :class:`OrderConditionError` if a claimed (embedded, stage) order is refuted."""
    ar = _arithmetic(method)
    for label, claimed, weights in (("order", method._claimed_order, ar.b),
                                    ("embedded_order", method._claimed_embedded, ar.b_embedded)):
        if claimed is None or weights is None:
            continue
        got = _run(ar, lambda: _established(ar, weights, claimed))
        if got < claimed:
            raise OrderConditionError(
                f"{label}: {method.name} claims order {claimed} but the order conditions "
                f"({ar.label}) hold only up to order {got}")
    claimed = method._claimed_stage_order
    if claimed is not None:
        got = _run(ar, lambda: _stage_order(ar))
        if got < claimed:
            raise OrderConditionError(
                f"stage_order: {method.name} claims stage order {claimed} but the simplifying "
                f"assumptions B(q), C(q) ({ar.label}) hold only up to q = {got}")


# -- linear multistep ---------------------------------------------------------------

def lmm_error_constants(alpha: list[Fraction], beta: list[Fraction], upto: int) -> list[Fraction]:
    """C_0..C_upto with C_q = sum_j j^q alpha_j / q! - sum_j j^(q-1) beta_j / (q-1)!."""
    from math import factorial

    out = []
    for q in range(upto + 1):
        cq = sum((Fraction(j) ** q * a for j, a in enumerate(alpha)), Fraction(0)) / factorial(q)
        if q >= 1:
            cq -= sum((Fraction(j) ** (q - 1) * bb for j, bb in enumerate(beta)), Fraction(0)) / factorial(q - 1)
        out.append(cq)
    return out


def _lmm_order(m: "LinearMultistep") -> int:
    consts = lmm_error_constants(list(m.alpha_exact), list(m.beta_exact), 2 * m.steps + 3)
    p = -1
    for q, cq in enumerate(consts):
        if cq != 0:
            break
        p = q
    return max(p, 0)
