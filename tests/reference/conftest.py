"""Backends for the contract suite: every available backend runs the same tests."""

from __future__ import annotations

import pytest

from odernn_bridge.reference import get_backend
from odernn_bridge.reference.julia import JuliaBackend, detect

from .julia_standin import StandInSession

BACKEND_PARAMS = [
    pytest.param("scipy", id="scipy"),
    pytest.param("julia", id="julia", marks=pytest.mark.julia),
    pytest.param("standin", id="julia-standin", marks=pytest.mark.glue),
]


def julia_or_skip() -> None:
    ok, reason = detect()
    if not ok:
        pytest.skip(f"Julia backend not available here: {reason.split(';')[0]}")


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request: pytest.FixtureRequest):
    if request.param == "scipy":
        return get_backend("scipy")
    if request.param == "julia":
        julia_or_skip()
        return get_backend("julia")
    return JuliaBackend(session=StandInSession())


@pytest.fixture
def standin() -> JuliaBackend:
    return JuliaBackend(session=StandInSession())
