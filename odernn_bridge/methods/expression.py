"""Safe parsing of coefficient expressions (method files are untrusted input).

Coefficient strings such as ``"1/2 - sqrt(15)/10"`` or
``"CRootOf(6*x**3 - 18*x**2 + 9*x - 1, 1)"`` are parsed by a small grammar of our own:
the text is parsed (never compiled nor evaluated) with :func:`ast.parse` and the tree is
walked against a strict whitelist; the value is then built from the walked tree only, as a
``Fraction`` while it is rational and as a SymPy expression once it is not.

Grammar (``^`` is accepted for ``**``)::

    expr     := number | expr (+ | - | * | / | ** | ^) expr | (+ | -) expr | "(" expr ")"
              | sqrt(expr) | Rational(expr, expr) | CRootOf(poly, index)
    number   := digits | digits "." digits [e|E [+|-] digits] | ...   (decimal literals)
    poly     := a polynomial in ``x`` with rational coefficients (+ - * ** and division by
                a rational), degree 1 .. MAX_POLY_DEGREE
    index    := a non-negative integer selecting a *real* root (CRootOf's order)

Every amount of work is bounded before it is done (the limits are module constants,
documented in ``docs/methods.md``): the length of the text, the nesting depth, the digits
of every integer (literal, numerator or denominator of any intermediate result), decimal
exponents, powers (integer exponents up to ``MAX_POWER``, roots up to ``MAX_ROOT``) and the
degree and coefficient size of ``CRootOf`` polynomials.  Anything else raises
:class:`~odernn_bridge.MethodFormatError` naming ``where``.

>>> parse_expression("1/2 - sqrt(3)/6", where="c[0]")
1/2 - sqrt(3)/6
>>> parse_expression("(3/2)^2", where="b[1]")
Fraction(9, 4)
>>> parse_expression("__import__('os')", where="A[1][0]")
Traceback (most recent call last):
...
odernn_bridge.errors.MethodFormatError: A[1][0]: cannot parse "__import__('os')" as a number: character '_' is not allowed (coefficients are numbers, + - * / ** ^, parentheses, sqrt, Rational and CRootOf)
"""

from __future__ import annotations

import ast
import re
import warnings
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from ..errors import MethodFormatError

__all__ = [
    "parse_expression",
    "parse_decimal",
    "check_integer_size",
    "MAX_EXPRESSION_LENGTH",
    "MAX_DIGITS",
    "MAX_DECIMAL_EXPONENT",
    "MAX_POWER",
    "MAX_ROOT",
    "MAX_POLY_DEGREE",
    "MAX_POLY_DIGITS",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_ROOTS",
]

#: characters in one coefficient string
MAX_EXPRESSION_LENGTH = 10_000
#: decimal digits of any integer met while parsing (literals, numerators, denominators)
MAX_DIGITS = 1_000
#: largest |exponent| of a decimal literal such as ``1.5e-20``
MAX_DECIMAL_EXPONENT = 400
#: largest |integer exponent| of ``**`` / ``^`` (and numerator of a rational exponent)
MAX_POWER = 64
#: largest root index q of a rational exponent p/q (``sqrt`` is q = 2)
MAX_ROOT = 12
#: largest degree of a ``CRootOf`` polynomial (root isolation cost grows fast with it)
MAX_POLY_DEGREE = 8
#: decimal digits of a ``CRootOf`` polynomial coefficient (numerator or denominator)
MAX_POLY_DIGITS = 100
#: nesting depth of the expression tree (a long sum or product counts as one level;
#: SymPy's work on nested radicals grows steeply with depth)
MAX_DEPTH = 20
#: numbers, operators and calls in one coefficient
MAX_NODES = 2_000
#: distinct ``CRootOf`` numbers in one coefficient
MAX_ROOTS = 4

_FOLD_LIMIT = 16  # products with more factors are built as one n-ary SymPy Mul
_MAX_BITS = int(MAX_DIGITS * 3.3219280948873626) + 1  # log2(10)
_MAX_POLY_BITS = int(MAX_POLY_DIGITS * 3.3219280948873626) + 1
_ALLOWED_CHARS = re.compile(r"[0-9A-Za-z.+\-*/^(), \t]*")
_INT_LITERAL = re.compile(r"[0-9]+")
_DECIMAL_LITERAL = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_GRAMMAR_HINT = "coefficients are numbers, + - * / ** ^, parentheses, sqrt, Rational and CRootOf"
_FUNCTIONS = ("sqrt", "Rational", "CRootOf")

Value = Any  # Fraction | sympy.Expr


class _Reject(Exception):
    """Internal: the text is outside the grammar or the limits (message says why)."""


def _short(text: str, n: int = 80) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


def _sympy() -> Any:
    import sympy

    return sympy


def check_integer_size(n: int, what: str = "integer", max_bits: int = _MAX_BITS) -> int:
    """``n`` unchanged if it has at most ``MAX_DIGITS`` digits, else :class:`_Reject`."""
    if n.bit_length() > max_bits:
        raise _Reject(f"{what} has more than {max_bits * 0.30103:.0f} digits")
    return n


def _check_fraction(x: Fraction, max_bits: int = _MAX_BITS) -> Fraction:
    check_integer_size(x.numerator, "numerator", max_bits)
    check_integer_size(x.denominator, "denominator", max_bits)
    return x


def parse_decimal(text: str) -> Decimal:
    """A decimal literal as ``Decimal``, within the digit and exponent limits."""
    if len(text) > MAX_DIGITS + 32:
        raise _Reject(f"number literal longer than {MAX_DIGITS} digits")
    try:
        d = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - callers match the literal pattern first
        raise _Reject(f"{_short(text)} is not a decimal number") from exc
    if not d.is_finite():
        raise _Reject("expected a finite number")
    if d != 0 and abs(d.adjusted()) > MAX_DECIMAL_EXPONENT:
        raise _Reject(f"decimal exponent {d.adjusted()} is outside [-{MAX_DECIMAL_EXPONENT}, "
                      f"{MAX_DECIMAL_EXPONENT}]")
    if len(d.as_tuple().digits) > MAX_DIGITS:
        raise _Reject(f"number literal longer than {MAX_DIGITS} digits")
    return d


def _literal(text: str) -> Fraction:
    if _INT_LITERAL.fullmatch(text):
        if len(text) > MAX_DIGITS:
            raise _Reject(f"integer literal longer than {MAX_DIGITS} digits")
        return Fraction(int(text))
    if _DECIMAL_LITERAL.fullmatch(text):
        return _check_fraction(Fraction(parse_decimal(text)))
    raise _Reject(f"{_short(text)} is not a decimal number")


# -- values: Fraction while rational, SymPy otherwise ----------------------------------

def _to_sympy(v: Value) -> Any:
    if isinstance(v, Fraction):
        return _sympy().Rational(v.numerator, v.denominator)
    return v


def _from_sympy(e: Any) -> Value:
    sp = _sympy()
    if e.is_Rational:
        return _check_fraction(Fraction(int(e.p), int(e.q)))
    if e.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise _Reject("division by zero or an infinite value")
    for a in e.atoms(sp.Rational, sp.Pow):
        if isinstance(a, sp.Pow):
            # SymPy combines powers ((a**64)**64 = a**4096): bound the combined exponents too
            if a.exp.is_Rational and (abs(a.exp.p) > MAX_POWER or a.exp.q > MAX_ROOT):
                raise _Reject(f"a combined exponent {a.exp} is outside the limits "
                              f"(|numerator| <= {MAX_POWER}, root index <= {MAX_ROOT})")
            continue
        check_integer_size(abs(int(a.p)), "an intermediate integer")
        check_integer_size(int(a.q), "an intermediate integer")
    return e


def _is_zero(v: Value) -> bool:
    return v == 0  # structural for SymPy (exact zeros are canonicalised to 0)


def _power(base: Value, exponent: Value) -> Value:
    if not isinstance(exponent, Fraction):
        raise _Reject("exponents must be rational numbers")
    p, q = exponent.numerator, exponent.denominator
    if abs(p) > MAX_POWER or q > MAX_ROOT:
        raise _Reject(f"exponent {exponent} is outside the limits (|numerator| <= {MAX_POWER}, "
                      f"root index <= {MAX_ROOT})")
    if _is_zero(base) and p < 0:
        raise _Reject("division by zero (zero to a negative power)")
    if isinstance(base, Fraction):
        if q == 1:
            bits = max(base.numerator.bit_length(), base.denominator.bit_length())
            if bits * abs(p) > _MAX_BITS + abs(p):
                raise _Reject(f"power {exponent} makes an integer of more than {MAX_DIGITS} digits")
            return _check_fraction(base ** p)
        if base < 0 and q % 2 == 0:
            raise _Reject("even root of a negative number (coefficients must be real)")
    sp = _sympy()
    return _from_sympy(sp.Pow(_to_sympy(base), sp.Rational(p, q)))


# -- polynomials in x for CRootOf: {degree: Fraction} -----------------------------------

Poly = dict[int, Fraction]


def _poly_trim(a: Poly) -> Poly:
    out = {k: _check_fraction(v, _MAX_POLY_BITS) for k, v in a.items() if v != 0}
    if out and max(out) > MAX_POLY_DEGREE:
        raise _Reject(f"CRootOf polynomial of degree {max(out)} > {MAX_POLY_DEGREE}")
    return out


def _poly_arith(op: ast.operator, a: Poly, b: Poly) -> Poly:
    if isinstance(op, (ast.Add, ast.Sub)):
        sign = 1 if isinstance(op, ast.Add) else -1
        out = dict(a)
        for k, v in b.items():
            out[k] = out.get(k, Fraction(0)) + sign * v
        return _poly_trim(out)
    if isinstance(op, ast.Mult):
        if a and b and max(a) + max(b) > MAX_POLY_DEGREE:
            raise _Reject(f"CRootOf polynomial of degree > {MAX_POLY_DEGREE}")
        out = {}
        for i, u in a.items():
            for j, v in b.items():
                out[i + j] = out.get(i + j, Fraction(0)) + u * v
        return _poly_trim(out)
    if isinstance(op, ast.Div):
        if set(b) - {0} or not b:
            raise _Reject("a CRootOf polynomial may only be divided by a nonzero rational number")
        return _poly_trim({k: v / b[0] for k, v in a.items()})
    if isinstance(op, ast.Pow):
        if set(b) - {0}:
            raise _Reject("exponents in a CRootOf polynomial must be integers")
        n = b.get(0, Fraction(0))
        if n.denominator != 1 or n < 0:
            raise _Reject("exponents in a CRootOf polynomial must be non-negative integers")
        degree = max(a) if a else 0
        if degree * n > MAX_POLY_DEGREE or (degree == 0 and n > MAX_POWER):
            raise _Reject(f"CRootOf polynomial of degree > {MAX_POLY_DEGREE}")
        out: Poly = {0: Fraction(1)}
        for _ in range(int(n)):
            out = _poly_arith(ast.Mult(), out, a)
        return out
    raise _Reject(f"operator {type(op).__name__} is not allowed")  # pragma: no cover


# -- the tree walk -----------------------------------------------------------------------

def _chain(node: ast.BinOp, kinds: tuple[type, ...]) -> tuple[list[ast.operator], list[ast.AST]]:
    """``a op1 b op2 c ...`` (left-associative) as ``([op1, op2, ...], [a, b, c, ...])``."""
    ops: list[ast.operator] = []
    operands: list[ast.AST] = []
    cur: ast.AST = node
    while isinstance(cur, ast.BinOp) and isinstance(cur.op, kinds):
        ops.append(cur.op)
        operands.append(cur.right)
        cur = cur.left
    operands.append(cur)
    return ops[::-1], operands[::-1]


class _Walker:
    def __init__(self, text: str) -> None:
        self.text = text
        self.roots: dict[tuple[tuple[tuple[int, Fraction], ...], int], Value] = {}

    def source(self, node: ast.AST) -> str:
        return self.text[node.col_offset:node.end_col_offset]  # type: ignore[attr-defined]

    def constant(self, node: ast.Constant) -> Fraction:
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise _Reject(f"{_short(self.source(node))} is not a real number")
        return _literal(self.source(node))  # from the text: 0.1 stays exactly 1/10

    def value(self, node: ast.AST, depth: int) -> Value:
        if depth > MAX_DEPTH:
            raise _Reject(f"expression nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            v = self.value(node.operand, depth + 1)
            return v if isinstance(node.op, ast.UAdd) else (-v if isinstance(v, Fraction) else _from_sympy(-v))
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            return self.sum(node, depth)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div)):
            return self.product(node, depth)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            return _power(self.value(node.left, depth + 1), self.value(node.right, depth + 1))
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.Name):
            raise _Reject(f"unknown name {node.id!r} (a variable x may only appear inside CRootOf)")
        raise _Reject(f"{_short(self.source(node))} is not allowed")

    def sum(self, node: ast.BinOp, depth: int) -> Value:
        # a long sum is a deep left spine in the AST but not a deep expression: walk the
        # spine iteratively and add the terms at once (one SymPy Add, not n nested ones)
        ops, operands = _chain(node, (ast.Add, ast.Sub))
        terms = [self.value(operands[0], depth + 1)]
        for op, operand in zip(ops, operands[1:]):
            v = self.value(operand, depth + 1)
            terms.append(v if isinstance(op, ast.Add) else (-v if isinstance(v, Fraction) else _from_sympy(-v)))
        if all(isinstance(t, Fraction) for t in terms):
            acc = Fraction(0)
            for t in terms:
                acc = _check_fraction(acc + t)
            return acc
        return _from_sympy(_sympy().Add(*[_to_sympy(t) for t in terms]))

    def product(self, node: ast.BinOp, depth: int) -> Value:
        ops, operands = _chain(node, (ast.Mult, ast.Div))
        # Short products are folded left to right as Python (and SymPy's sympify) would, so
        # that the SymPy form is the one written out by to_dict (2-factor products distribute
        # numbers over sums); folding costs O(n^2) in SymPy, so long ones are one n-ary Mul
        # (the same value, possibly another arrangement).  Size checks run once at the end.
        values = [self.value(operand, depth + 1) for operand in operands]
        if any(isinstance(op, ast.Div) and _is_zero(v) for op, v in zip(ops, values[1:])):
            raise _Reject("division by zero")
        if len(values) > _FOLD_LIMIT and not all(isinstance(v, Fraction) for v in values):
            sp = _sympy()
            return _from_sympy(sp.Mul(*[_to_sympy(v) if isinstance(op, ast.Mult) else sp.Pow(_to_sympy(v), -1)
                                        for op, v in zip([ast.Mult(), *ops], values)]))
        acc = values[0]
        for op, v in zip(ops, values[1:]):
            if isinstance(acc, Fraction) and isinstance(v, Fraction):
                acc = _check_fraction(acc * v if isinstance(op, ast.Mult) else acc / v)
            else:
                acc = _to_sympy(acc) * _to_sympy(v) if isinstance(op, ast.Mult) else _to_sympy(acc) / _to_sympy(v)
                if acc.is_Rational:
                    acc = _from_sympy(acc)
        return acc if isinstance(acc, Fraction) else _from_sympy(acc)

    def call(self, node: ast.Call, depth: int) -> Value:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            raise _Reject(f"{_short(self.source(node.func))} is not an allowed function "
                          f"({', '.join(_FUNCTIONS)})")
        name = node.func.id
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise _Reject(f"{name}() takes positional arguments only")
        nargs = {"sqrt": (1,), "Rational": (1, 2), "CRootOf": (2,)}[name]
        if len(node.args) not in nargs:
            raise _Reject(f"{name}() takes {' or '.join(map(str, nargs))} argument(s), got {len(node.args)}")
        if name == "CRootOf":
            return self.crootof(node, depth)
        args = [self.value(a, depth + 1) for a in node.args]
        if name == "sqrt":
            return _power(args[0], Fraction(1, 2))
        if not all(isinstance(a, Fraction) for a in args):
            raise _Reject("Rational() takes rational arguments")
        if len(args) == 2 and args[1] == 0:
            raise _Reject("division by zero")
        return args[0] if len(args) == 1 else _check_fraction(args[0] / args[1])

    def poly(self, node: ast.AST, depth: int) -> Poly:
        if depth > MAX_DEPTH:
            raise _Reject(f"expression nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.Constant):
            v = self.constant(node)
            return _poly_trim({0: v})
        if isinstance(node, ast.Name):
            if node.id != "x":
                raise _Reject(f"unknown name {node.id!r} in a CRootOf polynomial (use x)")
            return {1: Fraction(1)}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            p = self.poly(node.operand, depth + 1)
            return p if isinstance(node.op, ast.UAdd) else {k: -v for k, v in p.items()}
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            kinds = (ast.Add, ast.Sub) if isinstance(node.op, (ast.Add, ast.Sub)) else (ast.Mult, ast.Div)
            ops, operands = _chain(node, kinds)
            acc = self.poly(operands[0], depth + 1)
            for op, operand in zip(ops, operands[1:]):
                acc = _poly_arith(op, acc, self.poly(operand, depth + 1))
            return acc
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            return _poly_arith(node.op, self.poly(node.left, depth + 1), self.poly(node.right, depth + 1))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Rational"
                and not node.keywords):
            v = self.call(node, depth)
            return _poly_trim({0: v})
        raise _Reject(f"{_short(self.source(node))} is not allowed in a CRootOf polynomial")

    def crootof(self, node: ast.Call, depth: int) -> Value:
        poly = self.poly(node.args[0], depth + 1)
        index = self.value(node.args[1], depth + 1)
        if not poly or max(poly) < 1:
            raise _Reject("CRootOf needs a polynomial of degree >= 1 in x")
        if not isinstance(index, Fraction) or index.denominator != 1 or index < 0:
            raise _Reject("CRootOf index must be a non-negative integer")
        key = (tuple(sorted(poly.items())), int(index))
        if key not in self.roots:
            if len(self.roots) >= MAX_ROOTS:
                raise _Reject(f"more than {MAX_ROOTS} distinct CRootOf numbers in one coefficient")
            self.roots[key] = self._crootof(poly, int(index))
        return self.roots[key]

    @staticmethod
    def _crootof(poly: Poly, index: int) -> Value:
        sp = _sympy()
        x = sp.Symbol("x")
        expr = sp.Add(*[sp.Rational(v.numerator, v.denominator) * x ** k for k, v in poly.items()])
        # CRootOf orders the real roots first (with multiplicity); an index past them selects
        # a complex root, which is not a coefficient and whose isolation is slow: reject it.
        _, factors = sp.Poly(expr, x).sqf_list()
        n_real = sum(m * f.count_roots() for f, m in factors)
        if index >= n_real:
            raise _Reject(f"CRootOf index {index} selects a complex root: the polynomial has "
                          f"{n_real} real root(s)")
        return _from_sympy(sp.CRootOf(expr, index))


def parse_expression(text: str, *, where: str = "coefficient") -> Value:
    """The value of a coefficient expression: a ``Fraction`` when rational, else SymPy.

    Raises :class:`~odernn_bridge.MethodFormatError` naming ``where`` for anything outside
    the grammar of this module or its limits; the text is never evaluated as Python.
    """
    try:
        return _parse(text)
    except _Reject as exc:
        raise MethodFormatError(f"{where}: cannot parse {_short(text)} as a number: {exc}") from None


def _parse(text: str) -> Value:
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise _Reject(f"longer than {MAX_EXPRESSION_LENGTH} characters")
    if not _ALLOWED_CHARS.fullmatch(text):
        bad = next(ch for ch in text if not _ALLOWED_CHARS.fullmatch(ch))
        raise _Reject(f"character {bad!r} is not allowed ({_GRAMMAR_HINT})")
    source = text.replace("^", "**").strip()
    try:
        with warnings.catch_warnings():  # "invalid decimal literal" and the like: rejected below
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        msg = exc.msg if isinstance(exc, SyntaxError) else type(exc).__name__
        raise _Reject(f"not a valid expression ({msg}; {_GRAMMAR_HINT})") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise _Reject(f"expression of {nodes} syntax nodes (numbers, operators, calls) > {MAX_NODES}")
    walker = _Walker(source)
    try:
        return walker.value(tree.body, 0)
    except RecursionError:  # pragma: no cover - MAX_DEPTH keeps the walk shallow
        raise _Reject(f"expression nested deeper than {MAX_DEPTH} levels") from None

