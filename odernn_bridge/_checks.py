"""Argument checks shared by every layer (no torch, no numpy): errors name the argument."""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["check_positive_int"]


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
