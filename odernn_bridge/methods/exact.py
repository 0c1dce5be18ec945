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

from .._mp import evalf
from ..errors import MethodFormatError, MethodValidationError
from .expression import MAX_DIGITS, MAX_EXPRESSION_LENGTH, _Reject, parse_decimal, parse_expression

__all__ = [
    "Coefficient",
    "parse_coefficient",
    "to_float",
    "to_mpf",
    "coefficient_kind",
    "format_coefficient",
    "is_exact",
    "decimal_digits",
    "divide",
    "check_container",
]

Coefficient = Any  # Fraction | Decimal | sympy.Expr

_EXACT_DECIMAL_DIGITS = 10
_MAX_INT_BITS = int(MAX_DIGITS * 3.3219280948873626) + 1
_RATIONAL = re.compile(r"^\s*[+-]?\d+\s*(/\s*\d+)?\s*$", re.ASCII)  # ASCII digits only, as the grammar
_DECIMAL = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$", re.ASCII)


def _sympy():
    import sympy

    return sympy


def parse_coefficient(value: Any, *, where: str = "coefficient") -> Coefficient:
    """Parse one coefficient into Fraction / Decimal / SymPy form.

    Strings are parsed by the safe grammar of :mod:`odernn_bridge.methods.expression`
    (never evaluated as Python); every coefficient must be real and finite in float64.
    Anything else raises :class:`~odernn_bridge.MethodFormatError` naming ``where``.

    >>> parse_coefficient("1/6")
    Fraction(1, 6)
    >>> parse_coefficient(0.5)
    Fraction(1, 2)
    >>> parse_coefficient("1e400", where="b[0]")
    Traceback (most recent call last):
    ...
    odernn_bridge.errors.MethodFormatError: b[0]: 1e400 is outside the float64 range
    """
    return _check_range(_parse_coefficient(value, where), value, where)


def _check_range(x: Coefficient, value: Any, where: str) -> Coefficient:
    """Exact values must round to a finite float64 (SymPy values are checked when normalised)."""
    if isinstance(x, (Fraction, Decimal)):
        try:
            ok = math.isfinite(float(x))
        except OverflowError:
            ok = False
        if not ok:
            text = value if isinstance(value, str) else repr(value)
            raise MethodFormatError(f"{where}: {text[:80]} is outside the float64 range")
    return x


def _parse_coefficient(value: Any, where: str) -> Coefficient:
    if isinstance(value, bool):
        raise MethodFormatError(f"{where}: expected a number, got a boolean {value!r}")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, (int, np.integer)):
        if int(value).bit_length() > _MAX_INT_BITS:
            raise MethodFormatError(f"{where}: integer with more than {MAX_DIGITS} digits")
        return Fraction(int(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise MethodFormatError(f"{where}: expected a finite number, got {value}")
        return value
    if isinstance(value, (complex, np.complexfloating)):
        raise MethodFormatError(f"{where}: expected a real number, got the complex number {value!r}")
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise MethodFormatError(f"{where}: expected a finite number, got {value!r}")
        # A float with a short decimal repr ("0.5", "0.1") is taken as the decimal the
        # user wrote; a long one (0.3333333333333333) as an approximation of unknown
        # exact value, kept as a Decimal so that checks use a tolerance.
        return _parse_coefficient(repr(float(value)), where)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise MethodFormatError(f"{where}: empty string is not a number")
        if text.lower() in {"nan", "+nan", "-nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"}:
            raise MethodFormatError(f"{where}: expected a finite number, got {value!r}")
        if len(text) <= MAX_EXPRESSION_LENGTH and _RATIONAL.match(text):
            p, _, q = text.replace(" ", "").partition("/")
            if len(p) > MAX_DIGITS + 1 or len(q) > MAX_DIGITS:
                raise MethodFormatError(f"{where}: integer with more than {MAX_DIGITS} digits")
            try:
                return Fraction(text.replace(" ", ""))
            except ZeroDivisionError as exc:
                raise MethodFormatError(f"{where}: division by zero in {value!r}") from exc
        if len(text) <= MAX_EXPRESSION_LENGTH and _DECIMAL.match(text):
            try:
                d = parse_decimal(text)
            except _Reject as exc:
                raise MethodFormatError(f"{where}: cannot parse {text[:80]!r} as a number: {exc}") from None
            # short decimals such as "0.5" or "0.125" are taken as exact rationals;
            # long ones are published approximations (kept, with their digits).
            if len(d.as_tuple().digits) <= _EXACT_DECIMAL_DIGITS:
                return Fraction(d)
            return d
        expr = parse_expression(text, where=where)
        return expr if isinstance(expr, Fraction) else _normalise_sympy(expr, where)
    # SymPy objects (built by trusted code: the families) and other numbers
    mod = type(value).__module__
    if mod.startswith("sympy"):
        return _normalise_sympy(value, where)
    if isinstance(value, Number):
        return _parse_coefficient(float(value), where)  # type: ignore[arg-type]
    raise MethodFormatError(f"{where}: expected a number or a string, got {type(value).__name__}")


def _normalise_sympy(expr: Any, where: str) -> Coefficient:
    if expr.free_symbols:
        raise MethodFormatError(f"{where}: expression {str(expr)[:80]} has free symbols {expr.free_symbols}")
    if expr.is_Rational:
        return Fraction(int(expr.p), int(expr.q))
    val = complex(evalf(expr, 30))
    if not (math.isfinite(val.real) and abs(val.imag) < 1e-25):
        raise MethodFormatError(f"{where}: expression {str(expr)[:80]} is not a finite real number")
    return expr


def divide(x: Coefficient, y: Coefficient, *, where: str = "coefficient") -> Coefficient:
    """``x / y`` in the most exact common form: Fraction, Decimal (80 digits) or SymPy.

    >>> divide(Fraction(1, 2), Fraction(3))
    Fraction(1, 6)
    >>> divide(Decimal("0.123456789012345"), Fraction(2))
    Decimal('0.0617283945061725')
    """
    if isinstance(x, Fraction) and isinstance(y, Fraction):
        return x / y
    kinds = {coefficient_kind(x), coefficient_kind(y)}
    if "algebraic" not in kinds:
        from decimal import localcontext

        def dec(v: Coefficient) -> Decimal:
            return v if isinstance(v, Decimal) else Decimal(v.numerator) / Decimal(v.denominator)

        with localcontext() as ctx:
            ctx.prec = 80
            return _check_range(dec(x) / dec(y), "a quotient", where)
    sp = _sympy()
    conv = lambda v: sp.Rational(v.numerator, v.denominator) if isinstance(v, Fraction) else (  # noqa: E731
        sp.Float(str(v), 80) if isinstance(v, Decimal) else v)
    return parse_coefficient(conv(x) / conv(y), where=where)


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
    return float(evalf(x, 30))


def to_mpf(x: Coefficient) -> mpmath.mpf:
    """Value at the current ``mpmath.mp.dps`` precision (call it under
    :data:`odernn_bridge._mp.MP_LOCK`, e.g. inside ``_mp.workdps``, for a definite precision)."""
    if isinstance(x, Fraction):
        return mpmath.mpf(x.numerator) / x.denominator
    if isinstance(x, Decimal):
        return mpmath.mpf(str(x))
    return mpmath.mpf(str(evalf(x, mpmath.mp.dps + 5)))


def format_coefficient(x: Coefficient) -> str:
    """Inverse of :func:`parse_coefficient` (strings such as ``"1/6"``)."""
    if isinstance(x, Fraction):
        return str(x)
    if isinstance(x, Decimal):
        return str(x)
    return str(x)


def check_container(x: Any, name: str, ndim: int, what: str) -> None:
    """``x`` must be a real NumPy array with ``ndim`` dimensions or a (non-string) sequence;
    checked before any entry is parsed, so a bad shape costs nothing.

    >>> check_container("123", "b", 1, "a 1-D vector")
    Traceback (most recent call last):
    ...
    odernn_bridge.errors.MethodValidationError: b: expected a 1-D vector, got str
    """
    if isinstance(x, np.ndarray):
        if x.ndim != ndim:
            raise MethodValidationError(f"{name}: expected {what}, got shape {x.shape}")
        if np.iscomplexobj(x):
            raise MethodValidationError(f"{name}: expected real numbers, got a complex array (dtype {x.dtype})")
    elif isinstance(x, (str, bytes)) or not isinstance(x, Sequence):
        raise MethodValidationError(f"{name}: expected {what}, got {type(x).__name__}")
    elif ndim == 1 and any(isinstance(v, (Sequence, np.ndarray)) and not isinstance(v, str) for v in x[:1000]):
        raise MethodValidationError(f"{name}: expected {what}, got nested lists")


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
