"""Argument checks shared by the cells: clear errors that name the offending argument."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._checks import check_positive_int, check_step_size
from ..errors import NonFiniteError

__all__ = ["check_dt", "check_positive_int", "check_tensor", "check_finite", "field_dtype_device",
           "check_step_input", "check_step_args"]


def check_dt(dt: Any, name: str = "dt") -> float:
    """A finite float in [MIN_STEP_SIZE, MAX_STEP_SIZE] (Python number or 0-d tensor)."""
    if isinstance(dt, Tensor):
        if dt.numel() != 1:
            raise ValueError(f"{name}: expected a scalar step size, got a tensor of shape {tuple(dt.shape)}")
        dt = float(dt.detach())
    return check_step_size(dt, name)


def field_dtype_device(module: torch.nn.Module) -> tuple[torch.dtype | None, torch.device | None]:
    """dtype/device of the first floating parameter or buffer (None if the field has none)."""
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype, p.device
    for b in module.buffers():
        if b.is_floating_point():
            return b.dtype, b.device
    return None, None


def check_tensor(value: Any, name: str, *, ndim: int | tuple[int, ...], last: int | None = None,
                 what: str = "", dtype: torch.dtype | None = None, device: torch.device | None = None,
                 ref_name: str = "the field's parameters") -> Tensor:
    """Type, rank, trailing size, dtype and device of a tensor argument."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if value.dim() not in dims:
        shape = what or " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{name}: expected shape {shape}, got {tuple(value.shape)}")
    if last is not None and value.shape[-1] != last:
        raise ValueError(f"{name}: expected last dimension {last}{' (' + what + ')' if what else ''}, "
                         f"got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")
    if dtype is not None and value.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (same as {ref_name}), got {value.dtype}")
    if device is not None and value.device != device:
        raise ValueError(f"{name}: expected device {device} (same as {ref_name}), got {value.device}")
    return value


def check_finite(value: Tensor, name: str) -> None:
    """Raise :class:`NonFiniteError` if ``value`` holds a NaN or ±Inf.

    A NaN or an infinity makes the sum non-finite, so a finite sum (one reduction, no
    boolean temporary: 0.5 ms instead of 4 ms for a 200×64×64 float32 input) proves the
    tensor finite; only a non-finite sum — a NaN/Inf, or finite values whose sum overflows —
    is checked element by element."""
    if value.is_floating_point() or value.is_complex():
        with torch.no_grad():
            if bool(torch.isfinite(value.sum())):
                return
    if not bool(torch.isfinite(value).all()):
        raise NonFiniteError(f"{name}: contains NaN or Inf")


def check_step_input(x: Any, h: Tensor, input_size: int, x_name: str = "x", h_name: str = "h") -> Tensor:
    """``x`` is a (batch, input_size) tensor with ``h``'s dtype, device and batch size."""
    check_tensor(x, x_name, ndim=2, last=input_size, what=f"(batch, input_size={input_size})",
                 dtype=h.dtype, device=h.device, ref_name=h_name)
    if x.shape[0] != h.shape[0]:
        raise ValueError(f"{x_name}: batch size {x.shape[0]} differs from {h_name}'s batch size {h.shape[0]}")
    return x


def check_step_args(field: torch.nn.Module, x: Any, h: Any, *, state_what: str | None = None,
                    x_name: str = "x", h_name: str = "h") -> None:
    """The single-step arguments of a cell on ``field``: ``h`` (batch, field.state_size) on the
    field's dtype/device, then ``x`` as in :func:`check_step_input`.  ``state_what`` describes
    the state's shape in messages (default ``"(batch, state_size=N)"``)."""
    n = field.state_size
    dtype, device = field_dtype_device(field)
    check_tensor(h, h_name, ndim=2, last=n, what=state_what or f"(batch, state_size={n})",
                 dtype=dtype, device=device)
    check_step_input(x, h, field.input_size, x_name, h_name)
