"""Exact and high-precision coefficients.

Coefficients of a method are kept in the most exact form the literature gives:

* ``Fraction`` for rationals (``"1/6"``, ``3``, ``"-0.25"`` written as ``"-1/4"``);
* a SymPy expression for algebraic numbers (``"1/2 - sqrt(15)/10"``, ``CRootOf`` nodes);
* :class:`Decimal` for coefficients published only as long decimals (Feagin's methods):
  these keep their published digits, but are *not* exact.

Float64 arrays are always derived from these.  SymPy is imported only when an
algebraic coefficient is met, so rational methods load instantly.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction
from numbers import Number
from typing import Any, Iterable, Sequence

import mpmath
import numpy as np

from ..errors import MethodFormatError

__all__ = [
    "Coefficient",
    "parse_coefficient",
    "to_float",
    "to_mpf",
    "coefficient_kind",
    "format_coefficient",
    "is_exact",
    "decimal_digits",
]

Coefficient = Any  # Fraction | Decimal | sympy.Expr

_EXACT_DECIMAL_DIGITS = 10
_RATIONAL = re.compile(r"^\s*[+-]?\d+\s*(/\s*\d+)?\s*$")
_DECIMAL = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


def _sympy():
    import sympy

    return sympy


def parse_coefficient(value: Any, *, where: str = "coefficient") -> Coefficient:
    """Parse one coefficient into Fraction / Decimal / SymPy form.

    >>> parse_coefficient("1/6")
    Fraction(1, 6)
    >>> parse_coefficient(0.5)
    Fraction(1, 2)
    """
    if isinstance(value, bool):
        raise MethodFormatError(f"{where}: expected a number, got a boolean {value!r}")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise MethodFormatError(f"{where}: expected a finite number, got {value}")
        return value
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise MethodFormatError(f"{where}: expected a finite number, got {value!r}")
        # A float with a short decimal repr ("0.5", "0.1") is taken as the decimal the
        # user wrote; a long one (0.3333333333333333) as an approximation of unknown
        # exact value, kept as a Decimal so that checks use a tolerance.
        return parse_coefficient(repr(float(value)), where=where)
    if isinstance(value, (np.integer,)):
        return Fraction(int(value))
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise MethodFormatError(f"{where}: empty string is not a number")
        if _RATIONAL.match(text):
            try:
                return Fraction(text.replace(" ", ""))
            except ZeroDivisionError as exc:
                raise MethodFormatError(f"{where}: division by zero in {value!r}") from exc
        if _DECIMAL.match(text):
            d = Decimal(text)
            # short decimals such as "0.5" or "0.125" are taken as exact rationals;
            # long ones are published approximations (kept, with their digits).
            if len(d.as_tuple().digits) <= _EXACT_DECIMAL_DIGITS:
                return Fraction(text)
            return d
        if text.lower() in {"nan", "inf", "-inf", "+inf", "infinity"}:
            raise MethodFormatError(f"{where}: expected a finite number, got {value!r}")
        sp = _sympy()
        try:
            expr = sp.sympify(text, rational=True)
        except (sp.SympifyError, SyntaxError, TypeError) as exc:
            raise MethodFormatError(f"{where}: cannot parse {value!r} as a number") from exc
        return _normalise_sympy(expr, where)
    # SymPy objects and other numbers
    mod = type(value).__module__
    if mod.startswith("sympy"):
        return _normalise_sympy(value, where)
    if isinstance(value, Number):
        return parse_coefficient(float(value), where=where)  # type: ignore[arg-type]
    raise MethodFormatError(f"{where}: expected a number or a string, got {type(value).__name__}")


def _normalise_sympy(expr: Any, where: str) -> Coefficient:
    sp = _sympy()
    if expr.free_symbols:
        raise MethodFormatError(f"{where}: expression {expr} has free symbols {expr.free_symbols}")
    if expr.is_Rational:
        return Fraction(int(expr.p), int(expr.q))
    val = complex(sp.N(expr, 30))
    if not (math.isfinite(val.real) and abs(val.imag) < 1e-25):
        raise MethodFormatError(f"{where}: expression {expr} is not a finite real number")
    return expr


def coefficient_kind(x: Coefficient) -> str:
    """``"rational"``, ``"algebraic"`` or ``"decimal"``."""
    if isinstance(x, Fraction):
        return "rational"
    if isinstance(x, Decimal):
        return "decimal"
    return "algebraic"


def is_exact(x: Coefficient) -> bool:
    return not isinstance(x, Decimal)


def decimal_digits(x: Coefficient) -> int | None:
    """Significant digits of a decimal coefficient (None for exact ones)."""
    if isinstance(x, Decimal):
        return max(len(x.as_tuple().digits), 1)
    return None


def to_float(x: Coefficient) -> float:
    if isinstance(x, Fraction):
        return x.numerator / x.denominator if abs(x.numerator) < 2**1000 else float(x)
    if isinstance(x, Decimal):
        return float(x)
    return float(_sympy().N(x, 30))


def to_mpf(x: Coefficient) -> mpmath.mpf:
    """Value at the current ``mpmath.mp.dps`` precision."""
    if isinstance(x, Fraction):
        return mpmath.mpf(x.numerator) / x.denominator
    if isinstance(x, Decimal):
        return mpmath.mpf(str(x))
    return mpmath.mpf(str(_sympy().N(x, mpmath.mp.dps + 5)))


def format_coefficient(x: Coefficient) -> str:
    """Inverse of :func:`parse_coefficient` (strings such as ``"1/6"``)."""
    if isinstance(x, Fraction):
        return str(x)
    if isinstance(x, Decimal):
        return str(x)
    return str(x)


def parse_vector(values: Iterable[Any], *, where: str) -> list[Coefficient]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise MethodFormatError(f"{where}: expected a list of numbers, got {type(values).__name__}")
    return [parse_coefficient(v, where=f"{where}[{i}]") for i, v in enumerate(values)]


def parse_matrix(rows: Sequence[Any], *, where: str, lower_triangular_ok: bool = True) -> list[list[Coefficient]]:
    """Parse a square matrix; rows shorter than the matrix are zero-padded (explicit tableaux
    are commonly written as their strictly lower triangle)."""
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence):
        raise MethodFormatError(f"{where}: expected a list of rows")
    n = len(rows)
    out: list[list[Coefficient]] = []
    for i, row in enumerate(rows):
        if isinstance(row, (str, bytes)) or not isinstance(row, Iterable):
            raise MethodFormatError(f"{where}[{i}]: expected a row (list of numbers)")
        parsed = parse_vector(row, where=f"{where}[{i}]")
        if len(parsed) > n:
            raise MethodFormatError(f"{where}[{i}]: row has {len(parsed)} entries for {n} rows")
        if len(parsed) < n:
            if not lower_triangular_ok:
                raise MethodFormatError(f"{where}[{i}]: row has {len(parsed)} entries, expected {n}")
            parsed = parsed + [Fraction(0)] * (n - len(parsed))
        out.append(parsed)
    return out
