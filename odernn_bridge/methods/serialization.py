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

from ..errors import (
    MethodFileOrderError,
    MethodFileValidationError,
    MethodFormatError,
    MethodValidationError,
    OrderConditionError,
)
from .multistep import LinearMultistep
from .tableau import ButcherTableau

__all__ = ["method_from_dict", "load_method", "save_method", "loads_method", "dumps_method", "Method",
           "MAX_METHOD_FILE_BYTES"]

Method = Union[ButcherTableau, LinearMultistep]

_RK_KEYS = {"type", "name", "A", "b", "c", "b_embedded", "order", "embedded_order", "citation",
            "description", "aliases", "stage_order", "check_row_sums", "fsal", "kind", "notes"}
_LMM_KEYS = {"type", "name", "alpha", "beta", "order", "citation", "description", "aliases", "family",
             "notes", "kind"}


#: largest method text :func:`load_method` / :func:`loads_method` parse (the largest
#: catalogue method, GL10 written out exactly, is ~40 KB; Python's TOML parser takes about
#: a second per MiB)
MAX_METHOD_FILE_BYTES = 2**20

_KINDS = ("explicit", "diagonally_implicit", "implicit", "multistep")


def _check_types(d: dict[str, Any], where: str) -> None:
    """Types of the keys other than the coefficients (these are checked as they are parsed)."""
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
    for key in ("citation", "description", "notes", "family"):
        if key in d and not isinstance(d[key], str):
            raise MethodFormatError(f"{where}.{key}: expected a string, got {type(d[key]).__name__}")
    if "kind" in d and d["kind"] not in _KINDS:
        raise MethodFormatError(f"{where}.kind: expected one of {_KINDS}, got {d['kind']!r}")
    for key in ("check_row_sums", "fsal"):
        if key in d and not isinstance(d[key], bool):
            raise MethodFormatError(f"{where}.{key}: expected true or false, got {d[key]!r}")


def method_from_dict(d: dict[str, Any], *, verify: bool = True, where: str = "method") -> Method:
    """Build a method from its dictionary description (see module docstring).

    Every error is a :class:`~odernn_bridge.MethodFormatError` naming the key (and index);
    a method that parses but fails its checks raises
    :class:`~odernn_bridge.errors.MethodFileValidationError` (also a
    ``MethodValidationError``; ``MethodFileOrderError`` for a refuted order claim).

    >>> method_from_dict({"A": [[], ["1/2"]], "b": [0, 1], "order": 2}).kind
    'explicit'
    """
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
    _check_types(d, where)
    name = d.get("name")
    common = dict(name=name, order=d.get("order"), citation=d.get("citation", ""),
                  description=d.get("description", ""), aliases=d.get("aliases", []), verify=verify)
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
    except MethodFormatError as exc:
        if str(exc).startswith(f"{where}"):
            raise
        raise MethodFormatError(f"{where}{f' ({name})' if name else ''}: {exc}") from exc
    except MethodValidationError as exc:
        cls = MethodFileOrderError if isinstance(exc, OrderConditionError) else MethodFileValidationError
        raise cls(f"{where}{f' ({name})' if name else ''}: {exc}") from exc


def _decode(data: bytes, where: str) -> str:
    # a UTF-8 byte-order mark (written by some Windows editors) is accepted and dropped
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MethodFormatError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def loads_method(text: str | bytes, fmt: str = "json", *, verify: bool = True, where: str = "method") -> Method:
    """Parse a method from JSON or TOML text (``str``, or UTF-8 ``bytes``).

    Untrusted text is safe: nothing in it is evaluated, the work is bounded (see the limits
    in ``docs/methods.md``) and every error is a :class:`~odernn_bridge.MethodFormatError`.
    A leading UTF-8 byte-order mark is ignored.

    >>> loads_method('{"A": [[0]], "b": [1], "order": 1}').stages
    1
    """
    if fmt not in ("json", "toml"):
        raise MethodFormatError(f"fmt: expected 'json' or 'toml', got {fmt!r}")
    if isinstance(text, (str, bytes, bytearray)) and len(text) > MAX_METHOD_FILE_BYTES:
        raise MethodFormatError(f"{where}: larger than MAX_METHOD_FILE_BYTES = {MAX_METHOD_FILE_BYTES} bytes")
    if isinstance(text, (bytes, bytearray)):
        text = _decode(bytes(text), where)
    elif not isinstance(text, str):
        raise MethodFormatError(f"text: expected str or bytes, got {type(text).__name__}")
    text = text.removeprefix("\ufeff")
    try:
        data = json.loads(text) if fmt == "json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MethodFormatError(f"{where}: malformed {fmt.upper()}: {exc}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        # ValueError: integers beyond Python's 4300-digit conversion limit; RecursionError:
        # arrays nested thousands deep
        raise MethodFormatError(f"{where}: malformed {fmt.upper()}: {type(exc).__name__}: "
                                f"{str(exc)[:200]}") from None
    return method_from_dict(data, verify=verify, where=where)


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
    """Load a method from a ``.json`` or ``.toml`` file (see :func:`loads_method`).

    Files larger than ``MAX_METHOD_FILE_BYTES`` (1 MiB) are refused unread.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"path: no such method file: {str(p)!r}")
    fmt = _fmt_for(p, fmt)
    with open(p, "rb") as fh:
        data = fh.read(MAX_METHOD_FILE_BYTES + 1)
    if len(data) > MAX_METHOD_FILE_BYTES:
        raise MethodFormatError(f"{p.name}: larger than MAX_METHOD_FILE_BYTES = {MAX_METHOD_FILE_BYTES} bytes")
    return loads_method(data, fmt, verify=verify, where=p.name)


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
