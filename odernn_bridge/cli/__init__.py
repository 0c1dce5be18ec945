"""The ``odernn`` command.

Each command group lives in its own module of this package and exposes
``register(subparsers)``; handlers return an exit code.  Heavy imports happen inside
handlers so that ``odernn methods`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .. import __version__
from ..errors import OdernnError

# modules that register subcommands, in help order; a missing module is skipped
_COMMAND_MODULES = (
    "demo",
    "methods",
    "stability",
    "validate",
    "train",
    "theory",
    "julia",
    "sweep",
    "native",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="odernn",
        description="Recurrent neural networks from numerical ODE integrators.",
    )
    parser.add_argument("--version", action="version", version=f"odernn_bridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        mod.register(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"odernn: {category.__name__}: {message}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    warnings.showwarning = _show_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (OdernnError, ValueError, LookupError, OSError) as exc:  # OSError: missing/unreadable files
        print(f"odernn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
