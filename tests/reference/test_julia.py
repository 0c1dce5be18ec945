"""The Julia backend: absence is fast, glue against a stand-in, and (where Julia exists) the
real thing.  Static checks of the Julia package: test_julia_package.py; detection and the
setup command: test_julia_env.py."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import odernn_bridge as ob
from odernn_bridge.errors import ConvergenceError, JuliaUnavailableError, NonFiniteError, OdernnError, UnknownMethodError
from odernn_bridge.reference import backend as backend_mod
from odernn_bridge.reference import get_backend, get_problem
from odernn_bridge.reference import julia as jlglue
from odernn_bridge.reference.julia import JuliaBackend, detect, tableau_name, to_numpy, translate_error

from .conftest import julia_or_skip
from .julia_standin import FakeJuliaError, StandInSession

ROOT = Path(__file__).resolve().parents[2]
JL = ROOT / "src" / "ODERNNBridge.jl"


# -- absence: fast, clear, never hanging ---------------------------------------------------------

def test_julia_backend_without_julia_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    if detect()[0]:
        pytest.skip("Julia is installed here")
    monkeypatch.setitem(jlglue._STATE, "checked", False)  # a cold detection
    start = time.perf_counter()
    with pytest.raises(JuliaUnavailableError, match="pip install"):
        get_backend("julia")
    assert time.perf_counter() - start < 1.0
    start = time.perf_counter()
    with pytest.raises(JuliaUnavailableError, match="Julia"):
        ob.get_method("julia:Feagin14")
    assert time.perf_counter() - start < 1.0


def test_julia_absence_in_a_fresh_interpreter_never_hangs() -> None:
    if detect()[0]:
        pytest.skip("Julia is installed here")
    script = textwrap.dedent("""
        import time, odernn_bridge as ob
        t = time.perf_counter()
        try:
            ob.validate("RK4", "linear", dts=[0.1, 0.05, 0.025], backend="julia")
        except ob.JuliaUnavailableError:
            print("unavailable", time.perf_counter() - t)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    word, seconds = out.stdout.split()
    assert word == "unavailable" and float(seconds) < 1.0


def test_auto_falls_back_to_scipy_and_says_so_once(monkeypatch: pytest.MonkeyPatch) -> None:
    if detect()[0]:
        pytest.skip("Julia is installed here: auto picks it")
    monkeypatch.setattr(backend_mod, "_FALLBACK_ANNOUNCED", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = get_backend("auto")
        second = get_backend("auto")
    assert first.name == second.name == "scipy"
    said = [w for w in caught if issubclass(w.category, backend_mod.ReferenceFallbackWarning)]
    assert len(said) == 1 and "SciPy" in str(said[0].message)


# -- glue (in-process stand-in; proves nothing about Julia itself) --------------------------------

@pytest.mark.glue
def test_name_mapping() -> None:
    assert tableau_name("Tsit5") == "Tsitouras5"
    assert tableau_name("DP5") == "DormandPrince"
    assert tableau_name("julia:Vern9") == "VernerEfficient9"
    assert tableau_name("constructFeagin14") == "Feagin14"
    assert tableau_name("RK4") == "RK4"
    with pytest.raises(TypeError, match="name"):
        tableau_name("")


@pytest.mark.glue
def test_name_mapping_only_joins_identical_methods(standin: JuliaBackend) -> None:
    # DP8 is DOP853 (12 stages); Julia's DormandPrince8 is the 13-stage RK8(7)13M pair
    assert tableau_name("DP8") == "DP8"
    with pytest.raises(UnknownMethodError, match="julia:DP8"):
        standin.tableau("DP8")
    for ours, theirs in jlglue.TABLEAU_NAMES.items():
        try:
            same = ob.get_method(theirs)
        except UnknownMethodError:
            continue  # the catalogue has no entry under the Julia name
        assert same.name == ob.get_method(ours).name, (ours, theirs)


@pytest.mark.glue
def test_tableau_source_is_the_split_package(standin: JuliaBackend) -> None:
    """Explicit tableaux come from OrdinaryDiffEqExplicitTableaus, implicit ones from
    OrdinaryDiffEqImplicitTableaus (no construct* fallback: those names died with v6)."""
    assert "OrdinaryDiffEqExplicitTableaus.Tsitouras5" in standin.tableau("Tsit5").description
    assert "OrdinaryDiffEqImplicitTableaus.GL4" in standin.tableau("GL4").description
    assert standin.tableau("constructRK4").order == 4      # an old name still reaches RK4()
    assert "naming_scheme" not in standin.version_info()


@pytest.mark.glue
def test_tableau_conversion(standin: JuliaBackend) -> None:
    tab = standin.tableau("Tsit5")          # Julia hands back column-major arrays
    ref = ob.get_method("Tsit5")
    assert tab.name == "julia:Tsit5" and tab.order == ref.order and tab.embedded_order == ref.embedded_order
    np.testing.assert_array_equal(tab.A, ref.A)
    np.testing.assert_array_equal(tab.b, ref.b)
    np.testing.assert_array_equal(tab.b_embedded, ref.b_embedded)
    assert tab.A.flags["C_CONTIGUOUS"]
    assert standin.session.mod.calls[-1] == "export_tableau(Tsitouras5)"


@pytest.mark.glue
def test_tableau_reaches_julia_in_logical_order(standin: JuliaBackend) -> None:
    """A (s, s) matrix reaches Julia as a PyArray with NumPy's strides: A[i, j] stays A[i, j]
    (a transposed RK4 would be upper triangular and step like Euler)."""
    rk4 = ob.get_method("RK4")
    standin._jl_tableau(rk4)
    np.testing.assert_array_equal(standin.session.mod.received_A, rk4.A)
    A = np.asfortranarray([[0.0, 0.0], [2.0 / 3.0, 0.0]])   # Fortran-ordered input, not symmetric
    ralston = ob.ButcherTableau(A, [0.25, 0.75], name="RalstonF", order=2)
    standin._jl_tableau(ralston)
    np.testing.assert_array_equal(standin.session.mod.received_A, [[0.0, 0.0], [2.0 / 3.0, 0.0]])
    step = standin.step("linear", ralston, 0.0, np.array([1.0]), 0.1)
    assert step[0] == pytest.approx(1 - 0.1 + 0.1**2 / 2, abs=1e-15)   # R(z) = 1 + z + z^2/2


@pytest.mark.glue
def test_convergence_orders_for_any_step_ratio(standin: JuliaBackend) -> None:
    _, halving = standin.convergence("vanderpol", "RK4", [0.2, 0.1, 0.05])      # DiffEqDevTools' 𝒪est
    errs, thirds = standin.convergence("vanderpol", "RK4", [0.2, 0.2 / 3, 0.2 / 9])  # recomputed in Python
    assert abs(halving - 4) < 0.3 and abs(thirds - 4) < 0.3 and errs.shape == (3,)
    with pytest.raises(ValueError, match="dts"):
        standin.convergence("vanderpol", "RK4", [0.1])
    with pytest.raises(ValueError, match="alg"):
        standin.solve("vanderpol", alg="Rodas4", saveat=[1.0])
    with pytest.raises(ValueError, match="alg"):       # never an arbitrary Julia binding
        standin.solve("vanderpol", alg="SciMLBase", saveat=[1.0])
    assert "solve_reference" not in standin.session.mod.calls


@pytest.mark.glue
def test_session_loading_through_a_fake_juliacall(monkeypatch: pytest.MonkeyPatch) -> None:
    """newmodule + seval("Base.include(@__MODULE__, path)") + seval("ODERNNBridge"); a failing
    include becomes JuliaUnavailableError.  (A fake juliacall module: glue only.)"""
    import importlib.machinery
    import types

    sevaled: list[str] = []

    class Host:
        def seval(self, src: str):
            sevaled.append(src)
            if "Base.include" in src and fail:
                raise RuntimeError("LoadError: ArgumentError: Package OrdinaryDiffEqExplicitRK not found")
            return "module-ODERNNBridge"

    fake = types.ModuleType("juliacall")
    fake.__spec__ = importlib.machinery.ModuleSpec("juliacall", None)
    fake.newmodule = lambda name: Host() if name == "ODERNNBridgeHost" else None
    fake.JuliaError = FakeJuliaError
    fake.__version__ = "0.9.99-fake"
    monkeypatch.setitem(sys.modules, "juliacall", fake)
    monkeypatch.delenv("PYTHON_JULIAPKG_OFFLINE", raising=False)
    fail = False
    session = jlglue._load_session()
    assert session.mod == "module-ODERNNBridge" and session.error_type is FakeJuliaError
    path = str(jlglue.julia_source_path()).replace("\\", "\\\\")
    assert sevaled[0] == f'Base.include(@__MODULE__, "{path}")' and sevaled[1] == "ODERNNBridge"
    assert "PYTHON_JULIAPKG_OFFLINE" not in __import__("os").environ   # real use is not forced offline
    fail = True
    with pytest.raises(JuliaUnavailableError, match="failed to load"):
        jlglue._load_session()


@pytest.mark.glue
def test_error_translation(standin: JuliaBackend) -> None:
    with pytest.raises(UnknownMethodError, match="julia:NoSuch"):
        standin.tableau("NoSuch")
    assert isinstance(translate_error(FakeJuliaError("DimensionMismatch: A must be square")), ValueError)
    err = translate_error(FakeJuliaError("Newton steps could not converge and algorithm is not adaptive"))
    assert isinstance(err, ConvergenceError)
    other = translate_error(FakeJuliaError("MethodError: no method matching foo(::Int)"))
    assert isinstance(other, OdernnError) and isinstance(other, RuntimeError) and "MethodError" in str(other)
    with pytest.raises(ValueError, match="Julia rejected"):
        standin._call("tableau_from_arrays", np.zeros((2, 3)), [1.0], [0.0], 1)


@pytest.mark.glue
def test_source_path_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # the packaged copy (odernn_bridge/julia: a link to src/ here, a real file in wheels) and
    # the documented julia_src/ link are all src/ODERNNBridge.jl
    assert jlglue.julia_source_path().resolve() == JL.resolve()
    assert (ROOT / "julia_src" / "ODERNNBridge.jl").resolve() == JL.resolve()
    alt = tmp_path / "ODERNNBridge.jl"
    alt.write_text("module ODERNNBridge end")
    monkeypatch.setenv("ODERNN_BRIDGE_JULIA_SRC", str(alt))
    assert jlglue.julia_source_path() == alt


@pytest.mark.glue
def test_array_conversion_rejects_nan() -> None:
    np.testing.assert_array_equal(to_numpy(np.asfortranarray(np.eye(2))), np.eye(2))
    from .julia_standin import JlArray

    M = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])      # not square: a transposition would show
    got = to_numpy(JlArray(M))
    assert got.shape == (2, 3) and got.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(got, M)
    with pytest.raises(NonFiniteError):
        to_numpy([1.0, float("nan")])


@pytest.mark.glue
def test_rhs_compiled_once_and_problem_routing(standin: JuliaBackend) -> None:
    standin.solve("vanderpol", "RK4", dt=0.5)
    standin.solve("vanderpol", "RK4", dt=0.25)
    assert standin.session.sevaled.count(get_problem("vanderpol").julia_rhs) == 1
    assert standin.supports("RK4") and not standin.supports(ob.ButcherTableau([[1]], [1], name="IE", order=1))
    from odernn_bridge.validate import field_problem
    from odernn_bridge.cells import make_field

    assert not standin.handles(field_problem(make_field("elman", 2, 3), steps=2))


@pytest.mark.glue
def test_validate_through_the_glue(standin: JuliaBackend) -> None:
    ds = ob.validate("RK4", "vanderpol", dts=[0.1, 0.05, 0.025, 0.0125], backend=standin)
    assert ds.attrs["backend"] == "julia" and "julia=" in ds.attrs["backend_versions"]
    assert abs(float(ds.observed_order) - 4) < 0.2 and ds.attrs["verdict"] == "pass"
    errs, order = standin.convergence("vanderpol", "RK4", [0.1, 0.05, 0.025])
    assert errs.shape == (3,) and abs(order - 4) < 0.3


# -- the real Julia (runs wherever Julia is installed) ----------------------------------------------

@pytest.mark.julia
def test_julia_tableaux_match_the_catalogue() -> None:
    julia_or_skip()
    jb = get_backend("julia")
    for name in ("RK4", "Heun", "Ralston", "BS3", "Tsit5", "DP5", "RK438Rule", "SSPRK33", "RKF5", "CashKarp",
                 "Vern7", "Vern9", "GL4", "RadauIIA5"):
        try:
            ref = ob.get_method(name)
        except ob.UnknownMethodError:
            continue
        tab = jb.tableau(name)
        assert tab.order == ref.order, name
        np.testing.assert_allclose(tab.A, ref.A, rtol=0, atol=1e-13, err_msg=name)
        np.testing.assert_allclose(tab.b, ref.b, rtol=0, atol=1e-13, err_msg=name)
    with pytest.raises(UnknownMethodError):
        jb.tableau("DP8")   # DOP853 has no tableau constructor in Julia


@pytest.mark.julia
def test_julia_stability_intervals_match_scipy() -> None:
    julia_or_skip()
    jb, sp = get_backend("julia"), get_backend("scipy")
    for name in ("Euler", "Heun", "RK4", "SSPRK104", "Tsit5", "Vern9", "RadauIIA5", "GL4"):
        try:
            ob.get_method(name)
        except UnknownMethodError:
            continue
        for which in ("real_stability_interval", "imag_stability_interval"):
            want, got = getattr(sp, which)(name), getattr(jb, which)(name)
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (name, which, got, want)


@pytest.mark.julia
def test_julia_prefix_plugin_and_convergence() -> None:
    julia_or_skip()
    feagin = ob.get_method("julia:Feagin14")
    assert feagin.order == 14 and feagin.stages == 35
    jb = get_backend("julia")
    errs, order = jb.convergence("vanderpol", "RK4", [1 / 8, 1 / 16, 1 / 32, 1 / 64])
    assert abs(order - 4) < 0.3 and np.all(np.diff(np.log(errs)) < 0)
    bigref = jb.ground_truth("vanderpol", [2.0])
    assert np.max(np.abs(bigref - get_backend("scipy").ground_truth("vanderpol", [2.0]))) < 1e-13


@pytest.mark.glue
def test_validate_through_the_diffeqpy_glue() -> None:
    """backend="diffeqpy" supplies the references (Float64 grid + BigFloat ground truth at t1)
    while the method itself is stepped by the NumPy integrator (diffeqpy cannot step a tableau)."""
    from odernn_bridge.reference.diffeqpy_backend import DiffeqpyBackend

    from .julia_standin import DiffeqpyStandInSession

    dq = DiffeqpyBackend(session=DiffeqpyStandInSession())
    ds = ob.validate("RK4", "vanderpol", dts=[0.1, 0.05, 0.025, 0.0125], backend=dq)
    assert ds.attrs["backend"] == "diffeqpy" and ds.attrs["verdict"] == "pass"
    assert abs(float(ds.observed_order) - 4) < 0.2
    assert ds.attrs["stepper"] == "scipy fixed-step integrator"
    assert "diffeqpy=" in ds.attrs["backend_versions"] and "OrdinaryDiffEq=" in ds.attrs["backend_versions"]
    assert sorted(dq.session.mod.calls) == ["diffeqpy.solve(Vern9, bigfloat=False)",
                                            "diffeqpy.solve(Vern9, bigfloat=True)"]
    # the linear problem has an exact solution: no Julia call at all
    before = len(dq.session.mod.calls)
    dq.reference("linear", [0.5, 1.0])
    assert len(dq.session.mod.calls) == before
