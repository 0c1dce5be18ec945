"""Checkpoints written atomically: serialise, write to a temporary file, fsync, rename.

A process killed at any moment leaves either the previous checkpoint or the new one at
``path`` — never a truncated file.  Checkpoints hold only tensors, numbers, strings and
containers of those, so they load with ``torch.load(..., weights_only=True)``.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "ck.pt"
>>> _ = save_checkpoint({"step": 3, "w": torch.ones(2)}, p)
>>> load_checkpoint(p)["step"]
3
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_path

__all__ = ["save_checkpoint", "load_checkpoint", "remove_stale_temporaries", "WRITE_DELAY_ENV"]

#: test hook: seconds to sleep half-way through writing the temporary file (simulates a
#: slow disk so that a test can kill the process mid-write)
WRITE_DELAY_ENV = "ODERNN_CHECKPOINT_WRITE_DELAY"


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``payload`` with ``torch.save`` to ``path`` atomically; returns the path."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    delay = float(os.environ.get(WRITE_DELAY_ENV, "0") or 0)
    with atomic_path(path, suffix=".tmp") as tmp:
        with open(tmp, "wb") as fh:
            if delay > 0:
                half = len(data) // 2
                fh.write(data[:half])
                fh.flush()
                os.fsync(fh.fileno())
                time.sleep(delay)
                fh.write(data[half:])
            else:
                fh.write(data)
    return Path(path)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (safe ``weights_only`` loading)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {path}")
    return torch.load(path, map_location=map_location, weights_only=True)


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files left next to ``path`` by writes that were killed."""
    path = Path(path)
    removed = []
    if path.parent.is_dir():
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
