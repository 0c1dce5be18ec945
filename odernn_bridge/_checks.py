"""Argument checks shared by every layer (no torch, no numpy): errors name the argument."""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any

__all__ = ["check_positive_int", "check_int", "check_step_size", "MIN_STEP_SIZE", "MAX_STEP_SIZE"]

#: smallest accepted step size: the smallest normal float64 (a subnormal dt keeps a few bits
#: at most, and 1/dt overflows)
MIN_STEP_SIZE = sys.float_info.min
#: largest accepted step size: beyond it dt·f(h) and error terms such as dt^(p+1) overflow
#: float64 for ordinary fields (1e15·1e15 = 1e30; a 14th-order error term dt^15 stays below
#: 1e225) — a step of 1e300 is certainly a unit mistake
MAX_STEP_SIZE = 1e15


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as an int >= 1 (Python or NumPy integers; not bool), else a ValueError naming ``name``.

    >>> check_positive_int(3, "steps")
    3
    >>> check_positive_int(0, "steps")
    Traceback (most recent call last):
    ...
    ValueError: steps: expected a positive integer, got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def check_int(value: Any, name: str, *, lo: int, hi: int | None = None,
              error: type[Exception] = ValueError, what: str = "") -> int:
    """``value`` as an int in ``[lo, hi]`` (Python or NumPy integers; not bool), else ``error``
    naming ``name``; ``what`` explains where ``hi`` comes from.

    >>> check_int(3, "order", lo=1, hi=4)
    3
    >>> check_int(True, "order", lo=1)
    Traceback (most recent call last):
    ...
    ValueError: order: expected an integer, got True
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise error(f"{name}: expected an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise error(f"{name}: expected an integer {bound}{' (' + what + ')' if what else ''}, got {value!r}")
    return int(value)


def check_step_size(value: Any, name: str = "dt") -> float:
    """``value`` as a float step size in [:data:`MIN_STEP_SIZE`, :data:`MAX_STEP_SIZE`]
    (Python or NumPy real numbers; not bool), else a TypeError/ValueError naming ``name``.

    >>> check_step_size(0.1)
    0.1
    >>> check_step_size(1e300, "dts[0]")
    Traceback (most recent call last):
    ...
    ValueError: dts[0]: expected a step size <= 1e+15, got 1e+300 (a unit mistake?)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a positive number, got {type(value).__name__}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{name}: expected a finite step size > 0, got {x!r}")
    if x <= 0:
        raise ValueError(f"{name}: expected a step size > 0, got {x!r}")
    if x < MIN_STEP_SIZE:
        raise ValueError(f"{name}: expected a step size >= {MIN_STEP_SIZE:.4g} (not subnormal), got {x!r}")
    if x > MAX_STEP_SIZE:
        raise ValueError(f"{name}: expected a step size <= {MAX_STEP_SIZE:g}, got {x!r} (a unit mistake?)")
    return x
