r"""The stability function R(z) = P(z)/Q(z) of a Runge–Kutta method.

For the test equation y' = λy one step maps y_n to R(z) y_n with z = dt·λ and

    R(z) = 1 + z bᵀ(I − zA)⁻¹𝟙 = det(I − zA + z𝟙bᵀ) / det(I − zA).

Both determinants come out of one Faddeev–LeVerrier pass over A: with M_1 = I,
M_k = A M_{k−1} + c_{n−k+1} I and c_{n−k} = −tr(A M_k)/k (c_n = 1), the characteristic
polynomial is det(λI − A) = Σ c_k λ^k and adj(I − zA) = Σ_k M_k z^{k−1}, so

    Q(z) = Σ_j c_{n−j} z^j,    P(z) = Q(z) + Σ_k (bᵀ M_k 𝟙) z^k.

The same pass gives the stage functions (I − zA)⁻¹𝟙 and the *internal* stability
functions z bᵀ(I − zA)⁻¹ e_j (Ketcheson, Lóczi, Parsani, SIAM J. Numer. Anal. 52 (2014)
2227–2249), which amplify a perturbation of stage j.

Arithmetic: ``Fraction`` for rational tableaux (exact); otherwise mpmath, run at two
precisions (60 and 90 digits for algebraic tableaux, published digits + 10 and + 40 for
decimal ones) so that the rounding noise — cancellations can make it much larger than the
working precision for big tableaux — is measured and coefficients below it count as zero.
Algebraic tableaux whose R has rational coefficients (to 45 digits, with a denominator
below 10¹⁵) get them as Fractions: Gauss, Radau and Lobatto methods do.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Any, Sequence

import mpmath
import numpy as np

from .._cache import content_key
from .._mp import MP_LOCK, mp_guarded, workdps
from ..methods.catalogue import as_method
from ..methods.multistep import LinearMultistep
from ..methods.tableau import ButcherTableau
from ..methods.exact import decimal_digits, to_mpf
from . import _poly

__all__ = ["StabilityFunction", "stability_function", "stage_stability_functions",
           "internal_stability_functions", "as_method"]

_ALGEBRAIC_DPS = 60
_RECOGNISE_TOL = mpmath.mpf(10) ** -45
_MAX_DENOMINATOR = 10**15


class StabilityFunction:
    """A rational function ``R(z) = P(z)/Q(z)`` with coefficients in ascending powers.

    Callable on scalars and complex numpy arrays (Horner's rule, float64/complex128).

    Attributes
    ----------
    numerator, denominator : numpy float64 arrays, ascending powers, trailing zeros removed.
    exact : ``(numerator, denominator)`` as tuples of ``Fraction`` when known exactly, else None.
    arithmetic : how the coefficients were obtained (``"exact rational"``, ...).
    name : label (method name, with ``[embedded]`` / ``[stage i]`` / ``[internal j]``).

    >>> import odernn_bridge as ob
    >>> R = ob.stability_function("RK4")
    >>> [str(c) for c in R.exact[0]]
    ['1', '1', '1/2', '1/6', '1/24']
    >>> round(float(abs(R(-2.0))), 6)
    0.333333
    """

    def __init__(self, numerator: Sequence[Any], denominator: Sequence[Any], *, name: str = "R",
                 arithmetic: str = "exact rational", zero_tol: Any = 0, coefficient_tol: Any = 0,
                 value_tol: Any = 0) -> None:
        num = _poly.trim(list(numerator), zero_tol)
        den = _poly.trim(list(denominator), zero_tol)
        if not den:
            raise ValueError("denominator: the denominator polynomial is identically zero")
        if not num:
            num = [den[0] * 0]
        self._num = tuple(num)
        self._den = tuple(den)
        self.zero_tol = zero_tol
        #: uncertainty of the coefficients (published decimals): sign decisions treat values
        #: below it as zero, so a method published to 16 digits is not declared unstable by a
        #: 1e-16 defect in an order condition
        self.coefficient_tol = max(coefficient_tol, zero_tol)
        #: relative accuracy of the coefficients *values* (one unit in the last published
        #: digit; the working-precision noise otherwise): |R| within it of 1 is on the boundary
        self.value_tol = max(value_tol, zero_tol)
        self.name = name
        self.arithmetic = arithmetic
        self.field = _poly.field_of(self._num + self._den)
        self.numerator = np.array([float(c) for c in num], dtype=np.float64)
        self.denominator = np.array([float(c) for c in den], dtype=np.float64)
        self.numerator.setflags(write=False)
        self.denominator.setflags(write=False)

    # -- coefficient views ---------------------------------------------------------------
    @property
    def exact(self) -> tuple[tuple[Fraction, ...], tuple[Fraction, ...]] | None:
        if self.field == "fraction":
            return self._num, self._den
        return None

    @property
    def coefficients(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """Numerator and denominator in their working field (Fraction or mpf)."""
        return self._num, self._den

    @property
    def degree(self) -> tuple[int, int]:
        """``(deg P, deg Q)``."""
        return len(self._num) - 1, len(self._den) - 1

    @property
    def is_polynomial(self) -> bool:
        return len(self._den) == 1

    @property
    def at_infinity(self) -> float:
        """``lim_{z→∞} R(z)`` (``inf`` when deg P > deg Q; 0 when deg P < deg Q or the
        leading numerator coefficient is zero to the coefficients' accuracy)."""
        dp, dq = self.degree
        if dp < dq:
            return 0.0
        if dp > dq:
            return float("inf")
        if self.field == "fraction":
            return float(self._num[-1] / self._den[-1])
        with MP_LOCK:
            return self._mp_at_infinity()

    def _mp_at_infinity(self) -> float:
        ratio = _poly.to_mp(self._num[-1]) / _poly.to_mp(self._den[-1])
        # a leading coefficient that is zero to the coefficients' accuracy (published
        # decimals of a stiffly accurate method) gives R(∞) = 0
        scale = max(abs(_poly.to_mp(c)) for c in self._num)
        if abs(self._num[-1]) <= self.coefficient_tol * max(scale, 1):
            return 0.0
        return float(ratio)

    # -- evaluation ------------------------------------------------------------------------
    def __call__(self, z: Any) -> Any:
        """``R(z)`` elementwise; ``inf``/``nan`` at poles are returned without warnings."""
        zz = np.asarray(z)
        if not np.issubdtype(zz.dtype, np.number):
            raise TypeError(f"z: expected numbers, got dtype {zz.dtype}")
        with np.errstate(all="ignore"):
            p = _poly.horner(self.numerator, zz)
            if self.is_polynomial:
                out = p / self.denominator[0]
            else:
                out = p / _poly.horner(self.denominator, zz)
        return out[()] if out.ndim == 0 else out

    def log_derivative(self, z: np.ndarray) -> np.ndarray:
        """``R'(z)/R(z) = P'/P − Q'/Q`` (used to refine traced boundaries)."""
        with np.errstate(all="ignore"):
            p, dp = _poly.horner_with_derivative(self.numerator, z)
            q, dq = _poly.horner_with_derivative(self.denominator, z)
            return dp / p - dq / q

    def __repr__(self) -> str:
        def fmt(cs: tuple[Any, ...]) -> str:
            terms = []
            for k, c in enumerate(cs):
                if c == 0:
                    continue
                s = str(c) if self.field == "fraction" else mpmath.nstr(c, 12)
                terms.append(s if k == 0 else f"({s})*z" + (f"**{k}" if k > 1 else ""))
            return " + ".join(terms) or "0"

        den = "" if self.is_polynomial and self._den[0] == 1 else f" / ({fmt(self._den)})"
        return f"StabilityFunction({self.name}: ({fmt(self._num)}){den})"


# -- computing R from a tableau --------------------------------------------------------------

def _arithmetic(m: ButcherTableau) -> tuple[str, int | None]:
    kind = m.coefficient_kind
    if kind == "rational":
        return "exact rational", None
    if kind == "algebraic":
        return f"mpmath {_ALGEBRAIC_DPS} digits (algebraic coefficients)", _ALGEBRAIC_DPS
    digits = min(d for d in (decimal_digits(x) for x in m.coefficients._all()) if d is not None)
    return f"mpmath (coefficients published to {digits} digits)", max(digits + 10, 30)


def _recognise(values: list[mpmath.mpf]) -> list[Fraction] | None:
    """Rationals with a denominator < 10**15 matching to 45 digits, or None."""
    out = []
    for v in values:
        x = _poly.mp_to_fraction(v)
        q = x.limit_denominator(_MAX_DENOMINATOR)
        if abs(_poly.to_mp(q) - v) > _RECOGNISE_TOL * max(1, abs(v)):
            return None
        out.append(q)
    return out


class _Expansion:
    """Faddeev–LeVerrier data of one tableau: Q and the vectors M_k 𝟙, bᵀ M_k."""

    def __init__(self, A: list[list[Any]], b: list[Any], one: Any, zero: Any, explicit: bool) -> None:
        n = len(A)
        self.n = n
        self.one, self.zero = one, zero
        if explicit:
            # A nilpotent: c_k = 0 for k < n and M_k = A^(k-1)
            self.q = [one] + [zero] * n
            u = [one] * n
            self.u = []  # M_k 1
            self.M = None
            for _ in range(n):
                self.u.append(u)
                u = [sum((A[i][j] * u[j] for j in range(n)), zero) for i in range(n)]
            self.v = []  # rows of M_k, only via b^T M_k computed lazily
            w = list(b)
            for _ in range(n):
                self.v.append(w)
                w = [sum((w[i] * A[i][j] for i in range(n)), zero) for j in range(n)]
            return
        c = [zero] * (n + 1)
        c[n] = one
        Ms = []
        M = [[one if i == j else zero for j in range(n)] for i in range(n)]
        for k in range(1, n + 1):
            if k > 1:
                AM = [[sum((A[i][l] * M[l][j] for l in range(n)), zero) for j in range(n)] for i in range(n)]
                M = [[AM[i][j] + (c[n - k + 1] if i == j else zero) for j in range(n)] for i in range(n)]
            Ms.append(M)
            tr = sum((sum((A[i][l] * M[l][i] for l in range(n)), zero) for i in range(n)), zero)
            c[n - k] = -tr / k
        self.q = [c[n - j] for j in range(n + 1)]
        self.u = [[sum(row, zero) for row in Mk] for Mk in Ms]
        self.v = [[sum((b[i] * Mk[i][j] for i in range(n)), zero) for j in range(n)] for Mk in Ms]

    def numerator(self, weights: list[Any]) -> list[Any]:
        n = self.n
        p = list(self.q)
        for k in range(1, n + 1):
            p[k] = p[k] + sum((weights[i] * self.u[k - 1][i] for i in range(n)), self.zero)
        return p


def _field_values(m: ButcherTableau) -> tuple[str, int | None, Any, Any, list, list, list | None]:
    label, dps = _arithmetic(m)
    co = m.coefficients
    if dps is None:
        A = [list(r) for r in co.A]
        b = list(co.b)
        be = list(co.b_embedded) if co.b_embedded is not None else None
        return label, dps, Fraction(1), Fraction(0), A, b, be
    conv = lambda v: [to_mpf(x) for x in v]  # noqa: E731
    A = [conv(r) for r in co.A]
    return label, dps, mpmath.mpf(1), mpmath.mpf(0), A, conv(co.b), \
        (conv(co.b_embedded) if co.b_embedded is not None else None)


_EXTRA_DPS = 30


def _raw_polynomials(m: ButcherTableau, dps: int | None) -> dict[str, Any]:
    """Numerator/denominator pairs of R, the embedded R, stage and internal functions."""
    ctx = workdps(dps) if dps else _nullcontext()
    with ctx:
        _label, _dps, one, zero, A, b, be = _field_values(m)
        ex = _Expansion(A, b, one, zero, m.kind == "explicit")
        n = ex.n
        return {
            "R": (ex.numerator(b), ex.q),
            "embedded": (ex.numerator(be), ex.q) if be is not None else None,
            "stages": [([ex.u[k][i] for k in range(n)], ex.q) for i in range(n)],
            "internal": [([zero] + [ex.v[k][j] for k in range(n)], ex.q) for j in range(n)],
        }


def _pairs(raw: dict[str, Any]) -> list[Any]:
    out = [raw["R"]] + ([raw["embedded"]] if raw["embedded"] is not None else [])
    return out + raw["stages"] + raw["internal"]


def _all_functions(m: ButcherTableau) -> dict[str, Any]:
    # keyed on the coefficients as written (content_key: a published decimal and an equal
    # rational are analysed differently, though they compare equal) and on the name, which
    # each result carries
    return _all_functions_named(m, content_key(m), m.name)


@functools.lru_cache(maxsize=512)
@mp_guarded
def _all_functions_named(m: ButcherTableau, key: Any, name: str) -> dict[str, Any]:
    label, dps = _arithmetic(m)
    coefficient_tol: Any = 0
    value_tol: Any = 0
    if dps is None:
        raw = _raw_polynomials(m, None)

        def finish(pair):
            return pair[0], pair[1], label, 0
    else:
        # The rounding noise of the expansion (cancellations make it far larger than
        # 10**-dps for big tableaux) is measured by repeating it 30 digits higher; the
        # higher-precision result is kept and coefficients below 10**4 x its noise are zeros.
        low = _raw_polynomials(m, dps)
        raw = _raw_polynomials(m, dps + _EXTRA_DPS)
        with workdps(dps + _EXTRA_DPS):
            noise = max((abs(x - y) for pl, ph in zip(_pairs(low), _pairs(raw))
                         for a, c in zip(pl, ph) for x, y in zip(a, c)), default=mpmath.mpf(0))
            zero_tol = max(noise * mpmath.mpf(10) ** (4 - _EXTRA_DPS),
                           mpmath.mpf(10) ** -(dps + _EXTRA_DPS - 5))
        label = label.replace(f"{dps} digits", f"{dps + _EXTRA_DPS} digits")
        if "published" in label:
            digits = min(d for d in (decimal_digits(x) for x in m.coefficients._all()) if d is not None)
            # published decimals are often less accurate than their printed digits (derived
            # from a lower-precision computation): allow defects up to 10^-(2·digits/3)
            coefficient_tol = max(mpmath.mpf(10) ** -(digits - 4), mpmath.mpf(10) ** (-2 * digits / 3))
            # values, though, are as accurate as the digits: a point of the stability region
            # is decided to one unit in the last published digit (stability intervals end
            # inside the region of the stored coefficients to that accuracy)
            value_tol = mpmath.mpf(10) ** (1 - digits)

        def finish(pair):
            num, den = pair
            if "algebraic" in label:
                with workdps(dps + _EXTRA_DPS):
                    rn, rd = _recognise(num), _recognise(den)
                if rn is not None and rd is not None:
                    return rn, rd, "exact rational (recognised from high-precision arithmetic)", 0
            return num, den, label, zero_tol

    def make(pair, name):
        if pair is None:
            return None
        num, den, lab, tol = finish(pair)
        return StabilityFunction(num, den, name=name, arithmetic=lab, zero_tol=tol,
                                 coefficient_tol=coefficient_tol if tol else 0,
                                 value_tol=value_tol if tol else 0)

    return {
        "R": make(raw["R"], m.name),
        "embedded": make(raw["embedded"], f"{m.name} [embedded]"),
        "stages": [make(p, f"{m.name} [stage {i}]") for i, p in enumerate(raw["stages"])],
        "internal": [make(p, f"{m.name} [internal {j}]") for j, p in enumerate(raw["internal"])],
    }


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def stability_function(method: Any, *, embedded: bool = False) -> Any:
    """The stability function of ``method`` (a tableau, a multistep method or a name).

    Runge–Kutta methods give a :class:`StabilityFunction` ``R = P/Q``; ``embedded=True``
    gives that of the embedded solution ``b_embedded``.  Linear multistep methods give a
    :class:`~odernn_bridge.stability.multistep.MultistepStability`: callable, returning the
    largest root modulus of ρ(ζ) − zσ(ζ) (their analogue of |R(z)|).

    >>> import odernn_bridge as ob
    >>> ob.stability_function("Euler").numerator.tolist()
    [1.0, 1.0]
    >>> m = ob.ButcherTableau([["1/2"]], [1], name="ImplicitMidpoint")
    >>> [str(c) for c in ob.stability_function(m).exact[1]]
    ['1', '-1/2']
    """
    m = as_method(method)
    if isinstance(m, LinearMultistep):
        if embedded:
            raise ValueError(f"embedded: {m.name} is a linear multistep method and has no embedded solution")
        from .multistep import MultistepStability

        return MultistepStability(m)
    funcs = _all_functions(m)
    if embedded:
        if funcs["embedded"] is None:
            raise ValueError(f"embedded: {m.name} has no embedded weights (b_embedded is None)")
        return funcs["embedded"]
    return funcs["R"]


def stage_stability_functions(method: Any) -> list[StabilityFunction]:
    """``R_i(z) = [(I − zA)⁻¹𝟙]_i``: stage i's value for y' = λy, y_n = 1.

    >>> [f.numerator.tolist() for f in stage_stability_functions("Midpoint")]
    [[1.0], [1.0, 0.5]]
    """
    m = as_method(method)
    if isinstance(m, LinearMultistep):
        raise TypeError("method: stage functions are defined for Runge–Kutta methods only")
    return list(_all_functions(m)["stages"])


def internal_stability_functions(method: Any) -> list[StabilityFunction]:
    """Internal stability functions ``Q_j(z) = z bᵀ(I − zA)⁻¹ e_j``.

    A perturbation r_j of stage j reaches the step result multiplied by Q_j(dt·λ)
    (Ketcheson–Lóczi–Parsani 2014); for explicit methods they are polynomials of degree
    ≤ s − j.

    >>> [f.numerator.tolist() for f in internal_stability_functions("Midpoint")]
    [[0.0, 0.0, 0.5], [0.0, 1.0]]
    """
    m = as_method(method)
    if isinstance(m, LinearMultistep):
        raise TypeError("method: internal stability functions are defined for Runge–Kutta methods only")
    return list(_all_functions(m)["internal"])
