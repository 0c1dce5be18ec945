"""Exception types shared by every layer of :mod:`odernn_bridge`."""

from __future__ import annotations

__all__ = [
    "OdernnError",
    "MethodValidationError",
    "OrderConditionError",
    "UnknownMethodError",
    "MethodFormatError",
    "MethodFileValidationError",
    "MethodFileOrderError",
    "FileFormatError",
    "JuliaUnavailableError",
    "ConvergenceError",
    "NonFiniteError",
    "UnsupportedOperationError",
    "MaxStepsWarning",
    "SweepResumeError",
    "NativeKernelError",
    "NativeKernelWarning",
]


class OdernnError(Exception):
    """Base class of all errors raised on purpose by odernn_bridge."""


class MethodValidationError(OdernnError, ValueError):
    """A Butcher tableau or multistep method failed its consistency checks."""


class OrderConditionError(MethodValidationError):
    """A claimed order is refuted by the order conditions."""


class MethodFormatError(OdernnError, ValueError):
    """A method file (JSON/TOML) is malformed."""


class MethodFileValidationError(MethodFormatError, MethodValidationError):
    """A method file (JSON/TOML) parsed, but the method it describes failed its checks.

    Every error of the method loaders is a :class:`MethodFormatError`; this one is also the
    :class:`MethodValidationError` the constructor raised, so both ``except`` clauses work.
    """


class MethodFileOrderError(MethodFileValidationError, OrderConditionError):
    """A method file claims an order that the order conditions refute."""


class FileFormatError(OdernnError, ValueError):
    """A checkpoint, run history (NetCDF) or run configuration file is corrupt, truncated,
    not written by odernn_bridge, or larger than the limits the loaders accept."""


class UnknownMethodError(OdernnError, LookupError):
    """No method with the requested name; the message lists the closest names."""

    def __init__(self, name: str, suggestions: list[str] | None = None) -> None:
        self.name = name
        self.suggestions = list(suggestions or [])
        msg = f"unknown method {name!r}"
        if self.suggestions:
            msg += "; closest names: " + ", ".join(self.suggestions)
        msg += " (see odernn_bridge.list_methods())"
        super().__init__(msg)

    def __str__(self) -> str:  # LookupError would repr() the message otherwise
        return self.args[0]


class JuliaUnavailableError(OdernnError, RuntimeError):
    """The Julia backend was requested but Julia (or juliacall) is not usable."""


class ConvergenceError(OdernnError, RuntimeError):
    """An iterative solve (Newton, step-size control) did not converge."""


class NonFiniteError(OdernnError, FloatingPointError):
    """NaN or Inf detected where finite numbers are required."""


class UnsupportedOperationError(OdernnError, NotImplementedError):
    """A backend was asked for something it cannot do (e.g. fixed-step solving through
    ``backend="diffeqpy"``, which gives reference solutions only)."""


class MaxStepsWarning(RuntimeWarning):
    """An adaptive integration stopped at ``max_steps`` before covering its interval: the state
    returned is where it stopped, not the solution at the end of the interval."""


class SweepResumeError(OdernnError, ValueError):
    """A sweep's partial results on disk were made with other settings than the rerun's."""


class NativeKernelError(OdernnError, RuntimeError):
    """The native fused kernel was required (``ODERNN_NATIVE=1``) but could not be built or
    loaded (no C++ compiler, a failed compile), or ``ODERNN_NATIVE`` has an unknown value."""


class NativeKernelWarning(RuntimeWarning):
    """The native fused kernel could not be built or loaded; the Python loop is used instead
    (same results to rounding, slower with several threads)."""
