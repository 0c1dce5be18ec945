"""Native (C++) sequence loop of the fused explicit kernel, built on first use.

The Python loop of :mod:`.fused` dispatches about 17 ATen operations per RK4 step, and
ATen runs elementwise operations on tensors below 32 768 values on one thread; the loop in
``native/rk_kernel.cpp`` removes the Python between operations and spreads each stage's
elementwise work over the intra-op threads (``at::parallel_for``).  The matrix products and
activations are still ATen's.

**Build.** The source is compiled once per (source, torch version, compiler, flags) with
the C++ compiler ``$CXX`` (default ``c++``), against the installed torch's headers and
libraries (about 8 s on 2 cores), into a cache directory — ``$ODERNN_NATIVE_CACHE``, else
``$XDG_CACHE_HOME/odernn_bridge/native``, else ``~/.cache/odernn_bridge/native`` — with a
file lock (concurrent processes build it once) and an atomic rename (no half-written
library is ever loaded).  Later processes load the cached library in milliseconds.

**Control** (``ODERNN_NATIVE``): ``auto`` (default) builds when a compiler is found and
falls back to the Python loop, with one :class:`NativeKernelWarning`, if building or
loading fails; ``0``/``off`` never uses it; ``1``/``require`` raises
:class:`~odernn_bridge.errors.NativeKernelError` instead of falling back.
:func:`native_status` reports what happened.  Results agree with the Python loop to
rounding (the tests hold them to 1e-12 in float64).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import NativeKernelError, NativeKernelWarning  # the warning is re-exported here

__all__ = ["native_status", "rk_sequence_op", "rk_backward_op", "NativeKernelWarning", "SOURCE"]

SOURCE = Path(__file__).with_name("native") / "rk_kernel.cpp"
_LIB_NAME = "odernn_native"
_lock = threading.Lock()
_state: dict[str, Any] = {"tried": False, "op": None, "backward_op": None, "path": None, "reason": None,
                          "build_seconds": None, "mode": None}


def _mode() -> str:
    v = os.environ.get("ODERNN_NATIVE", "auto").strip().lower()
    if v in ("", "auto"):
        return "auto"
    if v in ("0", "off", "false", "no"):
        return "off"
    if v in ("1", "on", "require", "true", "yes"):
        return "require"
    raise NativeKernelError(f"ODERNN_NATIVE: expected auto, off (0) or require (1), got {v!r}")


def cache_dir() -> Path:
    """Where built libraries are kept (see the module docstring)."""
    env = os.environ.get("ODERNN_NATIVE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "odernn_bridge" / "native"


def _compiler() -> str | None:
    cxx = os.environ.get("CXX", "c++")
    return shutil.which(cxx) if not os.path.isabs(cxx) else (cxx if os.access(cxx, os.X_OK) else None)


def _compiler_version(cxx: str) -> str:
    try:
        r = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).splitlines()[0] if (r.stdout or r.stderr) else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _flags() -> list[str]:
    tdir = Path(torch.__file__).parent
    inc = tdir / "include"
    lib = tdir / "lib"
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI) if hasattr(torch._C, "_GLIBCXX_USE_CXX11_ABI") else 1
    return ["-O3", "-std=c++20", "-fPIC", "-shared", "-fopenmp", "-DAT_PER_OPERATOR_HEADERS",
            f"-D_GLIBCXX_USE_CXX11_ABI={abi}", "-w",
            f"-I{inc}", f"-I{inc / 'torch' / 'csrc' / 'api' / 'include'}",
            f"-L{lib}", "-ltorch_cpu", "-lc10", f"-Wl,-rpath,{lib}"]


def _build_key(cxx: str) -> str:
    h = hashlib.sha256()
    for part in (SOURCE.read_bytes(), torch.__version__.encode(), str(Path(torch.__file__).parent).encode(),
                 cxx.encode(), _compiler_version(cxx).encode(), " ".join(_flags()).encode(),
                 sys.platform.encode()):
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:20]


def _build(cxx: str, target: Path) -> float:
    """Compile into ``target`` under a file lock, atomically; returns the seconds spent (0 if
    another process built it meanwhile)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.with_suffix(".lock")
    with open(lock_path, "a+") as lock_file:
        try:
            import fcntl

            fcntl.flock(lock_file, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - no fcntl (Windows): no cross-process lock
            pass
        if target.exists():
            return 0.0
        t0 = time.perf_counter()
        fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            cmd = [cxx, str(SOURCE), "-o", tmp, *_flags()]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                lines = (r.stderr or r.stdout).strip().splitlines()
                errors = [ln.strip() for ln in lines if "error" in ln.lower()] or lines[-3:]
                raise NativeKernelError(f"compiling the native kernel failed ({Path(cxx).name} exit {r.returncode}): "
                                        + " | ".join(errors[:3])[:600])
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return time.perf_counter() - t0


def _load() -> tuple[Callable[..., Any], Callable[..., Any]]:
    cxx = _compiler()
    if cxx is None:
        raise NativeKernelError(f"no C++ compiler: {os.environ.get('CXX', 'c++')!r} was not found on PATH "
                                "(set CXX, or ODERNN_NATIVE=0 to silence this)")
    target = cache_dir() / _build_key(cxx) / f"{_LIB_NAME}.so"
    built = 0.0
    if not target.exists():
        built = _build(cxx, target)
    torch.ops.load_library(str(target))
    _state["path"] = str(target)
    _state["build_seconds"] = built if built else None
    return torch.ops.odernn_bridge.rk_sequence, torch.ops.odernn_bridge.rk_backward


def rk_sequence_op() -> Callable[..., Any] | None:
    """The native ``rk_sequence`` operator, building/loading it on the first call; ``None``
    when disabled or unavailable (``auto`` mode warns once), see the module docstring."""
    if _state["tried"]:
        return _state["op"]
    with _lock:
        if _state["tried"]:
            return _state["op"]
        mode = _mode()
        _state["mode"] = mode
        if mode == "off":
            _state.update(tried=True, reason="disabled by ODERNN_NATIVE=0")
            return None
        if not sys.platform.startswith("linux"):
            reason = f"the native kernel is built on Linux only (this is {sys.platform})"
            if mode == "require":
                raise NativeKernelError(reason)
            _state.update(tried=True, reason=reason)
            return None
        try:
            op, backward_op = _load()
        except Exception as exc:  # noqa: BLE001 - any build/load failure falls back in auto mode
            reason = f"{type(exc).__name__}: {exc}"
            _state.update(tried=True, reason=reason)
            if mode == "require":
                raise exc if isinstance(exc, NativeKernelError) else NativeKernelError(reason) from exc
            warnings.warn(f"odernn_bridge: native fused kernel unavailable, using the Python loop ({reason})",
                          NativeKernelWarning, stacklevel=3)
            return None
        _state.update(tried=True, op=op, backward_op=backward_op, reason=None)
        return op


def rk_backward_op() -> Callable[..., Any] | None:
    """The native ``rk_backward`` operator (the reverse pass), from the same library."""
    rk_sequence_op()
    return _state["backward_op"]


def native_status() -> dict[str, Any]:
    """Whether the native kernel is in use: ``available``, ``mode``, ``path`` of the
    library, ``build_seconds`` (this process built it) and ``reason`` when it is not used.
    Builds/loads it if that was not tried yet (unless disabled)."""
    op = rk_sequence_op()
    return {"available": op is not None, "mode": _state["mode"], "path": _state["path"],
            "build_seconds": _state["build_seconds"], "reason": _state["reason"], "source": str(SOURCE)}
