"""Argument checks shared by every layer (no torch, no numpy): errors name the argument."""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["check_positive_int", "check_int"]


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
