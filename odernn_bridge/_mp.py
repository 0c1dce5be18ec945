"""One re-entrant lock for mpmath's process-wide precision (no torch, no numpy).

mpmath keeps its working precision in a single global context (``mpmath.mp``):
``mpmath.workdps`` sets it for the whole process and restores the value it saw on entry.
Two threads that each set a precision therefore corrupt each other — one runs its
60-digit computation at 15 digits, and the last one to leave restores a stale value, so
``mp.dps`` stays changed.  SymPy's numeric evaluation of ``CRootOf`` and polynomial roots
sets the same global precision.

Every section of the package that sets mpmath's precision, computes at it, or evaluates a
SymPy number runs under :data:`MP_LOCK` — through :func:`workdps`, :func:`evalf` or the
:func:`mp_guarded` decorator on the public analyses (verify_order, stability functions,
ray exits, ...), which keeps a whole analysis at one precision.  The lock is re-entrant
(nested sections of one thread are fine); mpmath and SymPy are pure Python, so the GIL
serialised these sections between threads already — the lock only makes that safe.
Code outside the package that changes ``mpmath.mp`` from another thread at the same time
is not covered: take :data:`MP_LOCK` around it.

>>> import mpmath
>>> before = mpmath.mp.dps
>>> with workdps(50):
...     mpmath.mp.dps
50
>>> mpmath.mp.dps == before
True
"""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

__all__ = ["MP_LOCK", "workdps", "evalf", "mp_guarded"]

#: held while mpmath's global precision is set or relied upon
MP_LOCK = threading.RLock()

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def workdps(dps: int) -> Iterator[None]:
    """``mpmath.workdps(dps)`` under :data:`MP_LOCK` (the precision is restored on exit)."""
    import mpmath

    with MP_LOCK, mpmath.workdps(int(dps)):
        yield


def evalf(expr: Any, digits: int) -> Any:
    """``sympy.N(expr, digits)`` under :data:`MP_LOCK` (SymPy sets mpmath's precision for
    ``CRootOf`` and root finding)."""
    import sympy

    with MP_LOCK:
        return sympy.N(expr, digits)


def mp_guarded(fn: F) -> F:
    """Run ``fn`` holding :data:`MP_LOCK`: its mpmath arithmetic at the ambient precision
    and its nested precision changes are not disturbed by other threads."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with MP_LOCK:
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
