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
import pickle
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import FileFormatError
from ..io import atomic_path
from ..io import remove_stale_temporaries as _remove_stale_temporaries

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
    """Load a checkpoint written by :func:`save_checkpoint`.

    Loading is ``torch.load(..., weights_only=True)`` with torch's default allow-list only
    (tensors, numbers, strings, containers): a pickle that would build any other object —
    code to run, for one — is refused.  A file that is truncated, corrupt, refused or not
    a checkpoint dictionary raises :class:`~odernn_bridge.errors.FileFormatError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {path}")
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols of files it did not write; such a file is
            # either refused below (one clear error) or loaded safely anyway
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, TypeError, AttributeError,
            KeyError, IndexError, ImportError, OSError, zipfile.BadZipFile) as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        # torch's weights_only refusal says which global it blocked on a later line; its first
        # line suggests weights_only=False, which is exactly what must not be done here
        why = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), lines[0] if lines else "")
        raise FileFormatError(f"checkpoint: {path} is not a checkpoint this library can load safely "
                              f"({type(exc).__name__}: {why[:300]})") from None
    if not isinstance(state, dict):
        raise FileFormatError(f"checkpoint: {path} holds a {type(state).__name__}, not a checkpoint dictionary")
    return state


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files left next to ``path`` by writes that were killed."""
    return _remove_stale_temporaries(path)
