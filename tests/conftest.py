"""Shared test configuration: headless plotting, deterministic seeds, small thread pools."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PYTHON_JULIAPKG_OFFLINE", "yes")  # tests never install Julia packages


def _import_juliacall_before_torch() -> None:
    """juliacall warns that importing torch first may segfault: where the Julia backend can
    load (offline, bounded check; instant without Julia) import juliacall before anything
    imports torch.  Failures are left to the Julia tests, which report them."""
    from odernn_bridge.reference.julia_env import probe  # torch-free

    if probe().ok:
        try:
            import juliacall  # noqa: F401
        except Exception:  # noqa: BLE001 - reported by the Julia tests' detection
            pass


#: whether torch was already imported when the hook above ran (tests/reference/test_julia_env.py
#: asserts it was not, so the hook really comes first)
TORCH_BEFORE_JULIACALL_HOOK = "torch" in __import__("sys").modules
_import_juliacall_before_torch()

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed() -> None:
    np.random.seed(0)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.manual_seed(0)
