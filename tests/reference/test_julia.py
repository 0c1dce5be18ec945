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
