"""Reusable scratch memory for the fused sequence kernels.

The fused explicit kernel stores every stage activation of a sequence (stages × seq × batch
× hidden values: 52 MB for RK4 at 200 × 64 × 256 in float32) and its backward pass a
gradient buffer of the same size.  Allocations that large are fresh ``mmap`` pages in
glibc's allocator: every call pays one page fault per 4 KiB on first write and an
``munmap`` on release, which cost about a fifth of a training step at that shape (the
profiler showed 27 µs per 64×256 copy into a fresh buffer against 3 µs into a warm one).

:class:`Workspace` keeps released buffers (flat, per dtype and device) and hands them out
again, so after the first call the kernel writes into warm memory.  A buffer is only
reused once nothing can read it any more: forward-pass buffers saved for the backward pass
are *leased* (:class:`Lease`) and come back when the autograd node that holds them is
destroyed — after ``backward()`` without ``retain_graph`` and once the output is dropped,
or never if the graph is kept alive — so retained graphs, repeated backward passes and
several forward passes before one backward pass stay correct.

The pool is bounded (:attr:`Workspace.max_buffers` per dtype/device, oldest evicted) and
belongs to one cell: deleting the model frees it, ``copy.deepcopy`` and pickling give an
empty pool, and :meth:`Workspace.clear` drops it explicitly.
"""

from __future__ import annotations

import threading
from typing import Any

import torch
from torch import Tensor

__all__ = ["Workspace", "Lease"]


class Workspace:
    """A bounded pool of flat scratch buffers, thread-safe."""

    def __init__(self, max_buffers: int = 6) -> None:
        self.max_buffers = int(max_buffers)
        self._free: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """An uninitialised contiguous tensor of ``shape`` with ``like``'s dtype and device:
        a view of the smallest free buffer that fits (not more than twice the size needed),
        else a new allocation.  Give its base back with :meth:`give` (or a :class:`Lease`)."""
        n = 1
        for d in shape:
            n *= int(d)
        key = (like.dtype, like.device)
        best = None
        with self._lock:
            free = self._free.get(key, ())
            for i, buf in enumerate(free):
                if n <= buf.numel() <= 2 * n and (best is None or buf.numel() < free[best].numel()):
                    best = i
            if best is not None:
                flat = free.pop(best)
                return flat[:n].view(shape)
        return like.new_empty(shape)

    def give(self, *tensors: Tensor | None) -> None:
        """Return buffers obtained from :meth:`take` (their storage is reused as a whole)."""
        with self._lock:
            for t in tensors:
                if t is None:
                    continue
                base = t if t._base is None else t._base
                if base.dim() != 1:
                    base = base.view(-1)
                key = (base.dtype, base.device)
                free = self._free.setdefault(key, [])
                if any(b.data_ptr() == base.data_ptr() for b in free):
                    continue
                free.append(base)
                if len(free) > self.max_buffers:
                    free.pop(0)

    def clear(self) -> None:
        """Drop every pooled buffer (their memory is freed when no lease holds it)."""
        with self._lock:
            self._free.clear()

    def nbytes(self) -> int:
        """Bytes held by free buffers."""
        with self._lock:
            return sum(b.numel() * b.element_size() for bufs in self._free.values() for b in bufs)

    # a copy of a cell starts with an empty pool; pickles carry none
    def __deepcopy__(self, memo: dict[int, Any]) -> "Workspace":
        return Workspace(self.max_buffers)

    def __getstate__(self) -> dict[str, Any]:
        return {"max_buffers": self.max_buffers}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state.get("max_buffers", 6))  # type: ignore[misc]


class Lease:
    """Buffers lent to an autograd node: given back to the pool when the lease is destroyed
    (i.e. when the node that stores it as an attribute is)."""

    __slots__ = ("_pool", "_tensors")

    def __init__(self, pool: Workspace, *tensors: Tensor | None) -> None:
        self._pool = pool
        self._tensors = tensors

    def __del__(self) -> None:
        try:
            self._pool.give(*self._tensors)
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing to return to
            pass
