"""The Julia side: source parses, manifests agree, absence is fast, glue against a stand-in,
and (where Julia exists) the real thing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest

import odernn_bridge as ob
from odernn_bridge.errors import ConvergenceError, JuliaUnavailableError, NonFiniteError, OdernnError, UnknownMethodError
from odernn_bridge.reference import backend as backend_mod
from odernn_bridge.reference import get_backend, get_problem
from odernn_bridge.reference import julia as jlglue
from odernn_bridge.reference.julia import JuliaBackend, detect, select_scheme, tableau_name, to_numpy, translate_error

from .conftest import julia_or_skip
from .julia_standin import FakeJuliaError, StandInSession

ROOT = Path(__file__).resolve().parents[2]
JL = ROOT / "julia_src" / "ODERNNBridge.jl"


# -- static checks (CI without Julia) ---------------------------------------------------------

def test_julia_source_parses() -> None:
    import tree_sitter
    import tree_sitter_julia

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_julia.language()))
    tree = parser.parse(JL.read_bytes())
    assert tree.root_node.has_error is False
    text = JL.read_text()
    # the functions the Python glue calls are defined in the module
    for fn in ("export_tableau", "find_tableau", "tableau_from_arrays", "solve_fixed", "step_many",
               "solve_reference", "stability", "real_stability_interval", "imag_stability_interval",
               "convergence", "versions", "naming_scheme", "tableau_modules"):
        assert re.search(rf"^(function )?{fn}\(", text, flags=re.M), fn


def test_problem_julia_rhs_parse() -> None:
    import tree_sitter
    import tree_sitter_julia

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_julia.language()))
    for name in ob.reference.list_problems():
        src = get_problem(name).julia_rhs
        assert src and parser.parse(src.encode()).root_node.has_error is False, name


def test_project_toml_and_juliapkg_json_agree() -> None:
    project = tomllib.loads((ROOT / "Project.toml").read_text())
    pkg = json.loads((ROOT / "odernn_bridge" / "juliapkg.json").read_text())
    assert project["name"] == "ODERNNBridge"
    uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    assert uuid.match(project["uuid"])
    deps = project["deps"]
    assert {"OrdinaryDiffEq", "DiffEqDevTools", "DiffEqBase"} <= set(deps)
    assert deps["OrdinaryDiffEq"] == "1dea7af3-3e70-54e6-95c3-0bf5283fa5ed"
    assert deps["DiffEqBase"] == "2b5f629d-d688-5b77-993f-72d75c75574e"
    assert deps["DiffEqDevTools"] == "f3b72e0c-5b89-59e1-b016-84e28bfd966d"
    assert set(project["compat"]) == set(deps) | {"julia"}
    assert set(pkg["packages"]) == set(deps)
    for name, entry in pkg["packages"].items():
        assert entry["uuid"] == deps[name] and entry["version"] == project["compat"][name]
    # the UUIDs the Julia source hard-codes for the split tableau packages
    text = JL.read_text()
    for name in ("OrdinaryDiffEqExplicitTableaus", "OrdinaryDiffEqImplicitTableaus"):
        assert deps[name] in text


def test_julia_source_imports_only_declared_packages() -> None:
    """Every package ODERNNBridge.jl imports is a declared dependency, and ExplicitRK comes
    from its sublibrary: OrdinaryDiffEq v7 re-exports only Tsit5, Vern6-9, Rosenbrock23,
    Rodas5P, FBDF and the defaults (SciML/OrdinaryDiffEq.jl src/OrdinaryDiffEq.jl, PR #3249)."""
    text = JL.read_text()
    deps = tomllib.loads((ROOT / "Project.toml").read_text())["deps"]
    imported = set(re.findall(r"^(?:import|using) (\w+)", text, flags=re.M))
    assert imported and imported <= set(deps), imported - set(deps)
    assert deps["OrdinaryDiffEqExplicitRK"] == "9286f039-9fbf-40e8-bf65-aa933bdc4db0"
    assert "OrdinaryDiffEq.ExplicitRK" not in text
    assert "OrdinaryDiffEqExplicitRK.ExplicitRK(tableau = tab)" in text
    # 𝒪est is read in Julia, never through Python attribute access (NFKC turns it into Oest)
    glue = re.sub(r"``[^`]*``", "", (ROOT / "odernn_bridge" / "reference" / "julia.py").read_text())
    assert "sim.𝒪est[:final]" in text and "𝒪" not in glue


def _compat_ranges(spec: str) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Julia/juliapkg caret compat specifier -> [lo, hi) version ranges (as juliapkg parses it)."""
    out = []
    for part in spec.split(","):
        part = part.strip().lstrip("^")
        assert re.fullmatch(r"\d+(\.\d+){0,2}", part), spec
        nums = tuple(int(x) for x in part.split("."))
        lo = nums + (0,) * (3 - len(nums))
        if lo[0] != 0 or len(nums) < 2:
            hi = (lo[0] + 1, 0, 0)
        elif lo[1] != 0 or len(nums) < 3:
            hi = (0, lo[1] + 1, 0)
        else:
            hi = (0, 0, lo[2] + 1)
        out.append((lo, hi))
    return out


def _allows(spec: str, version: str) -> bool:
    v = tuple(int(x) for x in version.split("."))
    return any(lo <= v < hi for lo, hi in _compat_ranges(spec))


def test_compat_bounds_admit_both_generations() -> None:
    """The bounds admit the two coherent package generations (read from each package's own
    Project.toml in SciML/OrdinaryDiffEq.jl and SciML/DiffEqDevTools.jl)."""
    compat = tomllib.loads((ROOT / "Project.toml").read_text())["compat"]
    v6_era = {  # OrdinaryDiffEqExplicitTableaus/ImplicitTableaus 1.0.0 need DiffEqBase 6.194;
        "OrdinaryDiffEq": "6.100.0", "DiffEqBase": "6.194.0", "DiffEqDevTools": "2.45.0",
        "OrdinaryDiffEqExplicitRK": "1.5.0",  # DiffEqBase 6.176, SciMLBase 2.99
        "OrdinaryDiffEqExplicitTableaus": "1.0.0", "OrdinaryDiffEqImplicitTableaus": "1.0.0"}
    v7_era = {  # DiffEqDevTools 3.1.2 and ImplicitTableaus 2.0.3 need DiffEqBase 7
        "OrdinaryDiffEq": "7.0.0", "DiffEqBase": "7.5.8", "DiffEqDevTools": "3.1.2",
        "OrdinaryDiffEqExplicitRK": "2.0.1",
        "OrdinaryDiffEqExplicitTableaus": "2.0.0", "OrdinaryDiffEqImplicitTableaus": "2.0.3"}
    for era in (v6_era, v7_era):
        for name, version in era.items():
            assert _allows(compat[name], version), (name, version, compat[name])
    # below 6.194 no tableau package resolves: the bound says so instead of pretending
    assert not _allows(compat["DiffEqBase"], "6.193.0")
    assert _allows(compat["julia"], "1.10.0") and not _allows(compat["julia"], "1.9.4")


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
def test_version_shim_selection() -> None:
    assert select_scheme(["OrdinaryDiffEqExplicitTableaus", "DiffEqDevTools"]) == "split"
    assert select_scheme(["OrdinaryDiffEqImplicitTableaus", "DiffEqDevTools"]) == "split"
    assert select_scheme(["DiffEqDevTools", "OrdinaryDiffEqExplicitRK"]) == "construct"
    new = JuliaBackend(session=StandInSession())
    old = JuliaBackend(session=StandInSession(modules=["DiffEqDevTools"]))
    assert new.version_info()["naming_scheme"] == "split"
    assert old.version_info()["naming_scheme"] == "construct"
    assert "DiffEqDevTools.constructTsitouras5" in old.tableau("Tsit5").description
    assert "OrdinaryDiffEqExplicitTableaus.Tsitouras5" in new.tableau("Tsit5").description


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
    monkeypatch.setenv("PYTHON_JULIAPKG_OFFLINE", "yes")
    fail = False
    session = jlglue._load_session()
    assert session.mod == "module-ODERNNBridge" and session.error_type is FakeJuliaError
    path = str(jlglue.julia_source_path()).replace("\\", "\\\\")
    assert sevaled[0] == f'Base.include(@__MODULE__, "{path}")' and sevaled[1] == "ODERNNBridge"
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
def test_diffeqpy_only_with_julia_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jlglue.shutil, "which", lambda name: None)
    start = time.perf_counter()
    with pytest.raises(JuliaUnavailableError, match="PATH"):
        jlglue.diffeqpy_module()       # never reaches diffeqpy's interactive installer
    assert time.perf_counter() - start < 0.5
    assert jlglue._diffeqpy_version() is None


@pytest.mark.glue
def test_source_path_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # the packaged copy (odernn_bridge/julia, a link for wheels) and julia_src are one file
    assert jlglue.julia_source_path().resolve() == JL.resolve()
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
