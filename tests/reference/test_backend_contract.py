"""The backend contract: the same tests for every backend that is available here
(SciPy always; Julia where installed; the Julia glue against its in-process stand-in)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import odernn_bridge as ob
from odernn_bridge.reference import get_problem, integrate_rk


def test_identity(backend) -> None:
    assert backend.available() is True
    info = backend.version_info()
    assert info and all(isinstance(k, str) and isinstance(v, str) and v for k, v in info.items())


def test_tableau_matches_catalogue(backend) -> None:
    tab = backend.tableau("RK4")
    ref = ob.get_method("RK4")
    assert tab.order == 4 and tab.kind == "explicit"
    for got, want in ((tab.A, ref.A), (tab.b, ref.b), (tab.c, ref.c)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)  # exact rationals: bit-identical up to 1 ulp


def test_unknown_tableau_is_a_lookup_error(backend) -> None:
    with pytest.raises(LookupError, match="NoSuchTableau"):
        backend.tableau("NoSuchTableau")


def test_fixed_step_agrees_with_numpy_integrator(backend) -> None:
    prob = get_problem("vanderpol")
    sol = backend.solve(prob, "RK4", dt=0.1)
    assert sol.t.shape == (21,) and sol.u.shape == (21, 2)
    _, U = integrate_rk(ob.get_method("RK4"), lambda t, u: prob.f(t, u), prob.u0, 0.0, 0.1, 20)
    # same tableau, same arithmetic up to summation order: agreement to a few ulps x 20 steps
    np.testing.assert_allclose(sol.u, U, rtol=0, atol=1e-13)


def test_fixed_step_error_against_exact_solution(backend) -> None:
    prob = get_problem("kepler")
    sol = backend.solve(prob, "RK4", dt=0.01)
    err = np.max(np.abs(sol.final - prob.exact(prob.tspan[1])))
    # RK4 on the e=0.5 orbit: C dt^4 with C ~ 5e2 (measured 1.7e-8 at dt=1/128) -> < 1e-6
    assert 1e-12 < err < 1e-6


def test_reference_solution_is_tight(backend) -> None:
    prob = get_problem("kepler")
    times = [0.5, 1.0, 2.0]
    sol = backend.solve(prob, saveat=times)
    exact = np.stack([prob.exact(t) for t in times])
    np.testing.assert_allclose(sol.t, times, rtol=0, atol=1e-14)
    assert np.max(np.abs(sol.u - exact)) < 1e-10  # Vern9/DOP853 at ~1e-14 tolerances


def test_one_step_from_many_states(backend) -> None:
    prob = get_problem("lotka_volterra")
    U = np.array([[1.0, 1.0], [2.0, 0.5], [0.3, 1.7]])
    got = backend.step(prob, "RK4", 0.0, U, 0.05)
    for row, g in zip(U, got):
        _, want = integrate_rk(ob.get_method("RK4"), lambda t, u: prob.f(t, u), row, 0.0, 0.05, 1)
        np.testing.assert_allclose(g, want[-1], rtol=0, atol=1e-14)


def test_stability_function_of_rk4(backend) -> None:
    z = np.array([-1.0, -2.5 + 0.5j, 1j, 0.3 - 2j])
    want = 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24
    np.testing.assert_allclose(backend.stability("RK4", z), want, rtol=1e-13, atol=1e-13)


def test_stability_intervals_of_rk4(backend) -> None:
    # real: root of |R(-x)| = 1, 2.785293563405282; imaginary: 2*sqrt(2) exactly
    assert backend.real_stability_interval("RK4") == pytest.approx(2.785293563405282, abs=1e-8)
    assert backend.imag_stability_interval("RK4") == pytest.approx(2 * math.sqrt(2), abs=1e-8)


def test_solve_validates_arguments(backend) -> None:
    with pytest.raises(ValueError, match="dt"):
        backend.solve("vanderpol", "RK4")
    with pytest.raises(ValueError, match="problem"):
        backend.solve("no_such_problem", "RK4", dt=0.1)
