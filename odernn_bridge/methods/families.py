"""Method families generated exactly from their defining formulas.

(Placeholder: filled by the implicit/multistep catalogue work.)
"""

from __future__ import annotations

from typing import Callable

__all__ = ["family_entries"]


def family_entries() -> list[tuple[str, str, Callable[[], object], tuple[str, ...]]]:
    """``(name, kind, factory, aliases)`` for every generated catalogue method."""
    return []
