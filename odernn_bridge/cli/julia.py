"""``odernn julia``: the optional Julia side.

* ``odernn julia status`` — what the offline detection finds (Julia executable and version,
  juliacall, juliapkg's state, diffeqpy), in well under a second where Julia is absent; exit
  code 0 when ``backend="julia"`` is usable, 1 otherwise;
* ``odernn julia setup [--diffeqpy]`` — the explicit one-time **online** setup: juliapkg
  installs the Julia packages declared in ``odernn_bridge/juliapkg.json`` (and those of other
  installed packages, e.g. diffeqpy), then the Julia module is loaded once as a check.
  Detection never installs anything; this command is the only place that does.
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("julia", help="Julia backend: status, one-time online setup",
                       description="The optional Julia reference backend (juliacall) and diffeqpy.")
    jsub = p.add_subparsers(dest="julia_command", metavar="SUBCOMMAND")
    s = jsub.add_parser("status", help="offline detection report (never installs anything)")
    s.set_defaults(func=_status)
    u = jsub.add_parser("setup", help="install the declared Julia packages (online, once)",
                        description="Let juliapkg resolve and install the Julia packages declared in "
                                    "odernn_bridge/juliapkg.json (needs network; Julia itself must be "
                                    "installed: `julia` on PATH or PYTHON_JULIAPKG_EXE), then load "
                                    "ODERNNBridge once as a check.")
    u.add_argument("--diffeqpy", action="store_true", help="also check that `from diffeqpy import ode` loads")
    u.set_defaults(func=_setup)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _status(args: argparse.Namespace) -> int:
    from ..reference.julia_env import probe, probe_diffeqpy

    jl = probe()
    print(f"julia backend:    {'ready' if jl.ok else 'unavailable'} ({jl.seconds:.2f} s)")
    if jl.executable:
        print(f"  executable:     {jl.executable}" + (f" (Julia {jl.version})" if jl.version else ""))
    if not jl.ok:
        print(f"  reason:         {jl.reason}")
    dq = probe_diffeqpy()
    print(f"diffeqpy backend: {'ready' if dq.ok else 'unavailable'} ({dq.seconds:.2f} s)")
    if not dq.ok:
        print(f"  reason:         {dq.reason}")
    return 0 if jl.ok else 1


def _setup(args: argparse.Namespace) -> int:
    from ..reference.julia_env import setup

    setup(diffeqpy=args.diffeqpy, out=sys.stdout)
    print("odernn julia setup: done")
    return 0
