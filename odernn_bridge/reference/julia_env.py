"""Finding Julia without ever hanging or installing anything, and the one-time online setup.

Detection (:func:`probe`) is offline and bounded in time:

1. a Julia executable is ``$PYTHON_JULIAPKG_EXE`` or ``julia`` on ``PATH``.  ``juliaup`` alone
   does not count (juliapkg would then download a Julia over the network);
2. ``julia --version`` must answer within :data:`PROBE_TIMEOUT_S` (a ``julia`` that never
   answers is killed, with its process group, and reported) and be at least 1.10;
3. juliacall must be installed;
4. juliapkg must already have resolved the declared packages (``odernn_bridge/juliapkg.json``)
   — asked with ``juliapkg.resolve(dry_run=True)`` in a child process with a time limit, which
   installs nothing.

Only when all four hold is juliacall imported (by :mod:`odernn_bridge.reference.julia`), so
importing it can neither download Julia nor install packages.  The packages are installed by
an explicit, online, one-time step: ``odernn julia setup`` (:func:`setup`).  The environment
variable ``PYTHON_JULIAPKG_OFFLINE`` is left to the user (the test suite sets it).

>>> r = probe_executable(None)
>>> r.ok, "Julia" in r.reason
(False, True)
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = ["Probe", "PROBE_TIMEOUT_S", "MIN_JULIA", "julia_executable", "probe_executable", "probe",
           "probe_diffeqpy", "run_bounded", "juliapkg_json_path", "setup", "SETUP_HINT"]

#: seconds ``julia --version`` may take before Julia counts as unavailable (the whole
#: "unavailable" answer stays under a second); ``$ODERNN_JULIA_PROBE_TIMEOUT`` overrides it
PROBE_TIMEOUT_S = 0.5
#: seconds the (offline) juliapkg state check may take once Julia has answered
RESOLVE_CHECK_TIMEOUT_S = 20.0
#: oldest Julia the declared packages support (juliapkg.json: "julia": "^1.10")
MIN_JULIA = (1, 10)

SETUP_HINT = ("run `odernn julia setup` once (online: juliapkg installs the packages declared in "
              "odernn_bridge/juliapkg.json)")
INSTALL_HINT = ("install Julia >= 1.10 so that `julia` is on PATH (https://julialang.org/install; with "
                "juliaup run `juliaup add release` first — juliaup alone is not a Julia) or set "
                "PYTHON_JULIAPKG_EXE to a julia executable; then `pip install 'odernn_bridge[julia]'` "
                f"and {SETUP_HINT}")


@dataclass
class Probe:
    """Outcome of an offline check: ``ok``, a ``reason`` when not, and what was found."""

    ok: bool
    reason: str = ""
    executable: str | None = None
    version: str | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


def _timeout() -> float:
    raw = os.environ.get("ODERNN_JULIA_PROBE_TIMEOUT")
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = PROBE_TIMEOUT_S
        if value > 0:
            return value
    return PROBE_TIMEOUT_S


def run_bounded(cmd: Sequence[str], timeout: float, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``cmd`` with no stdin and a wall-clock limit; on timeout kill its whole process
    group (a shell script's children too) and raise :class:`subprocess.TimeoutExpired`.

    >>> run_bounded([sys.executable, "-c", "print(42)"], 10)[:2]
    (0, '42\\n')
    """
    kw: dict[str, Any] = {"start_new_session": True} if os.name == "posix" else {}
    proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if os.name == "posix":
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # the group we created for this child
            except ProcessLookupError:
                pass
        else:  # pragma: no cover - Windows
            proc.kill()
        proc.communicate()
        raise
    return proc.returncode, out, err


def julia_executable() -> str | None:
    """``$PYTHON_JULIAPKG_EXE`` if set (whether usable or not: the probe reports it), else
    ``julia`` on ``PATH``; never ``juliaup``."""
    exe = os.environ.get("PYTHON_JULIAPKG_EXE")
    if exe:
        return exe
    return shutil.which("julia")


_VERSION_RE = re.compile(r"julia version (\d+)\.(\d+)\.(\d+)\S*", re.IGNORECASE)


def probe_executable(exe: str | None, timeout: float | None = None) -> Probe:
    """Whether ``exe`` is a Julia >= 1.10 that answers ``--version`` within ``timeout``."""
    start = time.perf_counter()
    limit = _timeout() if timeout is None else timeout

    def done(ok: bool, reason: str = "", version: str | None = None) -> Probe:
        return Probe(ok, reason, exe, version, time.perf_counter() - start)

    if exe is None:
        juliaup = shutil.which("juliaup")
        extra = (f" (juliaup is at {juliaup}, but juliaup alone does not count: no `julia` channel is on PATH)"
                 if juliaup else "")
        return done(False, f"no Julia found: neither PYTHON_JULIAPKG_EXE nor `julia` on PATH{extra}; {INSTALL_HINT}")
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        return done(False, f"{exe!r} (PYTHON_JULIAPKG_EXE) is not an executable file; {INSTALL_HINT}")
    try:
        rc, out, err = run_bounded([exe, "--version"], limit)
    except subprocess.TimeoutExpired:
        return done(False, f"`{exe} --version` did not answer within {limit:g} s (killed); treating Julia as "
                           "unavailable")
    except OSError as exc:
        return done(False, f"`{exe} --version` could not run ({type(exc).__name__}: {exc})")
    m = _VERSION_RE.search(out or "")
    if rc != 0 or m is None:
        return done(False, f"`{exe} --version` gave exit code {rc} and no Julia version "
                           f"({(out or err or '').strip()[:80]!r})")
    version = ".".join(m.groups())
    if tuple(int(x) for x in m.groups()[:2]) < MIN_JULIA:
        return done(False, f"Julia {version} at {exe} is too old: the declared packages need Julia >= "
                           f"{MIN_JULIA[0]}.{MIN_JULIA[1]}", version)
    return done(True, "", version)


def juliapkg_json_path() -> Path:
    """The package's ``juliapkg.json`` (what juliapkg installs)."""
    return Path(__file__).resolve().parents[1] / "juliapkg.json"


_RESOLVED_CHECK = """
import json, sys
import juliapkg
from juliapkg.state import STATE
ok = juliapkg.resolve(dry_run=True)
print(json.dumps({"resolved": bool(ok), "executable": STATE.get("executable"), "project": STATE.get("project")}))
"""


def _juliapkg_resolved(timeout: float) -> Probe:
    """Ask juliapkg, in a child process with a time limit, whether its environment is already
    resolved (``resolve(dry_run=True)`` installs nothing)."""
    start = time.perf_counter()
    env = dict(os.environ)
    # the child must see the same juliapkg.json files (juliapkg scans sys.path)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    try:
        rc, out, err = run_bounded([sys.executable, "-c", _RESOLVED_CHECK], timeout, env=env)
    except subprocess.TimeoutExpired:
        return Probe(False, f"juliapkg's state check took more than {timeout:g} s (another process resolving?)",
                     seconds=time.perf_counter() - start)
    elapsed = time.perf_counter() - start
    if rc != 0:
        last = (err or "").strip().splitlines()[-1:] or ["?"]
        return Probe(False, f"juliapkg's state check failed ({last[0][:120]})", seconds=elapsed)
    try:
        info = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return Probe(False, f"juliapkg's state check printed no result ({out[:80]!r})", seconds=elapsed)
    if not info.get("resolved"):
        return Probe(False, f"the Julia packages are not installed yet (juliapkg project "
                            f"{info.get('project')}): {SETUP_HINT}", seconds=elapsed, details=info)
    return Probe(True, "", info.get("executable"), seconds=elapsed, details=info)


def probe() -> Probe:
    """Offline, bounded check that the juliacall route can load (see module docstring)."""
    start = time.perf_counter()
    exe = probe_executable(julia_executable())
    if not exe.ok:
        exe.seconds = time.perf_counter() - start
        return exe
    if importlib.util.find_spec("juliacall") is None:
        return Probe(False, "the Julia backend needs juliacall, which is not installed: "
                            "pip install 'odernn_bridge[julia]'", exe.executable, exe.version,
                     time.perf_counter() - start)
    state = _juliapkg_resolved(RESOLVE_CHECK_TIMEOUT_S)
    return Probe(state.ok, state.reason, exe.executable, exe.version, time.perf_counter() - start, state.details)


def probe_diffeqpy() -> Probe:
    """Offline, bounded check for ``backend="diffeqpy"``: ``julia`` on PATH (diffeqpy starts
    its Julia installer otherwise — ``$PYTHON_JULIAPKG_EXE`` is not enough), diffeqpy and
    juliacall installed, and juliapkg's environment resolved.  diffeqpy 2.6 declares its Julia
    packages (OrdinaryDiffEq, OrdinaryDiffEqDefault, DifferentialEquations, ...) in its own
    ``juliapkg.json``; juliapkg installs them with ours, into one environment, during
    ``odernn julia setup`` — otherwise ``from diffeqpy import ode`` would ``Pkg.add`` them."""
    start = time.perf_counter()
    exe = probe_executable(shutil.which("julia"))
    if not exe.ok:
        exe.reason = f"diffeqpy needs `julia` on PATH: {exe.reason}"
        exe.seconds = time.perf_counter() - start
        return exe
    for module, extra in (("juliacall", "julia"), ("diffeqpy", "diffeqpy")):
        if importlib.util.find_spec(module) is None:
            return Probe(False, f"{module} is not installed: pip install 'odernn_bridge[{extra}]'", exe.executable,
                         exe.version, time.perf_counter() - start)
    state = _juliapkg_resolved(RESOLVE_CHECK_TIMEOUT_S)
    return Probe(state.ok, state.reason, exe.executable, exe.version, time.perf_counter() - start, state.details)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def setup(*, diffeqpy: bool = False, out: Any = None) -> dict[str, str]:
    """The explicit one-time **online** setup: juliapkg resolves and installs the packages
    declared in ``odernn_bridge/juliapkg.json`` — and those of every other installed package
    that declares some, e.g. diffeqpy — into its project (``{venv}/julia_env`` in a virtual
    environment), then the Julia module is loaded once as a check; with ``diffeqpy=True``
    ``from diffeqpy import ode`` is checked too.  Returns the versions loaded.

    Raises :class:`~odernn_bridge.JuliaUnavailableError` with what is missing (no Julia, no
    juliacall, ``PYTHON_JULIAPKG_OFFLINE=yes``) before touching the network.
    """
    from ..errors import JuliaUnavailableError

    say = (lambda msg: print(msg, file=out)) if out is not None else (lambda msg: None)
    exe = probe_executable(julia_executable(), timeout=max(_timeout(), 10.0))
    if not exe.ok:
        raise JuliaUnavailableError(exe.reason)
    say(f"Julia {exe.version} at {exe.executable}")
    if importlib.util.find_spec("juliacall") is None:
        raise JuliaUnavailableError("juliacall is not installed: pip install 'odernn_bridge[julia]'")
    offline = os.environ.get("PYTHON_JULIAPKG_OFFLINE", "").strip().lower()
    if offline in ("yes", "true", "1"):
        raise JuliaUnavailableError("PYTHON_JULIAPKG_OFFLINE is set: the setup must download packages; "
                                    "unset it for this command")
    import juliapkg  # noqa: PLC0415 - only for the explicit setup

    say(f"juliapkg: resolving {juliapkg_json_path()} (sha256 {_sha256(juliapkg_json_path())[:12]}) ...")
    juliapkg.resolve()
    say(f"juliapkg project: {juliapkg.project()}")
    from . import julia as jl  # noqa: PLC0415

    jl.reset_detection()
    ok, reason = jl.detect()
    if not ok:
        raise JuliaUnavailableError(f"packages installed but ODERNNBridge did not load: {reason}")
    versions = jl.JuliaBackend().version_info()
    say("loaded: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    if diffeqpy:
        if shutil.which("julia") is None:
            raise JuliaUnavailableError("diffeqpy needs `julia` on PATH (PYTHON_JULIAPKG_EXE is not enough)")
        if importlib.util.find_spec("diffeqpy") is None:
            raise JuliaUnavailableError("diffeqpy is not installed: pip install 'odernn_bridge[diffeqpy]'")
        from . import diffeqpy_backend as dq  # noqa: PLC0415

        dq.reset_detection()
        ok, reason = dq.detect_diffeqpy()
        if not ok:
            raise JuliaUnavailableError(f"diffeqpy set up but not usable: {reason}")
        versions["diffeqpy:OrdinaryDiffEq"] = dq.DiffeqpyBackend().version_info()["OrdinaryDiffEq"]
        say(f"diffeqpy: `from diffeqpy import ode` gives OrdinaryDiffEq {versions['diffeqpy:OrdinaryDiffEq']}")
    return versions
