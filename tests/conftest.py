"""Shared test configuration: headless plotting, deterministic seeds, small thread pools."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
# tests never install Julia packages; juliacall is imported before torch by the pytest plugin
# odernn_bridge.reference.pytest_juliacall (pyproject.toml addopts), loaded before any
# conftest or entry-point plugin
os.environ.setdefault("PYTHON_JULIAPKG_OFFLINE", "yes")

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
