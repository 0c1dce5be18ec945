"""Butcher tableaux: self-validating value objects with exact coefficients."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, Sequence

import numpy as np

from .._checks import check_int
from ..errors import MethodValidationError, OrderConditionError
from .exact import (
    Coefficient,
    check_container,
    coefficient_kind,
    format_coefficient,
    parse_coefficient,
    parse_matrix,
    parse_vector,
    to_float,
)
from .order import MAX_VERIFIED_ORDER

__all__ = ["ButcherTableau", "ExactCoefficients", "TableauKind", "MAX_STAGES"]

TableauKind = Literal["explicit", "diagonally_implicit", "implicit"]

_FLOAT_TOL = 1e-12

#: most stages a tableau may have (checked before any coefficient is parsed: a method file
#: is untrusted input, and the work of parsing and of the order conditions grows with s^2)
MAX_STAGES = 256


def _matrix_rows(A: Any) -> list[list[Any]]:
    """The rows of ``A`` as lists, after checking its shape and size (no entry is parsed)."""
    check_container(A, "A", 2, "a square 2-D matrix (rows of numbers)")
    s = len(A)
    if s == 0:
        raise MethodValidationError("A: a tableau needs at least one stage")
    if s > MAX_STAGES:
        raise MethodValidationError(f"A: {s} stages is more than MAX_STAGES = {MAX_STAGES}")
    rows = []
    for i, r in enumerate(A):
        check_container(r, f"A[{i}]", 1, "a row (list of numbers)")
        if len(r) > s:
            raise MethodValidationError(f"A[{i}]: row has {len(r)} entries for {s} rows (A must be square)")
        rows.append(list(r))
    return rows


def _check_vector(v: Any, name: str, s: int, what: str) -> None:
    """``v`` must be a flat sequence of ``s`` entries (checked before any entry is parsed)."""
    check_container(v, name, 1, "a 1-D vector (list of numbers)")
    if len(v) != s:
        raise MethodValidationError(f"{name}: expected {s} {what} for a {s}-stage A, got {len(v)}")


@dataclass(frozen=True)
class ExactCoefficients:
    """Exact (``Fraction`` / SymPy) coefficients of a tableau; rows of A as tuples."""

    A: tuple[tuple[Coefficient, ...], ...]
    b: tuple[Coefficient, ...]
    c: tuple[Coefficient, ...]
    b_embedded: tuple[Coefficient, ...] | None

    @property
    def rational(self) -> bool:
        return all(isinstance(x, Fraction) for x in self._all())

    def _all(self):
        for row in self.A:
            yield from row
        yield from self.b
        yield from self.c
        if self.b_embedded is not None:
            yield from self.b_embedded


def _is_zero(x: Coefficient) -> bool:
    if isinstance(x, Fraction):
        return x == 0
    return to_float(x) == 0.0 and (coefficient_kind(x) != "algebraic" or bool(x == 0))


def _exact_sum(xs: Sequence[Coefficient]) -> Coefficient | float:
    """Exact sum of Fractions, float sum otherwise."""
    if all(isinstance(x, Fraction) for x in xs):
        return sum(xs, Fraction(0))
    return float(sum(to_float(x) for x in xs))


def _sum_any(xs: Sequence[Coefficient]) -> Coefficient:
    """Sum keeping the most exact representation (SymPy for algebraic, Decimal else)."""
    from decimal import Decimal

    kinds = {coefficient_kind(x) for x in xs}
    if "decimal" in kinds:
        from decimal import localcontext

        with localcontext() as ctx:
            ctx.prec = 80
            return sum((x if isinstance(x, Decimal)
                        else Decimal(x.numerator) / Decimal(x.denominator) if isinstance(x, Fraction)
                        else Decimal(str(_sympy_n(x, 60))) for x in xs), Decimal(0))
    import sympy

    total = sympy.Add(*[sympy.Rational(x.numerator, x.denominator) if isinstance(x, Fraction) else x for x in xs])
    # expanding (a + b)**64 * (c + d)**64 ... is exponential: only expand small expressions
    return parse_coefficient(sympy.expand(total) if _expanded_terms(total) <= _MAX_EXPANDED_TERMS else total)


_MAX_EXPANDED_TERMS = 10_000


def _expanded_terms(e: Any) -> float:
    """An upper bound on the number of terms of ``sympy.expand(e)`` (inf when huge)."""
    import sympy

    if isinstance(e, sympy.Add):
        return sum(_expanded_terms(a) for a in e.args)
    if isinstance(e, sympy.Mul):
        n = 1.0
        for a in e.args:
            n *= _expanded_terms(a)
        return n
    if isinstance(e, sympy.Pow) and e.exp.is_Integer and e.exp > 0:
        t = _expanded_terms(e.base)
        if t >= 1e6 or e.exp > 10_000:
            return math.inf
        return float(min(math.comb(int(e.exp) + int(t) - 1, int(e.exp)), 10**18))
    return 1.0 + sum(_expanded_terms(a) for a in getattr(e, "args", ()))


def _sympy_n(x: Coefficient, digits: int) -> Any:
    from .._mp import evalf

    return evalf(x, digits)


def _close(x: Coefficient, y: Coefficient, tol: float) -> bool:
    if isinstance(x, Fraction) and isinstance(y, Fraction):
        return x == y
    return abs(to_float(x) - to_float(y)) <= tol * max(1.0, abs(to_float(y)))


class ButcherTableau:
    r"""A Runge–Kutta method given by its Butcher tableau.

    ``A`` (s×s), ``b`` (s), ``c`` (s, default: row sums of A) and optionally the
    embedded-solution weights ``b_embedded`` (the second solution, *not* the
    difference ``b - b_embedded``).  Entries may be numbers, ``Fraction``\ s,
    SymPy expressions or strings (``"1/6"``, ``"1/2 - sqrt(3)/6"``); explicit tableaux
    may be given by their lower triangle.  Exact coefficients are the source of
    truth; the float64 arrays ``A, b, c, b_embedded`` are derived from them.

    The constructor validates: square A, matching lengths, finite entries, weights
    summing to 1, row sums of A equal to c (unless ``check_row_sums=False``: a few
    published methods use c ≠ A𝟙 on purpose), and — when ``order`` is claimed and
    ``verify`` is true — the order conditions up to that order.

    >>> rk = ButcherTableau([[0, 0], ["1/2", 0]], [0, 1], name="Midpoint", order=2)
    >>> rk.kind, rk.stages, rk.order
    ('explicit', 2, 2)
    """

    def __init__(
        self,
        A: Sequence[Sequence[Any]] | np.ndarray,
        b: Sequence[Any] | np.ndarray,
        c: Sequence[Any] | np.ndarray | None = None,
        b_embedded: Sequence[Any] | np.ndarray | None = None,
        order: int | None = None,
        name: str | None = None,
        *,
        embedded_order: int | None = None,
        citation: str = "",
        description: str = "",
        aliases: Sequence[str] = (),
        fsal: bool | None = None,
        stage_order: int | None = None,
        check_row_sums: bool = True,
        verify: bool = True,
    ) -> None:
        # sizes and types first: nothing is parsed before the shapes are known to be sane
        rows = _matrix_rows(A)
        s = len(rows)
        _check_vector(b, "b", s, "weights")
        if c is not None:
            _check_vector(c, "c", s, "nodes")
        if b_embedded is not None:
            _check_vector(b_embedded, "b_embedded", s, "weights")
        if embedded_order is not None and b_embedded is None:
            raise MethodValidationError(
                "embedded_order: an embedded order is claimed but no b_embedded weights were given")
        # a claim is checked before any work is spent on it (an explicit s-stage method has
        # order <= s, an implicit one <= 2s; stage order <= order <= 2s)
        explicit_pattern = all(len(r) <= i for i, r in enumerate(rows))
        cap, why = (s, f"an explicit {s}-stage method") if explicit_pattern else (2 * s, f"a {s}-stage method")
        for claim_name, claim, lo in (("order", order, 1), ("embedded_order", embedded_order, 1),
                                      ("stage_order", stage_order, 0)):
            if claim is not None:
                check_int(claim, claim_name, lo=lo, error=MethodValidationError)
                if claim > cap:
                    raise OrderConditionError(f"{claim_name}: claimed {claim}, but {why} has "
                                              f"{claim_name.replace('_', ' ')} at most {cap}")
                if verify and claim > MAX_VERIFIED_ORDER:
                    raise MethodValidationError(
                        f"{claim_name}: claimed order {claim} is above {MAX_VERIFIED_ORDER}, the highest "
                        "order the order conditions are evaluated to; pass verify=False to accept "
                        "the claim unverified")
        for flag_name, flag in (("check_row_sums", check_row_sums), ("verify", verify)):
            if not isinstance(flag, (bool, np.bool_)):
                raise MethodValidationError(f"{flag_name}: expected True or False, got {flag!r}")
        if fsal is not None and not isinstance(fsal, (bool, np.bool_)):
            raise MethodValidationError(f"fsal: expected True, False or None, got {fsal!r}")
        for text_name, text in (("citation", citation), ("description", description)):
            if text is not None and not isinstance(text, str):
                raise MethodValidationError(f"{text_name}: expected a string, got {type(text).__name__}")
        if isinstance(aliases, (str, bytes)) or not all(isinstance(a, str) for a in aliases):
            raise MethodValidationError("aliases: expected a sequence of strings")

        A_rows = parse_matrix(rows, where="A")
        b_vec = parse_vector(b, where="b")
        if c is None:
            c_vec = [_exact_sum(row) if all(isinstance(x, Fraction) for x in row)
                     else _sum_any(row) for row in A_rows]
            check_row_sums = False
        else:
            c_vec = parse_vector(c, where="c")
        be_vec = parse_vector(b_embedded, where="b_embedded") if b_embedded is not None else None

        if name is not None and not isinstance(name, str):
            raise MethodValidationError(f"name: expected a string or None, got {type(name).__name__}")
        self.name: str = name or f"ButcherTableau{s}"
        self.citation = citation
        self.description = description
        self.aliases: tuple[str, ...] = tuple(aliases)
        self._A_exact = tuple(tuple(r) for r in A_rows)
        self._b_exact = tuple(b_vec)
        self._c_exact = tuple(c_vec)
        self._be_exact = tuple(be_vec) if be_vec is not None else None

        self.A = np.array([[to_float(x) for x in row] for row in A_rows], dtype=np.float64)
        self.b = np.array([to_float(x) for x in b_vec], dtype=np.float64)
        self.c = np.array([to_float(x) for x in c_vec], dtype=np.float64)
        self.b_embedded = (np.array([to_float(x) for x in be_vec], dtype=np.float64)
                           if be_vec is not None else None)
        for arr, nm in ((self.A, "A"), (self.b, "b"), (self.c, "c"), (self.b_embedded, "b_embedded")):
            if arr is not None:
                if not np.all(np.isfinite(arr)):
                    raise MethodValidationError(f"{nm}: contains NaN or Inf")
                arr.setflags(write=False)
        self.stages = s

        # structure
        strictly_lower = all(_is_zero(A_rows[i][j]) for i in range(s) for j in range(i, s))
        lower = all(_is_zero(A_rows[i][j]) for i in range(s) for j in range(i + 1, s))
        self.kind: TableauKind = ("explicit" if strictly_lower else
                                  "diagonally_implicit" if lower else "implicit")

        # consistency
        tol = _FLOAT_TOL
        for label, vec in (("b", b_vec), ("b_embedded", be_vec)):
            if vec is None:
                continue
            total = _exact_sum(vec)
            if not _close(total, Fraction(1), tol):
                dev = total - 1 if isinstance(total, Fraction) else total - 1.0
                raise MethodValidationError(
                    f"{label}: weights must sum to 1 for a consistent method; sum - 1 = {float(dev):.3e}"
                    + (f" (exactly {dev})" if isinstance(dev, Fraction) else ""))
        if check_row_sums:
            for i, row in enumerate(A_rows):
                rs = _exact_sum(row)
                if not _close(rs, c_vec[i], tol):
                    raise MethodValidationError(
                        f"c[{i}]: row sum of A is {float(rs)!r} "
                        f"but c[{i}] = {float(self.c[i])!r} (pass check_row_sums=False for methods "
                        "that use c != A·1 on purpose)")

        auto_fsal = (self.kind == "explicit" and s > 1
                     and all(_close(A_rows[s - 1][j], b_vec[j], tol) for j in range(s))
                     and _is_zero(b_vec[s - 1]))
        self.fsal: bool = auto_fsal if fsal is None else bool(fsal)
        if self.fsal and not auto_fsal:
            raise MethodValidationError("fsal: FSAL claimed but the last row of A is not b "
                                        "(with a zero last weight) for an explicit method")

        self._claimed_order = int(order) if order is not None else None
        self._claimed_embedded = int(embedded_order) if embedded_order is not None else None
        self._claimed_stage_order = int(stage_order) if stage_order is not None else None
        if verify:
            from .order import check_claimed_orders

            check_claimed_orders(self)

    # -- exactness ------------------------------------------------------------------
    @property
    def exact(self) -> ExactCoefficients | None:
        """Exact coefficients, or None when some are published decimals / floats."""
        if self.coefficient_kind == "decimal":
            return None
        return ExactCoefficients(self._A_exact, self._b_exact, self._c_exact, self._be_exact)

    @property
    def coefficients(self) -> ExactCoefficients:
        """The stored coefficients whatever their kind (Fraction / SymPy / Decimal)."""
        return ExactCoefficients(self._A_exact, self._b_exact, self._c_exact, self._be_exact)

    @property
    def coefficient_kind(self) -> str:
        """``"rational"``, ``"algebraic"`` (some SymPy entries) or ``"decimal"`` (some
        published/float approximations)."""
        kinds = {coefficient_kind(x) for x in self.coefficients._all()}
        if "decimal" in kinds:
            return "decimal"
        return "algebraic" if "algebraic" in kinds else "rational"

    # -- orders ---------------------------------------------------------------------
    @property
    def order(self) -> int:
        """Claimed order if given (verified at construction), else the verified order."""
        if self._claimed_order is None:
            from .order import verify_order

            self._claimed_order = verify_order(self)
        return int(self._claimed_order)

    @property
    def embedded_order(self) -> int | None:
        if self._be_exact is None:
            return None
        if self._claimed_embedded is None:
            from .order import verify_embedded_order

            self._claimed_embedded = verify_embedded_order(self)
        return int(self._claimed_embedded)

    @property
    def stage_order(self) -> int:
        if self._claimed_stage_order is None:
            from .order import verify_stage_order

            self._claimed_stage_order = verify_stage_order(self)
        return int(self._claimed_stage_order)

    @property
    def is_explicit(self) -> bool:
        return self.kind == "explicit"

    @property
    def is_adaptive(self) -> bool:
        return self.b_embedded is not None

    @property
    def stiffly_accurate(self) -> bool:
        return bool(np.allclose(self.A[-1], self.b, atol=1e-14, rtol=0))

    # -- conversions ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description with exact coefficients as strings."""
        d: dict[str, Any] = {
            "type": "runge_kutta",
            "name": self.name,
            "A": [[format_coefficient(x) for x in row] for row in self._A_exact],
            "b": [format_coefficient(x) for x in self._b_exact],
            "c": [format_coefficient(x) for x in self._c_exact],
            "order": self._claimed_order,
        }
        if self._be_exact is not None:
            d["b_embedded"] = [format_coefficient(x) for x in self._be_exact]
            d["embedded_order"] = self._claimed_embedded
        for key in ("citation", "description"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        if self.aliases:
            d["aliases"] = list(self.aliases)
        return d

    def with_name(self, name: str) -> "ButcherTableau":
        """The same coefficients (and orders) under another name; the aliases, which name
        the original method, are not carried over."""
        d = self.to_dict()
        d["name"] = name
        d.pop("aliases", None)
        from .serialization import method_from_dict

        return method_from_dict(d, verify=False)  # type: ignore[return-value]

    def __repr__(self) -> str:
        emb = f", embedded_order={self._claimed_embedded}" if self._be_exact is not None else ""
        return (f"ButcherTableau(name={self.name!r}, kind={self.kind!r}, stages={self.stages}, "
                f"order={self._claimed_order}{emb})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ButcherTableau):
            return NotImplemented
        return (self.coefficients == other.coefficients)

    def __hash__(self) -> int:
        # equality compares coefficients only (not the name), so the hash must not use the name
        return hash((self.stages, tuple(self.b.tolist())))

