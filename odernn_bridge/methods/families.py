"""Method families generated exactly from their defining formulas.

Runge–Kutta collocation-type families (Hairer–Wanner II, §IV.5) and the classical
linear multistep families (Hairer–Nørsett–Wanner I, §III.1), built with exact
arithmetic:

* **Gauss–Legendre** ``GL2 … GL10`` (s = 1..5, order 2s): nodes are the zeros of the
  shifted Legendre polynomial P_s(2x − 1); A from C(s).
* **Radau IIA** ``RadauIIA1 … RadauIIA9`` (order 2s − 1): nodes are the zeros of
  P_s(2x−1) − P_{s−1}(2x−1) (right Radau points, c_s = 1); A from C(s).
* **Radau IA** ``RadauIA1 … RadauIA9`` (order 2s − 1): left Radau points (c_1 = 0,
  nodes 1 − c of Radau IIA); A from D(s).
* **Lobatto IIIA / IIIB / IIIC** ``LobattoIIIA2 … LobattoIIIA8`` etc. (s = 2..5,
  order 2s − 2): nodes 0, 1 and the zeros of P'_{s−1}(2x − 1); IIIA from C(s), IIIB
  from D(s), IIIC by Chipman's definition (a_i1 = b_1, C(s − 1); its last row is b).
* **Adams–Bashforth** ``AB1 … AB6`` (k steps, order k), **Adams–Moulton** ``AM1 … AM6``
  (*k steps, order k + 1*, the convention of OrdinaryDiffEq's ABM32/ABM43/ABM54
  predictor–corrector pairs: ``AM1`` is the trapezoidal rule; the zero-step
  "AM0" is backward Euler and is an alias of ``BDF1``), **BDF** ``BDF1 … BDF6``
  (order k), explicit **Nyström** ``Nystrom3 … Nystrom6`` (order k; the two-step one
  is ``Leapfrog``), ``MilneSimpson`` (implicit, order 4) and Milne's explicit
  4-step ``Milne4`` (order 4).

Nodes that are algebraic of degree ≤ 2 over the rationals (or biquadratic, for the
symmetric Gauss and Lobatto families) are written with radicals (``sqrt(15)``); the
Radau nodes for s ≥ 4 are zeros of irreducible cubics/quartics with only real zeros
(casus irreducibilis) and are kept as ``CRootOf`` objects.  Every entry of A and b is a
rational function of at most two nodes; it is computed exactly with polynomial
arithmetic over Q modulo the nodes' minimal polynomials, so each entry is a short
polynomial in (at most) two node values: canonical ``p + q*sqrt(d)`` in a quadratic
field, unsimplified but exact otherwise.  The float64 arrays of the tableau are rounded
from 30-digit evaluations.  Factories are memoised; the slowest (5-stage) method builds,
claimed order verified, in about 1-1.5 s on one core.

>>> from odernn_bridge.methods.families import gauss_legendre
>>> gl = gauss_legendre(2)
>>> gl.name, gl.order, gl.stage_order
('GL4', 4, 2)
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import Any, Callable, Sequence

from .._mp import evalf, mp_guarded
from ..errors import MethodValidationError
from .multistep import LinearMultistep
from .tableau import ButcherTableau

__all__ = [
    "family_entries",
    "gauss_legendre",
    "radau_iia",
    "radau_ia",
    "lobatto",
    "adams_bashforth",
    "adams_moulton",
    "bdf",
    "nystrom",
    "leapfrog",
    "milne_simpson",
    "milne4",
    "gauss_nodes",
    "radau_right_nodes",
    "radau_left_nodes",
    "lobatto_nodes",
]

_HW2 = ("E. Hairer, G. Wanner, Solving Ordinary Differential Equations II, 2nd ed., "
        "Springer 1996, Sect. IV.5")
_HNW1 = ("E. Hairer, S. P. Nørsett, G. Wanner, Solving Ordinary Differential Equations I, "
         "2nd ed., Springer 1993, Sect. III.1")

_CITE_GAUSS = ("J. C. Butcher, Implicit Runge-Kutta processes, Math. Comp. 18 (1964) 50-64; "
               "J. Kuntzmann (1961); " + _HW2 + ", Table 5.2.")
_CITE_RADAU_IIA = ("B. L. Ehle, On Padé approximations to the exponential function and A-stable "
                   "methods for the numerical solution of initial value problems, Research Report "
                   "CSRR 2010, Univ. of Waterloo, 1969; " + _HW2 + ", Table 5.6.")
_CITE_RADAU_IA = ("J. C. Butcher, Integration processes based on Radau quadrature formulas, "
                  "Math. Comp. 18 (1964) 233-244; B. L. Ehle (1969); " + _HW2 + ", Table 5.5.")
_CITE_LOBATTO_AB = ("B. L. Ehle (1969), after J. C. Butcher, Integration processes based on Radau "
                    "quadrature formulas, Math. Comp. 18 (1964) 233-244; " + _HW2 + ", Tables 5.7-5.10.")
_CITE_LOBATTO_C = ("F. H. Chipman, A-stable Runge-Kutta processes, BIT 11 (1971) 384-388; "
                   + _HW2 + ", Tables 5.11-5.12.")


# ---------------------------------------------------------------------------------------
# nodes
# ---------------------------------------------------------------------------------------
#
# A node set is a list of (value, factor) pairs: the exact node value (rational, radical
# or CRootOf) and the monic irreducible factor over Q of the node polynomial
# omega(x) = prod (x - c_k) that it is a root of.  Every coefficient of A and b is a
# rational function of one or two nodes; it is computed with polynomial arithmetic modulo
# those factors, so that each entry ends up as a short polynomial in at most two node
# values (instead of a deep unsimplified expression that would be slow to evaluate).

def _sp():
    import sympy

    return sympy


def _x():
    return _sp().Symbol("x")


def _roots_of_factor(f: Any) -> list[Any]:
    """Real zeros (ascending) of an irreducible monic factor ``f`` (Poly in x over QQ)."""
    sp = _sp()
    x = _x()
    d = f.degree()
    if d == 1:
        return [-f.nth(0) / f.nth(1)]
    r = None
    if d == 2:
        r = sp.roots(f, multiple=True)
    else:
        # symmetric about 1/2 (Gauss, Lobatto): in y = 2x - 1 the factor is even or odd,
        # hence biquadratic, and its zeros are (nested) square roots
        y = sp.Symbol("y")
        g = sp.Poly(sp.expand(f.as_expr().subs(x, (1 + y) / 2)), y)
        if all(g.nth(k) == 0 for k in range(d - 1, -1, -2)) and d <= 4:
            r = [sp.Rational(1, 2) + z / 2 for z in sp.roots(g, multiple=True)]
    # Radau (s >= 4): cubics / quartics with only real zeros (casus irreducibilis), whose
    # radical forms need complex intermediates: CRootOf.  (Real trigonometric closed forms
    # exist but SymPy evaluates them ~20x slower inside the tableau entries.)
    if r is None or len(r) != d or any(z.has(sp.I) for z in r):
        r = [sp.CRootOf(f.as_expr(), k) for k in range(d)]
    return sorted((z if z.has(sp.CRootOf) else sp.expand(z) for z in r),
                  key=lambda z: float(evalf(z, 30)))


def _node_set(omega: Any) -> list[tuple[Any, Any]]:
    """(value, factor) for the zeros of ``omega`` (a polynomial expression in x), ascending."""
    sp = _sp()
    x = _x()
    _, factors = sp.factor_list(sp.Poly(omega, x, domain="QQ"))
    out = []
    for fac, mult in factors:
        if mult != 1:
            raise MethodValidationError(f"nodes: repeated zero in {omega}")
        fac = fac.monic()
        out.extend((z, fac) for z in _roots_of_factor(fac))
    return sorted(out, key=lambda p: float(evalf(p[0], 30)))


@lru_cache(maxsize=None)
def _gauss_set(s: int) -> tuple[tuple[Any, Any], ...]:
    sp = _sp()
    x = _x()
    return tuple(_node_set(sp.legendre(s, 2 * x - 1)))


@lru_cache(maxsize=None)
def _radau_right_set(s: int) -> tuple[tuple[Any, Any], ...]:
    sp = _sp()
    x = _x()
    return tuple(_node_set(sp.legendre(s, 2 * x - 1) - sp.legendre(s - 1, 2 * x - 1)))


@lru_cache(maxsize=None)
def _radau_left_set(s: int) -> tuple[tuple[Any, Any], ...]:
    sp = _sp()
    x = _x()
    return tuple(_node_set(sp.legendre(s, 2 * x - 1) + sp.legendre(s - 1, 2 * x - 1)))


@lru_cache(maxsize=None)
def _lobatto_set(s: int) -> tuple[tuple[Any, Any], ...]:
    sp = _sp()
    x = _x()
    if s < 2:
        raise ValueError(f"s: Lobatto methods need at least 2 stages, got {s}")
    inner = sp.diff(sp.legendre(s - 1, x), x).subs(x, 2 * x - 1) if s > 2 else 1
    return tuple(_node_set(sp.expand(x * (x - 1) * inner)))


def gauss_nodes(s: int) -> tuple[Any, ...]:
    """Zeros of the shifted Legendre polynomial P_s(2x − 1), ascending (radicals for s ≤ 5).

    >>> gauss_nodes(2)
    (1/2 - sqrt(3)/6, sqrt(3)/6 + 1/2)
    """
    return tuple(v for v, _ in _gauss_set(s))


def radau_right_nodes(s: int) -> tuple[Any, ...]:
    """Right Radau points (c_s = 1): zeros of P_s(2x−1) − P_{s−1}(2x−1)."""
    return tuple(v for v, _ in _radau_right_set(s))


def radau_left_nodes(s: int) -> tuple[Any, ...]:
    """Left Radau points (c_1 = 0): zeros of P_s(2x−1) + P_{s−1}(2x−1)."""
    return tuple(v for v, _ in _radau_left_set(s))


def lobatto_nodes(s: int) -> tuple[Any, ...]:
    """Lobatto points: 0, 1 and the zeros of P'_{s−1}(2x − 1) (s ≥ 2)."""
    return tuple(v for v, _ in _lobatto_set(s))


# ---------------------------------------------------------------------------------------
# exact interpolatory quadrature in the node fields
# ---------------------------------------------------------------------------------------

def _cheap_simplify(e: Any) -> Any:
    """Canonical a + b*sqrt(d) form for entries in a field Q(sqrt(d)); others unchanged."""
    sp = _sp()
    if e.is_Rational or e.has(sp.CRootOf):
        return e
    radicands = {p.base for p in e.atoms(sp.Pow) if p.exp == sp.Rational(1, 2)}
    if len(radicands) == 1 and all(r.is_Rational for r in radicands):
        return sp.expand(sp.radsimp(sp.expand(e)))
    return e


class _Basis:
    """Lagrange basis l_j(τ) = Σ_m q_m(c_j) τ^m / ω'(c_j) on a node set, where
    ω(τ)/(τ − v) = Σ_m q_m(v) τ^m (synthetic division; q_m are polynomials in v)."""

    def __init__(self, nodes: Sequence[tuple[Any, Any]]) -> None:
        sp = _sp()
        self.nodes = list(nodes)
        self.u, self.v = sp.symbols("u v")
        x = _x()
        omega = sp.Integer(1)
        for f in {id(f): f for _, f in self.nodes}.values():  # each distinct factor once
            omega = omega * f.as_expr()
        omega = sp.expand(omega)
        self.w = sp.Poly(omega, x).all_coeffs()[::-1]  # ascending, monic
        self.n = len(self.w) - 1
        if self.n != len(self.nodes):
            raise MethodValidationError("nodes: node polynomial degree does not match the node count")
        self.domega = sp.diff(omega, x)

    def q(self, var: Any) -> list[Any]:
        """Ascending coefficients q_0..q_{n-1} of ω(τ)/(τ − var)."""
        sp = _sp()
        q = [sp.Integer(0)] * self.n
        q[self.n - 1] = self.w[self.n]
        for m in range(self.n - 1, 0, -1):
            q[m - 1] = sp.expand(self.w[m] + var * q[m])
        return q

    def dw(self, var: Any) -> Any:
        return self.domega.subs(_x(), var)


# -- tiny exact polynomial algebra over Q (dict / list representations) ------------------
#
# Bivariate polynomials are dicts {(a, b): Fraction} for u^a v^b; univariate ones are
# ascending lists of Fractions.  Pure Python: much faster than SymPy expressions here.

def _q(c: Any) -> Fraction:
    return Fraction(int(c.numerator), int(c.denominator))


def _bivariate(expr: Any, u: Any, v: Any) -> dict[tuple[int, int], Fraction]:
    sp = _sp()
    return {m: _q(c) for m, c in sp.Poly(expr, u, v, domain="QQ").terms()}


def _univariate(expr: Any, var: Any) -> list[Fraction]:
    sp = _sp()
    return [_q(c) for c in sp.Poly(expr, var, domain="QQ").all_coeffs()[::-1]]


def _trim(a: list[Fraction]) -> list[Fraction]:
    while len(a) > 1 and a[-1] == 0:
        a = a[:-1]
    return a


def _umul(a: Sequence[Fraction], b: Sequence[Fraction]) -> list[Fraction]:
    out = [Fraction(0)] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        if x:
            for j, y in enumerate(b):
                out[i + j] += x * y
    return _trim(out)


def _udivmod(a: Sequence[Fraction], b: Sequence[Fraction]) -> tuple[list[Fraction], list[Fraction]]:
    a, b = _trim(list(a)), _trim(list(b))
    if len(a) < len(b):
        return [Fraction(0)], a
    q = [Fraction(0)] * (len(a) - len(b) + 1)
    r = list(a)
    for k in range(len(a) - len(b), -1, -1):
        c = r[k + len(b) - 1] / b[-1]
        q[k] = c
        if c:
            for j, y in enumerate(b):
                r[k + j] -= c * y
    return _trim(q), _trim(r[: len(b) - 1] or [Fraction(0)])


def _usub(a: Sequence[Fraction], b: Sequence[Fraction]) -> list[Fraction]:
    n = max(len(a), len(b))
    return _trim([(a[i] if i < len(a) else 0) - (b[i] if i < len(b) else 0) for i in range(n)])


def _inv_mod(a: Sequence[Fraction], f: Sequence[Fraction]) -> list[Fraction]:
    """Inverse of a modulo the irreducible f (extended Euclid; r_i = s_i a mod f)."""
    r0, r1 = list(f), _udivmod(a, f)[1]
    s0, s1 = [Fraction(0)], [Fraction(1)]
    while any(r1):
        q, r = _udivmod(r0, r1)
        r0, r1 = r1, r
        s0, s1 = s1, _usub(s0, _umul(q, s1))
    if len(r0) != 1 or r0[0] == 0:
        raise MethodValidationError("nodes: a denominator vanishes at a node")
    return _udivmod([x / r0[0] for x in s0], f)[1]


def _bmul(P: dict[tuple[int, int], Fraction], Q: dict[tuple[int, int], Fraction]) -> dict[tuple[int, int], Fraction]:
    out: dict[tuple[int, int], Fraction] = {}
    for (a, b), x in P.items():
        for (c, d), y in Q.items():
            out[(a + c, b + d)] = out.get((a + c, b + d), Fraction(0)) + x * y
    return {m: x for m, x in out.items() if x}


def _breduce(P: dict[tuple[int, int], Fraction], idx: int, f: Sequence[Fraction]) -> dict[tuple[int, int], Fraction]:
    """Reduce variable ``idx`` (0: u, 1: v) modulo the monic f."""
    d = len(f) - 1
    P = dict(P)
    top = max((m[idx] for m in P), default=0)
    for e in range(top, d - 1, -1):
        for m in [m for m in P if m[idx] == e]:
            c = P.pop(m)
            for k in range(d):
                if f[k]:
                    nm = (e - d + k, m[1]) if idx == 0 else (m[0], e - d + k)
                    P[nm] = P.get(nm, Fraction(0)) - c * f[k]
    return {m: x for m, x in P.items() if x}


def _factor_coeffs(node: tuple[Any, Any]) -> list[Fraction]:
    return [_q(c) for c in node[1].all_coeffs()[::-1]]


def _as_expr(P: dict[tuple[int, int], Fraction], vi: Any, vj: Any) -> Any:
    """Σ p_ab vi^a vj^b (expanded: SymPy's evalf handles this faster than Horner form)."""
    sp = _sp()
    return sp.Add(*[sp.Rational(x.numerator, x.denominator) * vi ** a * vj ** b for (a, b), x in P.items()])


def _reduce(num: dict[tuple[int, int], Fraction], den_u: list[Fraction] | None, den_v: list[Fraction] | None,
            node_i: tuple[Any, Any] | None, node_j: tuple[Any, Any] | None) -> Any:
    """Exact value of num(u, v) / (den_u(u) den_v(v)) at u = c_i, v = c_j, computed modulo
    the minimal polynomials of c_i and c_j and written as a short polynomial in the node
    values (``node`` is ``(value, factor)``; ``None`` means the variable is absent)."""
    sp = _sp()
    if node_i is not None and node_j is not None and node_i[0] == node_j[0]:
        # same node: v = u
        merged: dict[tuple[int, int], Fraction] = {}
        for (a, b), x in num.items():
            merged[(a + b, 0)] = merged.get((a + b, 0), Fraction(0)) + x
        num = merged
        den_u = _umul(den_u or [Fraction(1)], den_v or [Fraction(1)])
        den_v, node_j = None, None
    P = num
    for idx, den, node in ((0, den_u, node_i), (1, den_v, node_j)):
        if node is None:
            continue
        f = _factor_coeffs(node)
        if den is not None:
            inv = _inv_mod(den, f)
            P = _bmul(P, {((k, 0) if idx == 0 else (0, k)): x for k, x in enumerate(inv) if x})
        P = _breduce(P, idx, f)
    vi = node_i[0] if node_i is not None else sp.Integer(0)
    vj = node_j[0] if node_j is not None else sp.Integer(0)
    return _cheap_simplify(_as_expr(P, vi, vj))


def _weights(nodes: Sequence[tuple[Any, Any]]) -> list[Any]:
    """B(s): b_j = ∫_0^1 l_j."""
    L = _Basis(nodes)
    u, v = L.u, L.v
    num = _bivariate(sum(qm / (m + 1) for m, qm in enumerate(L.q(v))), u, v)
    dw = _univariate(L.dw(v), v)
    return [_reduce(num, None, dw, None, nodes[j]) for j in range(len(nodes))]


def _A_collocation(nodes: Sequence[tuple[Any, Any]]) -> list[list[Any]]:
    """C(s): a_ij = ∫_0^{c_i} l_j."""
    L = _Basis(nodes)
    u, v = L.u, L.v
    num = _bivariate(sum(qm * u ** (m + 1) / (m + 1) for m, qm in enumerate(L.q(v))), u, v)
    dw = _univariate(L.dw(v), v)
    s = len(nodes)
    return [[_reduce(num, None, dw, nodes[i], nodes[j]) for j in range(s)] for i in range(s)]


def _A_D(nodes: Sequence[tuple[Any, Any]]) -> list[list[Any]]:
    """D(s): Σ_i b_i c_i^(k−1) a_ij = b_j (1 − c_j^k)/k, k = 1..s, i.e.
    a_ij = (b_j / b_i) ∫_{c_j}^1 l_i  (b = B(v)/ω'(v) with B(v) = Σ_m q_m(v)/(m+1))."""
    L = _Basis(nodes)
    u, v = L.u, L.v
    B_v = sum(qm / (m + 1) for m, qm in enumerate(L.q(v)))
    integral_u = sum(qm * (1 - v ** (m + 1)) / (m + 1) for m, qm in enumerate(L.q(u)))
    num = _bivariate(B_v * integral_u, u, v)
    den_u = _univariate(B_v.subs(v, u), u)
    dw = _univariate(L.dw(v), v)
    s = len(nodes)
    return [[_reduce(num, den_u, dw, nodes[i], nodes[j]) for j in range(s)] for i in range(s)]


def _A_lobatto_iiic(nodes: Sequence[tuple[Any, Any]], b1: Any) -> list[list[Any]]:
    """Chipman: a_i1 = b_1 and C(s−1).  With c_1 = 0 and l̃_j the Lagrange basis on
    c_2..c_s (degree s−2), Σ_{j≥2} a_ij q(c_j) = ∫_0^{c_i} q − b_1 q(0) for deg q ≤ s−2,
    i.e. a_ij = ∫_0^{c_i} l̃_j − b_1 l̃_j(0)."""
    inner = list(nodes[1:])
    L = _Basis(inner)
    u, v = L.u, L.v
    q = L.q(v)
    num = _bivariate(sum(qm * u ** (m + 1) / (m + 1) for m, qm in enumerate(q)) - b1 * q[0], u, v)
    dw = _univariate(L.dw(v), v)
    s = len(nodes)
    return [[b1] + [_reduce(num, None, dw, nodes[i], inner[j]) for j in range(s - 1)] for i in range(s)]


def _rk(name: str, A: list[list[Any]], b: list[Any], c: Sequence[Any], order: int, stage_order: int,
        citation: str, description: str, aliases: Sequence[str]) -> ButcherTableau:
    return ButcherTableau(A, b, list(c), order=order, name=name, citation=citation,
                          description=description, aliases=tuple(aliases), stage_order=stage_order,
                          check_row_sums=stage_order >= 1)


# ---------------------------------------------------------------------------------------
# Runge–Kutta families
# ---------------------------------------------------------------------------------------

def _check_s(s: int, lo: int, hi: int = 5) -> None:
    if not isinstance(s, int) or isinstance(s, bool) or not lo <= s <= hi:
        raise ValueError(f"s: expected an integer number of stages in [{lo}, {hi}], got {s!r}")


def _gl_aliases(s: int) -> tuple[str, ...]:
    p = 2 * s
    return (f"Gauss{p}", f"GaussLegendre{p}", f"GaussLegendre{s}Stage")


@lru_cache(maxsize=None)
@mp_guarded  # SymPy evaluates CRootOf nodes at mpmath's global precision
def gauss_legendre(s: int) -> ButcherTableau:
    """The s-stage Gauss–Legendre collocation method ``GL{2s}`` (order 2s, stage order s).

    >>> gauss_legendre(1).A.tolist()
    [[0.5]]
    """
    _check_s(s, 1)
    nodes = _gauss_set(s)
    c = [v for v, _ in nodes]
    return _rk(f"GL{2 * s}", _A_collocation(nodes), _weights(nodes), c, 2 * s, s, _CITE_GAUSS,
               f"Gauss-Legendre collocation, {s} stages, order {2 * s}, stage order {s}; "
               "A-stable, symplectic, symmetric.", _gl_aliases(s))


@lru_cache(maxsize=None)
@mp_guarded  # SymPy evaluates CRootOf nodes at mpmath's global precision
def radau_iia(s: int) -> ButcherTableau:
    """The s-stage Radau IIA method ``RadauIIA{2s-1}`` (order 2s − 1, stage order s, L-stable).

    >>> radau_iia(2).b.tolist()
    [0.75, 0.25]
    """
    _check_s(s, 1)
    nodes = _radau_right_set(s)
    c = [v for v, _ in nodes]
    return _rk(f"RadauIIA{2 * s - 1}", _A_collocation(nodes), _weights(nodes), c, 2 * s - 1, s, _CITE_RADAU_IIA,
               f"Radau IIA collocation (right Radau points, c_s = 1), {s} stages, order {2 * s - 1}, "
               f"stage order {s}; L-stable, stiffly accurate.",
               (f"Radau{2 * s - 1}IIA", f"RadauIIA{s}Stage"))


@lru_cache(maxsize=None)
@mp_guarded  # SymPy evaluates CRootOf nodes at mpmath's global precision
def radau_ia(s: int) -> ButcherTableau:
    """The s-stage Radau IA method ``RadauIA{2s-1}`` (order 2s − 1, stage order s − 1, L-stable).

    ``RadauIA1`` is 0 | 1 ‖ 1: its node c = 0 differs from the row sum on purpose.

    >>> radau_ia(2).A.tolist()
    [[0.25, -0.25], [0.25, 0.4166666666666667]]
    """
    _check_s(s, 1)
    nodes = _radau_left_set(s)
    c = [v for v, _ in nodes]
    return _rk(f"RadauIA{2 * s - 1}", _A_D(nodes), _weights(nodes), c, 2 * s - 1, s - 1, _CITE_RADAU_IA,
               f"Radau IA (left Radau points, c_1 = 0, A from D(s)), {s} stages, order {2 * s - 1}, "
               f"stage order {s - 1}; L-stable.", (f"Radau{2 * s - 1}IA", f"RadauIA{s}Stage"))


_LOBATTO_STAGE_ORDER = {"IIIA": lambda s: s, "IIIB": lambda s: s - 2, "IIIC": lambda s: s - 1}


@lru_cache(maxsize=None)
@mp_guarded  # SymPy evaluates CRootOf nodes at mpmath's global precision
def lobatto(variant: str, s: int) -> ButcherTableau:
    """Lobatto ``variant`` ("IIIA", "IIIB" or "IIIC") with s stages, named by its order 2s − 2.

    >>> lobatto("IIIC", 2).A.tolist()
    [[0.5, -0.5], [0.5, 0.5]]
    """
    _check_s(s, 2)
    if variant not in _LOBATTO_STAGE_ORDER:
        raise ValueError(f"variant: expected 'IIIA', 'IIIB' or 'IIIC', got {variant!r}")
    nodes = _lobatto_set(s)
    c = [v for v, _ in nodes]
    b = _weights(nodes)
    if variant == "IIIA":
        A, how = _A_collocation(nodes), "A from C(s) (collocation)"
        cite, extra = _CITE_LOBATTO_AB, "A-stable, symmetric"
    elif variant == "IIIB":
        A, how, cite, extra = _A_D(nodes), "A from D(s)", _CITE_LOBATTO_AB, "A-stable, symmetric"
    else:
        A, how, cite, extra = (_A_lobatto_iiic(nodes, b[0]), "a_i1 = b_1 and C(s-1), last row = b",
                               _CITE_LOBATTO_C, "L-stable, stiffly accurate")
    p, q = 2 * s - 2, _LOBATTO_STAGE_ORDER[variant](s)
    return _rk(f"Lobatto{variant}{p}", A, b, c, p, q, cite,
               f"Lobatto {variant}: Lobatto points, {how}; {s} stages, order {p}, stage order {q}; {extra}.",
               (f"Lobatto{variant}{s}Stage",))


# ---------------------------------------------------------------------------------------
# linear multistep families (exact Fractions)
# ---------------------------------------------------------------------------------------

def _poly_mul_linear(coeffs: list[Fraction], root: Fraction) -> list[Fraction]:
    """coeffs (ascending) times (tau - root)."""
    out = [Fraction(0)] * (len(coeffs) + 1)
    for m, a in enumerate(coeffs):
        out[m + 1] += a
        out[m] -= a * root
    return out


def _frac_lagrange(nodes: Sequence[int], j: int) -> list[Fraction]:
    """Ascending coefficients of the Lagrange basis polynomial l_j on integer nodes."""
    coeffs = [Fraction(1)]
    den = Fraction(1)
    for k, t in enumerate(nodes):
        if k != j:
            coeffs = _poly_mul_linear(coeffs, Fraction(t))
            den *= nodes[j] - t
    return [a / den for a in coeffs]


def _frac_integral(coeffs: Sequence[Fraction], lo: int, hi: int) -> Fraction:
    return sum((a * (Fraction(hi) ** (m + 1) - Fraction(lo) ** (m + 1)) / (m + 1)
                for m, a in enumerate(coeffs)), Fraction(0))


def _quadrature_betas(k: int, nodes: Sequence[int], lo: int, hi: int) -> list[Fraction]:
    """beta_j (j = 0..k) of the interpolatory rule ∫_lo^hi f ≈ sum beta_j f_j on ``nodes``."""
    beta = [Fraction(0)] * (k + 1)
    for idx, t in enumerate(nodes):
        beta[t] = _frac_integral(_frac_lagrange(nodes, idx), lo, hi)
    return beta


def _check_k(k: int, lo: int, hi: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not lo <= k <= hi:
        raise ValueError(f"k: expected an integer number of steps in [{lo}, {hi}], got {k!r}")


def _adams_alpha(k: int) -> list[Fraction]:
    alpha = [Fraction(0)] * (k + 1)
    alpha[k - 1], alpha[k] = Fraction(-1), Fraction(1)
    return alpha


_CITE_AB = ("F. Bashforth, J. C. Adams, An attempt to test the theories of capillary action..., "
            "Cambridge 1883; " + _HNW1 + ", Table 1.1.")
_CITE_AM = ("F. R. Moulton, New Methods in Exterior Ballistics, Univ. Chicago Press 1926; "
            + _HNW1 + ", Table 1.2.")
_CITE_BDF = ("C. F. Curtiss, J. O. Hirschfelder, Integration of stiff equations, PNAS 38 (1952) "
             "235-243; " + _HNW1 + ", (1.22') and Table III.1.3 (coefficients).")
_CITE_NYSTROM = ("E. J. Nyström, Über die numerische Integration von Differentialgleichungen, "
                 "Acta Soc. Sci. Fenn. 50 (1925) 1-54; " + _HNW1 + ", (1.13).")
_CITE_MILNE = ("W. E. Milne, Numerical integration of ordinary differential equations, Amer. Math. "
               "Monthly 33 (1926) 455-460; " + _HNW1 + ", (1.15) and Exercise.")


@lru_cache(maxsize=None)
def adams_bashforth(k: int) -> LinearMultistep:
    """Explicit k-step Adams–Bashforth method ``AB{k}`` (order k).

    y_{n+k} − y_{n+k−1} = dt Σ_{j<k} β_j f_{n+j}, β_j = ∫_{k−1}^{k} l_j over nodes 0..k−1.

    >>> [str(x) for x in adams_bashforth(2).beta_exact]
    ['-1/2', '3/2', '0']
    """
    _check_k(k, 1, 12)
    beta = _quadrature_betas(k, list(range(k)), k - 1, k)
    return LinearMultistep(_adams_alpha(k), beta, name=f"AB{k}", order=k, family="adams_bashforth",
                           citation=_CITE_AB, aliases=(f"AdamsBashforth{k}",),
                           description=f"Adams-Bashforth, explicit, {k} steps, order {k}.")


@lru_cache(maxsize=None)
def adams_moulton(k: int) -> LinearMultistep:
    """Implicit k-step Adams–Moulton method ``AM{k}`` (order k + 1).

    Convention: ``AMk`` has k steps (nodes 0..k), as in OrdinaryDiffEq's predictor–corrector
    pairs ABM32 (AB3 + AM2), ABM43, ABM54.  ``AM1`` is the trapezoidal rule (order 2); the
    zero-step method "AM0" is backward Euler, available as an alias of ``BDF1``.

    >>> [str(x) for x in adams_moulton(1).beta_exact]
    ['1/2', '1/2']
    """
    _check_k(k, 1, 12)
    beta = _quadrature_betas(k, list(range(k + 1)), k - 1, k)
    return LinearMultistep(_adams_alpha(k), beta, name=f"AM{k}", order=k + 1, family="adams_moulton",
                           citation=_CITE_AM, aliases=(f"AdamsMoulton{k}",),
                           description=f"Adams-Moulton, implicit, {k} steps (nodes 0..{k}), order {k + 1}.")


@lru_cache(maxsize=None)
def bdf(k: int) -> LinearMultistep:
    """k-step backward differentiation formula ``BDF{k}`` (order k; zero-stable for k ≤ 6).

    Σ α_j y_{n+j} = dt β_k f_{n+k} with α_j = l_j'(k) on nodes 0..k, scaled to α_k = 1.

    >>> [str(x) for x in bdf(2).alpha_exact], str(bdf(2).beta_exact[-1])
    (['1/3', '-4/3', '1'], '2/3')
    """
    _check_k(k, 1, 6)
    nodes = list(range(k + 1))
    alpha = []
    for j in range(k + 1):
        co = _frac_lagrange(nodes, j)
        alpha.append(sum((m * a * Fraction(k) ** (m - 1) for m, a in enumerate(co) if m > 0), Fraction(0)))
    lead = alpha[k]
    alpha = [a / lead for a in alpha]
    beta = [Fraction(0)] * k + [1 / lead]
    aliases = (f"BackwardDifferentiation{k}",) + (("AM0",) if k == 1 else ())
    desc = f"Backward differentiation formula, implicit, {k} steps, order {k}."
    if k == 1:
        desc += " Also the zero-step Adams-Moulton method (backward Euler), hence the alias AM0."
    return LinearMultistep(alpha, beta, name=f"BDF{k}", order=k, family="bdf", citation=_CITE_BDF,
                           aliases=aliases, description=desc)


@lru_cache(maxsize=None)
def nystrom(k: int) -> LinearMultistep:
    """Explicit k-step Nyström method (order k, k ≥ 2):
    y_{n+k} − y_{n+k−2} = dt Σ_{j<k} β_j f_{n+j}, β_j = ∫_{k−2}^{k} l_j over nodes 0..k−1.

    ``nystrom(2)`` is the leapfrog (explicit midpoint) rule, catalogued as ``Leapfrog``.

    >>> [str(x) for x in nystrom(3).beta_exact]
    ['1/3', '-2/3', '7/3', '0']
    """
    _check_k(k, 2, 12)
    alpha = [Fraction(0)] * (k + 1)
    alpha[k - 2], alpha[k] = Fraction(-1), Fraction(1)
    beta = _quadrature_betas(k, list(range(k)), k - 2, k)
    name = "Leapfrog" if k == 2 else f"Nystrom{k}"
    aliases = ("Nystrom2", "ExplicitMidpointLMM") if k == 2 else ()
    desc = (f"Explicit Nyström method, {k} steps, order {k}; weakly stable (root -1 of rho)."
            if k > 2 else "Leapfrog / explicit two-step midpoint rule y_{n+2} = y_n + 2 dt f_{n+1}, "
            "order 2; the 2-step Nyström method; weakly stable (root -1 of rho).")
    return LinearMultistep(alpha, beta, name=name, order=k, family="nystrom", citation=_CITE_NYSTROM,
                           aliases=aliases, description=desc)


def leapfrog() -> LinearMultistep:
    """The leapfrog rule y_{n+2} = y_n + 2 dt f_{n+1} (order 2)."""
    return nystrom(2)


@lru_cache(maxsize=None)
def milne_simpson() -> LinearMultistep:
    """Milne–Simpson: y_{n+2} − y_n = dt/3 (f_n + 4 f_{n+1} + f_{n+2}), implicit, order 4.

    >>> milne_simpson().order
    4
    """
    beta = _quadrature_betas(2, [0, 1, 2], 0, 2)
    return LinearMultistep([-1, 0, 1], beta, name="MilneSimpson", order=4, family="milne_simpson",
                           citation=_CITE_MILNE, aliases=("Milne-Simpson",),
                           description="Milne-Simpson (Simpson's rule over two steps), implicit, "
                           "2 steps, order 4; weakly stable.")


@lru_cache(maxsize=None)
def milne4() -> LinearMultistep:
    """Milne's explicit 4-step method y_{n+4} − y_n = 4dt/3 (2f_{n+3} − f_{n+2} + 2f_{n+1}),
    order 4 (open Newton–Cotes rule; the predictor of Milne's device).

    >>> [str(x) for x in milne4().beta_exact]
    ['0', '8/3', '-4/3', '8/3', '0']
    """
    beta = _quadrature_betas(4, [1, 2, 3], 0, 4)
    return LinearMultistep([-1, 0, 0, 0, 1], beta, name="Milne4", order=4, family="milne",
                           citation=_CITE_MILNE, aliases=("MilneExplicit4",),
                           description="Milne's explicit 4-step method (open Newton-Cotes), order 4; "
                           "weakly stable.")


# ---------------------------------------------------------------------------------------
# catalogue entries
# ---------------------------------------------------------------------------------------

def _rk_kind(family: str, s: int) -> str:
    """Structure of A (must match ButcherTableau.kind): 1-stage methods and the 2-stage
    Lobatto IIIA/IIIB tableaux are lower triangular."""
    if s == 1 or (s == 2 and family in ("IIIA", "IIIB")):
        return "diagonally_implicit"
    return "implicit"


def family_entries() -> list[tuple[str, str, Callable[[], object], tuple[str, ...]]]:
    """``(name, kind, factory, aliases)`` for every generated catalogue method.

    Factories build (and memoise) the method on first use, so the catalogue loads
    without SymPy.

    >>> names = [e[0] for e in family_entries()]
    >>> "GL4" in names and "RadauIIA5" in names and "BDF6" in names
    True
    """
    out: list[tuple[str, str, Callable[[], object], tuple[str, ...]]] = []
    for s in range(1, 6):
        out.append((f"GL{2 * s}", _rk_kind("GL", s), (lambda s=s: gauss_legendre(s)), _gl_aliases(s)))
    for s in range(1, 6):
        out.append((f"RadauIIA{2 * s - 1}", _rk_kind("RadauIIA", s), (lambda s=s: radau_iia(s)),
                    (f"Radau{2 * s - 1}IIA", f"RadauIIA{s}Stage")))
    for s in range(1, 6):
        out.append((f"RadauIA{2 * s - 1}", _rk_kind("RadauIA", s), (lambda s=s: radau_ia(s)),
                    (f"Radau{2 * s - 1}IA", f"RadauIA{s}Stage")))
    for v in ("IIIA", "IIIB", "IIIC"):
        for s in range(2, 6):
            out.append((f"Lobatto{v}{2 * s - 2}", _rk_kind(v, s), (lambda v=v, s=s: lobatto(v, s)),
                        (f"Lobatto{v}{s}Stage",)))
    for k in range(1, 7):
        out.append((f"AB{k}", "multistep", (lambda k=k: adams_bashforth(k)), (f"AdamsBashforth{k}",)))
    for k in range(1, 7):
        out.append((f"AM{k}", "multistep", (lambda k=k: adams_moulton(k)), (f"AdamsMoulton{k}",)))
    for k in range(1, 7):
        out.append((f"BDF{k}", "multistep", (lambda k=k: bdf(k)),
                    (f"BackwardDifferentiation{k}",) + (("AM0",) if k == 1 else ())))
    out.append(("Leapfrog", "multistep", leapfrog, ("Nystrom2", "ExplicitMidpointLMM")))
    for k in range(3, 7):
        out.append((f"Nystrom{k}", "multistep", (lambda k=k: nystrom(k)), ()))
    out.append(("MilneSimpson", "multistep", milne_simpson, ("Milne-Simpson",)))
    out.append(("Milne4", "multistep", milne4, ("MilneExplicit4",)))
    return out
