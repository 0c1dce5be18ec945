"""Backends for the contract suite: every available backend runs the same tests (those a
backend cannot do by design -- see ``Backend.capabilities`` -- are skipped for it)."""

from __future__ import annotations

import os

import pytest

from odernn_bridge.reference import get_backend
from odernn_bridge.reference.diffeqpy_backend import DiffeqpyBackend, detect_diffeqpy
from odernn_bridge.reference.julia import JuliaBackend, detect

from .julia_standin import DiffeqpyStandInSession, StandInSession

BACKEND_PARAMS = [
    pytest.param("scipy", id="scipy"),
    pytest.param("julia", id="julia", marks=pytest.mark.julia),
    pytest.param("diffeqpy", id="diffeqpy", marks=pytest.mark.julia),
    pytest.param("standin", id="julia-standin", marks=pytest.mark.glue),
    pytest.param("diffeqpy-standin", id="diffeqpy-standin", marks=pytest.mark.glue),
]


def _skip_or_fail(what: str, reason: str) -> None:
    # .ci/julia sets ODERNN_REQUIRE_JULIA=1: there an unusable Julia is a failure, not a skip
    if os.environ.get("ODERNN_REQUIRE_JULIA"):
        pytest.fail(f"{what} required (ODERNN_REQUIRE_JULIA) but not available: {reason}")
    pytest.skip(f"{what} not available here: {reason.split(';')[0]}")


def julia_or_skip() -> None:
    ok, reason = detect()
    if not ok:
        _skip_or_fail("Julia backend", reason)


def diffeqpy_or_skip() -> None:
    ok, reason = detect_diffeqpy()
    if not ok:
        _skip_or_fail("diffeqpy backend", reason)


def needs(backend, capability: str) -> None:
    """Skip a contract test for a backend that does not offer ``capability`` by design."""
    if capability not in backend.capabilities:
        pytest.skip(f"backend {backend.name!r} has no {capability!r} (capabilities: {sorted(backend.capabilities)})")


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request: pytest.FixtureRequest):
    if request.param == "scipy":
        return get_backend("scipy")
    if request.param == "julia":
        julia_or_skip()
        return get_backend("julia")
    if request.param == "diffeqpy":
        diffeqpy_or_skip()
        return get_backend("diffeqpy")
    if request.param == "diffeqpy-standin":
        return DiffeqpyBackend(session=DiffeqpyStandInSession())
    return JuliaBackend(session=StandInSession())


@pytest.fixture
def standin() -> JuliaBackend:
    return JuliaBackend(session=StandInSession())
