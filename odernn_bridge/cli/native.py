"""``odernn native``: the fused kernel's native (C++) loop.

Builds it now if it is not built yet (e.g. while preparing an image, instead of on the first
fused call) and reports where it is, how long the build took, or why it is not used.  Exit
code 0 when the native loop is available, 1 when the Python loop will be used instead.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("native", help="build/report the native loop of the fused RK kernel",
                       description="Build (once, cached) and report the native C++ loop of the fused "
                                   "explicit RK kernel; ODERNN_NATIVE=0 disables it, =1 makes a failure "
                                   "an error.")
    p.set_defaults(func=_native)


def _native(args: argparse.Namespace) -> int:
    from ..cells import native_status

    st = native_status()
    if st["available"]:
        built = f", built in {st['build_seconds']:.1f} s" if st["build_seconds"] else ", loaded from the cache"
        print(f"native loop: ready ({st['path']}{built})")
        return 0
    print(f"native loop: unavailable, the Python loop is used ({st['reason']})")
    return 1
