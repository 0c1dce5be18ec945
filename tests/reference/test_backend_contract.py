"""The backend contract: the same tests for every backend that is available here
(SciPy always; Julia and diffeqpy where installed; the Julia and diffeqpy glue against
in-process stand-ins).  A test needing an operation a backend does not offer by design
(``Backend.capabilities``: diffeqpy gives references only) is skipped for that backend, and
the operation must then raise ``UnsupportedOperationError``."""

from __future__ import annotations

import math

import numpy as np
import pytest

import odernn_bridge as ob
from odernn_bridge.reference import get_problem, integrate_rk

from .conftest import needs


def test_identity(backend) -> None:
    assert backend.available() is True
    info = backend.version_info()
    assert info and all(isinstance(k, str) and isinstance(v, str) and v for k, v in info.items())


def test_tableau_matches_catalogue(backend) -> None:
    needs(backend, "tableau")
    tab = backend.tableau("RK4")
    ref = ob.get_method("RK4")
    assert tab.order == 4 and tab.kind == "explicit"
    for got, want in ((tab.A, ref.A), (tab.b, ref.b), (tab.c, ref.c)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)  # exact rationals: bit-identical up to 1 ulp


def test_unknown_tableau_is_a_lookup_error(backend) -> None:
    needs(backend, "tableau")
    with pytest.raises(LookupError, match="NoSuchTableau"):
        backend.tableau("NoSuchTableau")


def test_fixed_step_agrees_with_numpy_integrator(backend) -> None:
    needs(backend, "fixed_step")
    prob = get_problem("vanderpol")
    sol = backend.solve(prob, "RK4", dt=0.1)
    assert sol.t.shape == (21,) and sol.u.shape == (21, 2)
    _, U = integrate_rk(ob.get_method("RK4"), lambda t, u: prob.f(t, u), prob.u0, 0.0, 0.1, 20)
    # same tableau, same arithmetic up to summation order: agreement to a few ulps x 20 steps
    np.testing.assert_allclose(sol.u, U, rtol=0, atol=1e-13)


def test_fixed_step_error_against_exact_solution(backend) -> None:
    needs(backend, "fixed_step")
    prob = get_problem("kepler")
    sol = backend.solve(prob, "RK4", dt=0.01)
    err = np.max(np.abs(sol.final - prob.exact(prob.tspan[1])))
    # RK4 on the e=0.5 orbit: C dt^4 with C ~ 5e2 (measured 1.7e-8 at dt=1/128) -> < 1e-6
    assert 1e-12 < err < 1e-6


def test_reference_solution_is_tight(backend) -> None:
    needs(backend, "reference")
    prob = get_problem("kepler")
    times = [0.5, 1.0, 2.0]
    sol = backend.solve(prob, saveat=times)
    exact = np.stack([prob.exact(t) for t in times])
    np.testing.assert_allclose(sol.t, times, rtol=0, atol=1e-14)
    assert np.max(np.abs(sol.u - exact)) < 1e-10  # Vern9/DOP853 at ~1e-14 tolerances


def test_one_step_from_many_states(backend) -> None:
    needs(backend, "step")
    prob = get_problem("lotka_volterra")
    U = np.array([[1.0, 1.0], [2.0, 0.5], [0.3, 1.7]])
    got = backend.step(prob, "RK4", 0.0, U, 0.05)
    for row, g in zip(U, got):
        _, want = integrate_rk(ob.get_method("RK4"), lambda t, u: prob.f(t, u), row, 0.0, 0.05, 1)
        np.testing.assert_allclose(g, want[-1], rtol=0, atol=1e-14)


def test_stability_function_of_rk4(backend) -> None:
    needs(backend, "stability")
    z = np.array([-1.0, -2.5 + 0.5j, 1j, 0.3 - 2j])
    want = 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24
    np.testing.assert_allclose(backend.stability("RK4", z), want, rtol=1e-13, atol=1e-13)


def test_stability_intervals_of_rk4(backend) -> None:
    needs(backend, "stability")
    # real: root of |R(-x)| = 1, 2.785293563405282; imaginary: 2*sqrt(2) exactly
    assert backend.real_stability_interval("RK4") == pytest.approx(2.785293563405282, abs=1e-8)
    assert backend.imag_stability_interval("RK4") == pytest.approx(2 * math.sqrt(2), abs=1e-8)


def test_solve_validates_arguments(backend) -> None:
    with pytest.raises(ValueError, match="dt"):
        backend.solve("vanderpol", "RK4")
    with pytest.raises(ValueError, match="problem"):
        backend.solve("no_such_problem", "RK4", dt=0.1)


def test_reference_within_capabilities(backend) -> None:
    """Every backend gives references: ``reference`` on a problem without an exact solution
    agrees with SciPy's DOP853 at tight tolerances."""
    needs(backend, "reference")
    times = [0.5, 1.0, 2.0]
    got = backend.reference("vanderpol", times)
    want = ob.get_backend("scipy").reference("vanderpol", times)
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)  # two ~1e-14-tolerance solvers
    with pytest.raises(ValueError, match="alg"):
        backend.solve("vanderpol", alg="NoSuchAlgorithm", saveat=[1.0])


def test_operations_outside_capabilities_raise_clearly(backend) -> None:
    missing = {"tableau", "fixed_step", "step", "stability"} - set(backend.capabilities)
    if not missing:
        pytest.skip(f"backend {backend.name!r} offers every operation")
    calls = {"tableau": lambda: backend.tableau("RK4"),
             "fixed_step": lambda: backend.solve("vanderpol", "RK4", dt=0.1),
             "step": lambda: backend.step("vanderpol", "RK4", 0.0, np.array([2.0, 0.0]), 0.1),
             "stability": lambda: backend.real_stability_interval("RK4")}
    for what in sorted(missing):
        with pytest.raises(ob.UnsupportedOperationError, match="backend='julia'"):
            calls[what]()
    assert backend.supports("RK4") is False   # validate then steps the method with NumPy
