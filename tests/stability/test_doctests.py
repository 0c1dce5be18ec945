"""The docstring examples of the stability package run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["odernn_bridge.stability", "odernn_bridge.stability.function", "odernn_bridge.stability.intervals",
           "odernn_bridge.stability.multistep", "odernn_bridge.stability.region", "odernn_bridge.stability.plot"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 0
