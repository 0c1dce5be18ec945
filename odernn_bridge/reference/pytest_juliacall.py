"""pytest plugin of the test suite: import juliacall before anything imports torch.

juliacall warns that importing torch first may segfault.  A ``conftest.py`` runs too late
(pytest plugins such as torchtyping import torch while loading), so the suite loads this
module with ``-p odernn_bridge.reference.pytest_juliacall`` (``addopts`` in pyproject.toml),
which pytest imports before its entry-point plugins.  It sets ``PYTHON_JULIAPKG_OFFLINE=yes``
(tests never install Julia packages) and imports juliacall only where the offline, bounded
detection says Julia can load — instantly skipped without Julia.

>>> isinstance(TORCH_ALREADY_IMPORTED, bool) and isinstance(JULIACALL_IMPORTED, bool)
True
"""

from __future__ import annotations

import os
import sys

__all__ = ["TORCH_ALREADY_IMPORTED", "JULIACALL_IMPORTED", "import_juliacall_first"]


def import_juliacall_first() -> bool:
    """Import juliacall if torch is not loaded yet and Julia can load; whether it was imported."""
    if "torch" in sys.modules:
        return False
    from .julia_env import probe  # torch-free

    if not probe().ok:
        return False
    try:
        import juliacall  # noqa: F401, PLC0415
    except Exception:  # noqa: BLE001 - the Julia tests' detection reports the failure
        return False
    return True


#: whether torch was imported before this plugin ran (tests assert it was not)
TORCH_ALREADY_IMPORTED = "torch" in sys.modules
os.environ.setdefault("PYTHON_JULIAPKG_OFFLINE", "yes")
#: whether juliacall was imported here, ahead of torch
JULIACALL_IMPORTED = import_juliacall_first()
