"""Shared test configuration: headless plotting, deterministic seeds, small thread pools."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PYTHON_JULIAPKG_OFFLINE", "yes")

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seed() -> None:
    np.random.seed(0)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.manual_seed(0)
