"""The built-in catalogue of methods and the user registry.

Methods come from two sources:

* data files ``methods/data/*.json`` — tableaux transcribed from the literature with
  exact coefficients and a citation (``{"methods": [ {...}, ... ]}``, one dict per method
  in the format of :mod:`odernn_bridge.methods.serialization`);
* generated families (:mod:`odernn_bridge.methods.families`) — Gauss–Legendre, Radau,
  Lobatto, Adams and BDF methods built exactly from their defining formulas.

Names follow OrdinaryDiffEq.jl (see ARCHITECTURE.md); lookups are case-insensitive and
accept aliases.  Prefixed names (``"julia:Feagin14"``) are resolved by plugins.
"""

from __future__ import annotations

import difflib
import importlib
import json
import threading
from dataclasses import dataclass, field
from importlib import resources
from typing import Callable, Iterable

from ..errors import MethodFormatError, UnknownMethodError
from .multistep import LinearMultistep
from .serialization import Method, method_from_dict
from .tableau import ButcherTableau

__all__ = ["list_methods", "get_method", "as_method", "register_method", "method_info", "KINDS", "PREFIX_PLUGINS"]

KINDS = ("explicit", "diagonally_implicit", "implicit", "multistep")

#: prefix -> module providing ``resolve_method(name) -> Method`` (imported on demand)
PREFIX_PLUGINS: dict[str, str] = {"julia": "odernn_bridge.reference.julia"}


@dataclass
class _Entry:
    name: str
    kind: str
    factory: Callable[[], Method]
    aliases: tuple[str, ...] = ()
    source: str = ""
    adaptive: bool | None = None
    _method: Method | None = field(default=None, repr=False)

    def get(self) -> Method:
        if self._method is None:
            self._method = self.factory()
        return self._method


_LOCK = threading.RLock()
_ENTRIES: dict[str, _Entry] = {}
_LOOKUP: dict[str, str] = {}  # lower-case name or alias -> canonical
_LOADED = False


def _kind_of(m: Method) -> str:
    return "multistep" if isinstance(m, LinearMultistep) else m.kind


def _add(entry: _Entry, overwrite: bool = False) -> None:
    keys = [entry.name, *entry.aliases]
    for k in keys:
        owner = _LOOKUP.get(k.lower())
        if owner is not None and owner != entry.name and not overwrite:
            raise MethodFormatError(f"name: {k!r} is already used by method {owner!r}")
    if entry.name in _ENTRIES and not overwrite:
        raise MethodFormatError(f"name: a method named {entry.name!r} is already registered "
                                "(pass overwrite=True to replace it)")
    _ENTRIES[entry.name] = entry
    for k in keys:
        _LOOKUP[k.lower()] = entry.name


def _load_data_files() -> None:
    pkg = resources.files("odernn_bridge.methods") / "data"
    for f in sorted(pkg.iterdir(), key=lambda p: p.name):
        if not f.name.endswith(".json"):
            continue
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise MethodFormatError(f"catalogue file {f.name}: {exc}") from exc
        for i, d in enumerate(data.get("methods", [])):
            where = f"{f.name}[{i}]"
            if "name" not in d:
                raise MethodFormatError(f"{where}: catalogue entries need a name")
            kind = d.get("kind")
            factory = (lambda d=d, where=where: method_from_dict(d, verify=False, where=where))
            if kind is None:
                m = factory()
                kind = _kind_of(m)
                entry = _Entry(d["name"], kind, factory, tuple(d.get("aliases", ())), f.name,
                               adaptive="b_embedded" in d, _method=m)
            else:
                entry = _Entry(d["name"], kind, factory, tuple(d.get("aliases", ())), f.name,
                               adaptive="b_embedded" in d)
            _add(entry)


def _ensure_loaded() -> None:
    global _LOADED
    if _LOADED:
        return
    with _LOCK:
        if _LOADED:
            return
        _load_data_files()
        from .families import family_entries

        for name, kind, factory, aliases in family_entries():
            _add(_Entry(name, kind, factory, tuple(aliases), "families", adaptive=False))
        _LOADED = True


def list_methods(kind: str | None = None, *, adaptive: bool | None = None) -> list[str]:
    """Canonical names of the catalogue (and registered user methods), sorted.

    ``kind``: ``"explicit"``, ``"diagonally_implicit"``, ``"implicit"``, ``"multistep"``
    or None for all.  ``adaptive=True`` keeps only methods with embedded weights.

    >>> "RK4" in list_methods("explicit")
    True
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS} or None, got {kind!r}")
    _ensure_loaded()
    out = []
    for name, e in _ENTRIES.items():
        if kind is not None and e.kind != kind:
            continue
        if adaptive is not None and bool(e.adaptive) != adaptive:
            continue
        out.append(name)
    return sorted(out, key=str.lower)


def _resolve_prefixed(name: str) -> Method:
    prefix, _, rest = name.partition(":")
    module = PREFIX_PLUGINS.get(prefix.lower())
    if module is None:
        raise UnknownMethodError(name, [f"{p}:NAME" for p in PREFIX_PLUGINS])
    return importlib.import_module(module).resolve_method(rest)


def get_method(name: str | Method) -> Method:
    """The catalogue method called ``name`` (case-insensitive; aliases accepted).

    A method object is returned unchanged.  An unknown name raises
    :class:`~odernn_bridge.UnknownMethodError` listing the closest names.

    >>> get_method("rk4").name
    'RK4'
    """
    if isinstance(name, (ButcherTableau, LinearMultistep)):
        return name
    if not isinstance(name, str):
        raise TypeError(f"name: expected a method name (str) or a method, got {type(name).__name__}")
    _ensure_loaded()
    canonical = _LOOKUP.get(name.strip().lower())
    if canonical is None:
        if ":" in name:
            return _resolve_prefixed(name.strip())
        candidates = list(_LOOKUP)
        close = difflib.get_close_matches(name.lower(), candidates, n=5, cutoff=0.5)
        names = list(dict.fromkeys(_LOOKUP[c] for c in close))
        raise UnknownMethodError(name, names)
    return _ENTRIES[canonical].get()


def as_method(method: str | Method, argument: str = "method") -> Method:
    """A method object from a method or a catalogue name; anything else is a TypeError
    naming ``argument``.

    >>> as_method("rk4").name
    'RK4'
    """
    if isinstance(method, (ButcherTableau, LinearMultistep)):
        return method
    if isinstance(method, str):
        return get_method(method)
    raise TypeError(f"{argument}: expected a ButcherTableau, a LinearMultistep or a catalogue "
                    f"name, got {type(method).__name__}")


def register_method(method: Method, *, aliases: Iterable[str] = (), overwrite: bool = False) -> Method:
    """Add a user method to the registry so that ``get_method(method.name)`` finds it."""
    if not isinstance(method, (ButcherTableau, LinearMultistep)):
        raise TypeError(f"method: expected a ButcherTableau or LinearMultistep, got {type(method).__name__}")
    _ensure_loaded()
    with _LOCK:
        e = _Entry(method.name, _kind_of(method), lambda: method, tuple(aliases) + tuple(method.aliases),
                   "user", adaptive=getattr(method, "b_embedded", None) is not None, _method=method)
        _add(e, overwrite=overwrite)
    return method


def method_info(name: str) -> dict[str, object]:
    """Summary row (name, kind, stages, order, embedded order, steps, source)."""
    m = get_method(name)
    _ensure_loaded()
    e = _ENTRIES.get(m.name)
    return {
        "name": m.name,
        "kind": _kind_of(m),
        "stages": m.stages,
        "order": m.order,
        "embedded_order": getattr(m, "embedded_order", None),
        "steps": getattr(m, "steps", 1),
        "source": e.source if e else "",
    }
