"""Bounded, thread-safe caches keyed on what a method *is*, never on ``id()`` (no torch, no numpy).

``id(obj)`` is only unique among objects alive at the same time: CPython reuses the id of a
collected tableau for the next one, so a cache keyed on it hands one method's results to
another.  Keys here are :func:`content_key` — the stored coefficients as written — and the
caches are LRU-bounded.

>>> cache = LRUCache(maxsize=2)
>>> cache.get_or_compute("a", lambda: 1), cache.get_or_compute("a", lambda: 2)
(1, 1)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable, TypeVar

__all__ = ["LRUCache", "content_key"]

V = TypeVar("V")

_MISSING = object()
#: fields of ``to_dict()`` that are not coefficients: descriptions, and claimed orders (a
#: claim is either verified from the coefficients or, unverified, not used by analyses)
_NOT_CONTENT = frozenset({"name", "aliases", "citation", "description", "family", "order",
                          "embedded_order", "stage_order"})


class LRUCache:
    """A mapping that keeps at most ``maxsize`` entries, evicting the least recently used.

    Thread-safe; :meth:`get_or_compute` runs the computation *outside* the cache's lock, so a
    computation may take other locks (e.g. mpmath's) without risk of deadlock — two threads
    missing the same key both compute it, and the values are equal.
    """

    def __init__(self, maxsize: int) -> None:
        if not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize: expected a positive integer, got {maxsize!r}")
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            value = self._data.get(key, _MISSING)
            if value is _MISSING:
                return default
            self._data.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> V:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            value = compute()
            self.put(key, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data


def _freeze(value: Any) -> Hashable:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def content_key(method: Any) -> Hashable:
    """A hashable key equal for two methods exactly when their stored coefficients are
    written the same (type and coefficients *as stored*; not the name).

    Stricter than ``==`` on purpose: ``Fraction(1, 2)`` and ``Decimal("0.50000000000")``
    compare equal but are analysed differently (exact vs. to the published digits).
    Memoised on the object (methods are immutable).  Objects without ``to_dict()`` are
    their own key (they must then hash by value, not by identity).

    >>> from odernn_bridge.methods import get_method
    >>> content_key(get_method("RK4")) == content_key(get_method("RK4").with_name("mine"))
    True
    """
    memo = getattr(method, "__dict__", {}).get("_content_key")
    if memo is not None:
        return memo
    to_dict = getattr(method, "to_dict", None)
    if to_dict is None:
        return method
    d = {k: v for k, v in to_dict().items() if k not in _NOT_CONTENT}
    key = (type(method).__name__, _freeze(d))
    try:
        method.__dict__["_content_key"] = key
    except (AttributeError, TypeError):  # pragma: no cover - slotted objects
        pass
    return key
