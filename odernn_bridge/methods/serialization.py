"""Reading and writing methods as JSON or TOML.

A Runge–Kutta method::

    {"type": "runge_kutta", "name": "RK4", "order": 4,
     "A": [[], ["1/2"], [0, "1/2"], [0, 0, 1]],      # rows; lower triangle is enough
     "b": ["1/6", "1/3", "1/3", "1/6"],
     "c": [0, "1/2", "1/2", 1],                       # optional (row sums of A)
     "b_embedded": [...], "embedded_order": 3,        # optional
     "citation": "...", "aliases": ["ClassicRK4"]}

A linear multistep method: ``{"type": "linear_multistep", "alpha": [...], "beta": [...]}``
in the convention of :mod:`odernn_bridge.methods.multistep`.  Coefficients are numbers or
strings: rationals ``"1/6"``, algebraic expressions ``"1/2 - sqrt(3)/6"``, or long
decimals (kept to their published precision).  TOML files use the same keys (TOML has no
null: omit optional keys; an explicit tableau's empty first row may be written ``[]``).
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Union

from ..errors import MethodFormatError, MethodValidationError
from .multistep import LinearMultistep
from .tableau import ButcherTableau

__all__ = ["method_from_dict", "load_method", "save_method", "loads_method", "dumps_method", "Method"]

Method = Union[ButcherTableau, LinearMultistep]

_RK_KEYS = {"type", "name", "A", "b", "c", "b_embedded", "order", "embedded_order", "citation",
            "description", "aliases", "stage_order", "check_row_sums", "fsal", "kind", "notes"}
_LMM_KEYS = {"type", "name", "alpha", "beta", "order", "citation", "description", "aliases", "family",
             "notes", "kind"}


def method_from_dict(d: dict[str, Any], *, verify: bool = True, where: str = "method") -> Method:
    """Build a method from its dictionary description (see module docstring)."""
    if not isinstance(d, dict):
        raise MethodFormatError(f"{where}: expected a mapping, got {type(d).__name__}")
    typ = d.get("type")
    if typ is None:
        typ = "linear_multistep" if "alpha" in d else "runge_kutta"
    if typ not in ("runge_kutta", "linear_multistep"):
        raise MethodFormatError(f"{where}.type: expected 'runge_kutta' or 'linear_multistep', got {typ!r}")
    allowed = _RK_KEYS if typ == "runge_kutta" else _LMM_KEYS
    unknown = set(d) - allowed
    if unknown:
        raise MethodFormatError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    required = ("A", "b") if typ == "runge_kutta" else ("alpha", "beta")
    for key in required:
        if key not in d:
            raise MethodFormatError(f"{where}: missing required key {key!r}")
    name = d.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise MethodFormatError(f"{where}.name: expected a non-empty string, got {name!r}")
    for key in ("order", "embedded_order", "stage_order"):
        v = d.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise MethodFormatError(f"{where}.{key}: expected an integer, got {v!r}")
    aliases = d.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise MethodFormatError(f"{where}.aliases: expected a list of strings")
    common = dict(name=name, order=d.get("order"), citation=d.get("citation", ""),
                  description=d.get("description", ""), aliases=aliases, verify=verify)
    try:
        if typ == "runge_kutta":
            A = d["A"]
            if not isinstance(A, list) or not all(isinstance(r, list) for r in A):
                raise MethodFormatError(f"{where}.A: expected a list of rows (lists)")
            return ButcherTableau(A, d["b"], d.get("c"), d.get("b_embedded"),
                                  embedded_order=d.get("embedded_order"),
                                  stage_order=d.get("stage_order"),
                                  check_row_sums=d.get("check_row_sums", True),
                                  fsal=d.get("fsal"), **common)
        return LinearMultistep(d["alpha"], d["beta"], family=d.get("family", ""), **common)
    except MethodFormatError:
        raise
    except MethodValidationError as exc:
        raise type(exc)(f"{where} ({name}): {exc}") from exc


def loads_method(text: str, fmt: str = "json", *, verify: bool = True) -> Method:
    """Parse a method from JSON or TOML text."""
    try:
        if fmt == "json":
            data = json.loads(text)
        elif fmt == "toml":
            data = tomllib.loads(text)
        else:
            raise MethodFormatError(f"fmt: expected 'json' or 'toml', got {fmt!r}")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MethodFormatError(f"malformed {fmt.upper()}: {exc}") from exc
    return method_from_dict(data, verify=verify)


def _fmt_for(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    ext = path.suffix.lower()
    if ext == ".json":
        return "json"
    if ext == ".toml":
        return "toml"
    raise MethodFormatError(f"path: cannot tell the format of {str(path)!r}: use .json or .toml, or pass fmt=")


def load_method(path: str | os.PathLike[str], fmt: str | None = None, *, verify: bool = True) -> Method:
    """Load a method from a ``.json`` or ``.toml`` file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"path: no such method file: {str(p)!r}")
    return loads_method(p.read_text(encoding="utf-8"), _fmt_for(p, fmt), verify=verify)


def _toml_value(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise MethodFormatError(f"cannot write {type(v).__name__} to TOML")


def dumps_method(method: Method, fmt: str = "json") -> str:
    d = {k: v for k, v in method.to_dict().items() if v is not None}
    if fmt == "json":
        return json.dumps(d, indent=2) + "\n"
    if fmt == "toml":
        return "".join(f"{k} = {_toml_value(v)}\n" for k, v in d.items())
    raise MethodFormatError(f"fmt: expected 'json' or 'toml', got {fmt!r}")


def save_method(method: Method, path: str | os.PathLike[str], fmt: str | None = None) -> Path:
    """Write a method to JSON/TOML atomically (exact coefficients as strings)."""
    from ..io import atomic_write_text

    p = Path(path)
    return atomic_write_text(p, dumps_method(method, _fmt_for(p, fmt)))
