"""Linear multistep methods.

Convention (ascending, as in nodepy and Hairer–Nørsett–Wanner III.2): a k-step method is

    sum_{j=0}^{k} alpha_j y_{n+j} = dt * sum_{j=0}^{k} beta_j f(y_{n+j}),

normalised so that ``alpha_k = 1``.  ``alpha[j]`` multiplies the state j steps after the
oldest one; the method is explicit iff ``beta_k = 0``.  The characteristic polynomials are
rho(zeta) = sum alpha_j zeta^j and sigma(zeta) = sum beta_j zeta^j.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Literal, Sequence

import numpy as np

from .._checks import check_int
from ..errors import MethodValidationError, OrderConditionError
from .exact import Coefficient, check_container, divide, format_coefficient, parse_vector, to_float

__all__ = ["LinearMultistep", "MAX_STEPS"]

#: most steps k of a multistep method (checked before any coefficient is parsed)
MAX_STEPS = 64


class LinearMultistep:
    """A linear multistep method ``(alpha, beta)`` in the ascending convention above.

    >>> ab2 = LinearMultistep([0, -1, 1], ["-1/2", "3/2", 0], name="AB2", order=2)
    >>> ab2.steps, ab2.explicit, ab2.order
    (2, True, 2)
    """

    def __init__(
        self,
        alpha: Sequence[Any],
        beta: Sequence[Any],
        name: str | None = None,
        order: int | None = None,
        *,
        citation: str = "",
        description: str = "",
        aliases: Sequence[str] = (),
        family: str = "",
        verify: bool = True,
    ) -> None:
        for nm, v in (("alpha", alpha), ("beta", beta)):
            check_container(v, nm, 1, "a 1-D vector (list of numbers)")
            if len(v) > MAX_STEPS + 1:
                raise MethodValidationError(f"{nm}: {len(v) - 1} steps is more than MAX_STEPS = {MAX_STEPS}")
        if order is not None:
            check_int(order, "order", lo=1, error=MethodValidationError)
            # a k-step method has at most 2k + 1 free coefficients: order <= 2k
            if order > 2 * (len(alpha) - 1):
                raise OrderConditionError(f"order: claimed {order}, but a {len(alpha) - 1}-step method has "
                                          f"order at most {2 * (len(alpha) - 1)}")
        for text_name, text in (("citation", citation), ("description", description), ("family", family)):
            if text is not None and not isinstance(text, str):
                raise MethodValidationError(f"{text_name}: expected a string, got {type(text).__name__}")
        if name is not None and not isinstance(name, str):
            raise MethodValidationError(f"name: expected a string or None, got {type(name).__name__}")
        if isinstance(aliases, (str, bytes)) or not all(isinstance(x, str) for x in aliases):
            raise MethodValidationError("aliases: expected a sequence of strings")
        a = parse_vector(alpha, where="alpha")
        bt = parse_vector(beta, where="beta")
        if len(a) < 2:
            raise MethodValidationError(f"alpha: a multistep method needs at least 2 coefficients, got {len(a)}")
        if len(bt) != len(a):
            raise MethodValidationError(f"beta: expected {len(a)} coefficients (same as alpha), got {len(bt)}")
        if not all(isinstance(x, Fraction) for x in a + bt):
            # keep floats/decimals but only as approximations
            pass
        lead = a[-1]
        if to_float(lead) == 0:
            raise MethodValidationError("alpha: the leading coefficient alpha_k must be nonzero")
        if lead != 1:
            a = [divide(x, lead, where=f"alpha[{i}]") for i, x in enumerate(a)]
            bt = [divide(x, lead, where=f"beta[{i}]") for i, x in enumerate(bt)]
        self._alpha = tuple(a)
        self._beta = tuple(bt)
        self.alpha = np.array([to_float(x) for x in a])
        self.beta = np.array([to_float(x) for x in bt])
        for arr, nm in ((self.alpha, "alpha"), (self.beta, "beta")):
            if not np.all(np.isfinite(arr)):
                raise MethodValidationError(f"{nm}: contains NaN or Inf")
            arr.setflags(write=False)
        self.steps = len(a) - 1
        self.stages = 1
        self.name = name or f"LinearMultistep{self.steps}"
        self.citation = citation
        self.description = description
        self.aliases = tuple(aliases)
        self.family = family
        if abs(float(np.sum(self.alpha))) > 1e-12:
            raise MethodValidationError(
                f"alpha: coefficients must sum to 0 for consistency, they sum to {np.sum(self.alpha)!r}")
        if abs(float(np.dot(np.arange(self.steps + 1), self.alpha) - np.sum(self.beta))) > 1e-12:
            raise MethodValidationError(
                "beta: inconsistent method: sum_j j*alpha_j must equal sum_j beta_j")
        self._claimed_order = int(order) if order is not None else None
        if verify and order is not None:
            got = self.verified_order()
            if got < order:
                raise OrderConditionError(
                    f"order: {self.name} claims order {order} but the order conditions hold only "
                    f"up to order {got}")

    kind: Literal["multistep"] = "multistep"

    @property
    def alpha_exact(self) -> tuple[Coefficient, ...]:
        return self._alpha

    @property
    def beta_exact(self) -> tuple[Coefficient, ...]:
        return self._beta

    @property
    def exact(self) -> tuple[tuple[Coefficient, ...], tuple[Coefficient, ...]] | None:
        if all(isinstance(x, Fraction) for x in self._alpha + self._beta):
            return (self._alpha, self._beta)
        return None

    @property
    def explicit(self) -> bool:
        return to_float(self._beta[-1]) == 0.0

    @property
    def is_explicit(self) -> bool:
        return self.explicit

    @property
    def implicit(self) -> bool:
        return not self.explicit

    def verified_order(self) -> int:
        from .order import _lmm_order

        if self.exact is None:
            # float coefficients: conditions with tolerance
            from math import factorial

            j = np.arange(self.steps + 1, dtype=float)
            p = 0
            for q in range(1, 2 * self.steps + 3):
                cq = np.dot(j ** q, self.alpha) / factorial(q) - np.dot(j ** (q - 1), self.beta) / factorial(q - 1)
                if abs(cq) > 1e-10:
                    break
                p = q
            return p
        return _lmm_order(self)

    @property
    def order(self) -> int:
        if self._claimed_order is None:
            self._claimed_order = self.verified_order()
        return int(self._claimed_order)

    @property
    def embedded_order(self) -> None:
        return None

    @property
    def error_constant(self) -> float:
        """C_{p+1} / sigma(1), the normalised error constant."""
        from .order import lmm_error_constants

        p = self.order
        if self.exact is None:
            raise MethodValidationError("error_constant: needs exact coefficients")
        c = lmm_error_constants(list(self._alpha), list(self._beta), p + 1)[p + 1]
        return float(c / sum(self._beta, Fraction(0)))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": "linear_multistep",
            "name": self.name,
            "alpha": [format_coefficient(x) for x in self._alpha],
            "beta": [format_coefficient(x) for x in self._beta],
            "order": self._claimed_order,
        }
        for key in ("citation", "description", "family"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        if self.aliases:
            d["aliases"] = list(self.aliases)
        return d

    def __repr__(self) -> str:
        return (f"LinearMultistep(name={self.name!r}, steps={self.steps}, "
                f"{'explicit' if self.explicit else 'implicit'}, order={self._claimed_order})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LinearMultistep):
            return NotImplemented
        return self._alpha == other._alpha and self._beta == other._beta

    def __hash__(self) -> int:
        return hash((self._alpha, self._beta))  # like __eq__: coefficients only, not the name
