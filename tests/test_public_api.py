"""The public API contract of ARCHITECTURE.md ("Public API contract"), one test per line of it,
plus: every name in ``odernn_bridge.__all__`` resolves, and the docstring examples of every
module of the package run and hold."""

from __future__ import annotations

import doctest
import importlib
import inspect
import math
import os
import pkgutil
import subprocess
import sys
import time
from fractions import Fraction

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest
import torch
import xarray as xr

import odernn_bridge as ob

_SQRT8 = math.sqrt(8.0)


def _params(fn) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]


# -- ob.list_methods(kind=None) -> list[str] ---------------------------------------------------------

def test_list_methods_returns_canonical_names_filtered_by_kind():
    names = ob.list_methods()
    assert isinstance(names, list) and all(isinstance(n, str) for n in names)
    assert len(names) == len(set(names))
    # names the contract promises (OrdinaryDiffEq.jl spelling)
    for name in ("Euler", "Midpoint", "Heun", "Ralston", "RK4", "BS3", "DP5", "Tsit5", "Vern9",
                 "SSPRK33", "ImplicitEuler", "Trapezoid", "SDIRK2", "RadauIIA5", "AB3"):
        assert name in names, name
    by_kind = {k: ob.list_methods(k) for k in ("explicit", "diagonally_implicit", "implicit", "multistep")}
    assert sorted(sum(by_kind.values(), []), key=str.lower) == names  # the kinds partition the catalogue
    for kind, members in by_kind.items():
        assert members, kind
        for n in members[:5]:
            assert ob.get_method(n).kind == kind
            assert ob.get_method(n).name == n  # canonical: get_method gives the name back
    with pytest.raises(ValueError, match="kind"):
        ob.list_methods("semi_explicit")


# -- ob.get_method(name) -> ButcherTableau | LinearMultistep; unknown -> UnknownMethodError ----------

def test_get_method_types_and_unknown_name_lists_closest():
    assert isinstance(ob.get_method("RK4"), ob.ButcherTableau)
    assert isinstance(ob.get_method("AB3"), ob.LinearMultistep)
    assert issubclass(ob.UnknownMethodError, LookupError)
    with pytest.raises(ob.UnknownMethodError, match="Tsit5") as info:
        ob.get_method("Tsit6")
    assert isinstance(info.value, LookupError)
    with pytest.raises(TypeError, match="name"):
        ob.get_method(42)


# -- t.name, t.A, t.b, t.c: float64 arrays of shapes (s,s), (s,), (s,) --------------------------------

def test_tableau_arrays_are_float64_with_contract_shapes():
    t = ob.get_method("Tsit5")
    assert t.name == "Tsit5"
    s = t.stages
    for arr, shape in ((t.A, (s, s)), (t.b, (s,)), (t.c, (s,))):
        assert isinstance(arr, np.ndarray) and arr.dtype == np.float64 and arr.shape == shape
    # consistency of the published coefficients (decimal, 1e-15 relative is their precision)
    np.testing.assert_allclose(t.A.sum(axis=1), t.c, rtol=0, atol=1e-14)
    assert abs(t.b.sum() - 1.0) < 1e-14


# -- t.b_embedded: the embedded solution's weights (not b - b_hat), or None ---------------------------

def test_b_embedded_is_a_solution_not_a_difference():
    t = ob.get_method("Tsit5")
    assert t.b_embedded.shape == (t.stages,) and t.b_embedded.dtype == np.float64
    # a solution's weights sum to 1 (a difference of two solutions would sum to 0)
    assert abs(t.b_embedded.sum() - 1.0) < 1e-13
    assert not np.allclose(t.b_embedded, t.b)
    assert ob.get_method("RK4").b_embedded is None


# -- t.order, t.embedded_order, t.stages -------------------------------------------------------------

@pytest.mark.parametrize("name,order,embedded,stages", [("Tsit5", 5, 4, 7), ("DP5", 5, 4, 7), ("BS3", 3, 2, 4),
                                                        ("RK4", 4, None, 4), ("Euler", 1, None, 1)])
def test_orders_and_stages(name, order, embedded, stages):
    t = ob.get_method(name)
    assert (t.order, t.embedded_order, t.stages) == (order, embedded, stages)
    assert all(isinstance(v, int) for v in (t.order, t.stages))


# -- t.kind: "explicit" | "diagonally_implicit" | "implicit" ------------------------------------------

@pytest.mark.parametrize("name,kind", [("Tsit5", "explicit"), ("SDIRK2", "diagonally_implicit"),
                                       ("ImplicitEuler", "diagonally_implicit"), ("RadauIIA5", "implicit")])
def test_kind(name, kind):
    assert ob.get_method(name).kind == kind


# -- t.exact: exact coefficients when the method has them --------------------------------------------

def test_exact_coefficients_are_the_source_of_the_floats():
    rk4 = ob.get_method("RK4")
    ex = rk4.exact
    assert ex is not None
    assert ex.b == (Fraction(1, 6), Fraction(1, 3), Fraction(1, 3), Fraction(1, 6))
    assert all(isinstance(x, Fraction) for row in ex.A for x in row)
    np.testing.assert_array_equal(rk4.A, np.array([[float(x) for x in row] for row in ex.A]))
    np.testing.assert_array_equal(rk4.b, np.array([float(x) for x in ex.b]))


# -- ob.ButcherTableau(A, b, c=None, b_embedded=None, order=None, name=None): validated -----------------

def test_butcher_tableau_signature_and_validation():
    assert _params(ob.ButcherTableau)[:6] == [("A", inspect.Parameter.empty), ("b", inspect.Parameter.empty),
                                              ("c", None), ("b_embedded", None), ("order", None), ("name", None)]
    heun = ob.ButcherTableau([[0, 0], [1, 0]], ["1/2", "1/2"], None, None, 2, "MyHeun")
    assert (heun.name, heun.order, heun.kind, heun.stages) == ("MyHeun", 2, "explicit", 2)
    np.testing.assert_array_equal(heun.c, [0.0, 1.0])  # c defaults to the row sums of A
    with pytest.raises(ob.MethodValidationError, match="b: weights must sum to 1"):
        ob.ButcherTableau([[0, 0], [1, 0]], [0.5, 0.6])
    with pytest.raises(ob.MethodValidationError, match="b: expected 2 weights"):
        ob.ButcherTableau([[0, 0], [1, 0]], [0.5, 0.25, 0.25])
    with pytest.raises(ob.OrderConditionError, match="order"):
        ob.ButcherTableau([[0, 0], [1, 0]], [0.5, 0.5], order=3)
    with pytest.raises(ob.MethodFormatError, match=r"A\[1\]\[0\]"):
        ob.ButcherTableau([[0, 0], [float("nan"), 0]], [0.5, 0.5])
    with pytest.raises(ob.MethodValidationError, match="name"):  # found in this review: was accepted
        ob.ButcherTableau([[0]], [1], name=5)


# -- ob.verify_order(method) -> int --------------------------------------------------------------------

def test_verify_order():
    assert ob.verify_order(ob.get_method("RK4")) == 4
    assert ob.verify_order(ob.get_method("AB3")) == 3
    # a user method claiming nothing: its order is established from the order conditions
    assert ob.verify_order(ob.ButcherTableau([[0, 0], ["1/2", 0]], [0, 1])) == 2
    # catalogue names are accepted (found in this review: a name raised AttributeError)
    assert ob.verify_order("Tsit5") == 5
    with pytest.raises(TypeError, match="method"):
        ob.verify_order(3.0)


# -- ob.stability_function(method): callable R(z); .numerator / .denominator ascending ----------------

def test_stability_function():
    R = ob.stability_function("RK4")
    np.testing.assert_allclose(R.numerator, [1, 1, 1 / 2, 1 / 6, 1 / 24], rtol=1e-15)
    np.testing.assert_allclose(R.denominator, [1], rtol=0)
    z = np.array([[-1.0 + 0j, 0.5j], [-2.0, 1.0]])
    expected = sum(z ** k / math.factorial(k) for k in range(5))
    out = R(z)
    assert out.shape == z.shape
    np.testing.assert_allclose(out, expected, rtol=1e-14)
    Rie = ob.stability_function("ImplicitEuler")  # 1 / (1 - z)
    np.testing.assert_allclose(Rie.numerator, [1], rtol=0)
    np.testing.assert_allclose(Rie.denominator, [1, -1], rtol=0)
    np.testing.assert_allclose(Rie(np.array([-1.0 + 0j])), [0.5], rtol=1e-15)


# -- ob.stability_region(method, real=(-5, 1), imag=(-4, 4), resolution=401) -> DataArray ("imag","real")

def test_stability_region_dims_defaults_and_values():
    assert _params(ob.stability_region)[:4] == [("method", inspect.Parameter.empty), ("real", (-5.0, 1.0)),
                                                ("imag", (-4.0, 4.0)), ("resolution", 401)]
    r = ob.stability_region("Euler")
    assert isinstance(r, xr.DataArray)
    assert r.dims == ("imag", "real") and r.shape == (401, 401)
    # coordinates by key: r.real / r.imag are DataArray's real/imaginary parts, not these coords
    re_, im_ = r["real"].values, r["imag"].values
    assert (re_[0], re_[-1], im_[0], im_[-1]) == (-5.0, 1.0, -4.0, 4.0)
    # |1 + z| for Euler at a grid point (one complex product: round-off only)
    zr, zi = re_[100], im_[300]
    assert float(r[300, 100]) == pytest.approx(abs(complex(1 + zr, zi)), rel=1e-14)
    small = ob.stability_region("Euler", real=(-3, 0), imag=(-1, 1), resolution=(7, 5))
    assert small.sizes == {"imag": 5, "real": 7}
    assert float(small.sel(real=-1.0, imag=0.0)) == 0.0  # z = -1 is on this grid: R(-1) = 0
    with pytest.raises(ValueError, match="real"):
        ob.stability_region("RK4", real=(1, -1))
    with pytest.raises(ValueError, match="resolution"):
        ob.stability_region("RK4", resolution=1)


# -- ob.real_stability_interval(method) -> float (inf if unbounded) -------------------------------------

def test_real_stability_interval():
    assert isinstance(ob.real_stability_interval("RK4"), float)
    assert ob.real_stability_interval("Euler") == pytest.approx(2.0, abs=1e-12)
    assert ob.real_stability_interval("RK4") == pytest.approx(2.785293563405282, rel=1e-12)  # known root
    assert ob.real_stability_interval("ImplicitEuler") == math.inf


# -- ob.imag_stability_interval(method) -> float (0 if none) ----------------------------------------------

def test_imag_stability_interval():
    assert ob.imag_stability_interval("RK4") == pytest.approx(_SQRT8, rel=1e-12)  # |R(iy)| = 1 at y = 2√2
    assert ob.imag_stability_interval("Euler") == 0.0


# -- ob.RKCell(field, method, dt=1.0, substeps=1): nn.Module; forward(x, h) -> next h -------------------

def test_rkcell_signature_and_one_step():
    assert _params(ob.RKCell)[:4] == [("field", inspect.Parameter.empty), ("method", inspect.Parameter.empty),
                                      ("dt", 1.0), ("substeps", 1)]
    field = ob.make_field("elman", 3, 4, dtype=torch.float64)
    cell = ob.RKCell(field, "Euler", 0.1, 2)
    assert isinstance(cell, torch.nn.Module) and cell.method.name == "Euler"
    x = torch.randn(5, 3, dtype=torch.float64)
    h = torch.randn(5, 4, dtype=torch.float64)
    out = cell(x, h)
    assert out.shape == (5, 4)
    ref = h
    for _ in range(2):  # two Euler substeps of dt / 2
        ref = ref + 0.05 * field(ref, x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="dt"):
        ob.RKCell(field, "RK4", dt=0.0)
    with pytest.raises(ValueError, match="substeps"):
        ob.RKCell(field, "RK4", substeps=0)
    with pytest.raises(ValueError, match="x: expected last dimension 3"):
        cell(torch.randn(5, 2, dtype=torch.float64), h)


def test_learnable_rkcell_signature_and_order():
    assert _params(ob.LearnableRKCell)[:6] == [("field", inspect.Parameter.empty), ("stages", 4), ("order", 4),
                                               ("init", "RK4"), ("dt", 1.0), ("substeps", 1)]
    cell = ob.LearnableRKCell(ob.make_field("elman", 3, 4, dtype=torch.float64), stages=4, order=3, dt=0.1)
    assert isinstance(cell, ob.RKCell) and cell.theta.requires_grad
    assert cell(torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)).shape == (5, 4)
    assert isinstance(cell.tableau(), ob.ButcherTableau) and ob.verify_order(cell.tableau(), tol=1e-12) >= 3


def test_a_plain_callable_is_a_vector_field():
    # "A vector field is any callable field(h, x) -> dh/dt on torch tensors"
    cell = ob.RKCell(lambda h, x: -h + x, "RK4", 0.1)
    h = torch.zeros(2, 3, dtype=torch.float64)
    x = torch.ones(2, 3, dtype=torch.float64)
    # exact solution of h' = 1 - h from 0: 1 - e^{-t}; RK4's local error at dt = 0.1 is ~1e-7
    torch.testing.assert_close(cell(x, h), torch.full((2, 3), 1 - math.exp(-0.1), dtype=torch.float64),
                               rtol=0, atol=1e-7)


# -- ob.ODERNN(...): nn.RNN's calling convention, forward(input, h0=None) -> (output, h_n) --------------

def test_odernn_signature_and_calling_convention():
    assert _params(ob.ODERNN)[:8] == [("input_size", inspect.Parameter.empty), ("hidden_size", inspect.Parameter.empty),
                                      ("method", "RK4"), ("dt", 1.0), ("field", "elman"), ("num_layers", 1),
                                      ("batch_first", False), ("bias", True)]
    rnn = ob.ODERNN(3, 4, num_layers=2)
    assert isinstance(rnn, torch.nn.Module)
    out, h_n = rnn(torch.randn(6, 5, 3))
    assert out.shape == (6, 5, 4) and h_n.shape == (2, 5, 4)
    torch.testing.assert_close(out[-1], h_n[-1])  # the last layer's last state is the last output
    h0 = torch.randn(2, 5, 4)
    out2, _ = rnn(torch.randn(6, 5, 3), h0)
    assert out2.shape == (6, 5, 4)
    bf = ob.ODERNN(3, 4, batch_first=True)
    out, h_n = bf(torch.randn(5, 6, 3))
    assert out.shape == (5, 6, 4) and h_n.shape == (1, 5, 4)
    with pytest.raises(ValueError, match="input"):
        rnn(torch.randn(6, 5, 2))
    with pytest.raises(ob.NonFiniteError, match="input"):
        rnn(torch.full((6, 5, 3), float("nan")))
    with pytest.raises(ob.NonFiniteError, match="h0"):  # found in this review: NaN h0 went through
        rnn(torch.randn(6, 5, 3), torch.full((2, 5, 4), float("inf")))
    with pytest.raises(ValueError, match="hidden_size"):
        ob.ODERNN(3, 0)


# -- ob.validate(method_or_cell, problem="vanderpol", dts=None, backend="auto") -> Dataset -----------------

def test_validate_signature_and_method_on_named_problem():
    # ob.validate is the function or (once the subpackage odernn_bridge.validate has been imported,
    # as the doctest sweep below does at collection) a module that forwards calls: same signature
    assert _params(ob.validate)[:4] == [("method_or_cell", inspect.Parameter.empty), ("problem", "vanderpol"),
                                        ("dts", None), ("backend", "auto")]
    ds = ob.validate("RK4", "linear", dts=[0.1, 0.05, 0.025], backend="scipy")
    assert isinstance(ds, xr.Dataset)
    assert list(ds.dt.values) == [0.1, 0.05, 0.025]
    assert ds.attrs["verdict"] == "pass"
    assert abs(float(ds.observed_order) - 4) < 0.3  # the default tolerance of the verdict


def test_validate_dts_none_picks_halving_steps_for_a_cell():
    cell = ob.RKCell(ob.make_field("elman", 2, 3, dtype=torch.float64), "RK4", 0.1)
    ds = ob.validate(cell, backend="scipy")
    dts = ds.dt.values
    assert len(dts) >= 3
    np.testing.assert_allclose(dts[1:] / dts[:-1], 0.5, rtol=1e-12)
    assert ds.attrs["verdict"] == "pass" and abs(float(ds.observed_order) - 4) < 0.3


def test_validate_problem_object_and_backends():
    prob = ob.Problem("decay", rhs=lambda t, u, p: [-u[..., 0]], u0=[1.0], tspan=(0.0, 1.0),
                      exact=lambda t: np.array([math.exp(-t)]))
    ds = ob.validate("Heun", prob, dts=[0.1, 0.05, 0.025], backend="scipy")
    assert ds.attrs["problem"] == "decay" and abs(float(ds.observed_order) - 2) < 0.3
    with pytest.raises(ValueError, match="backend"):
        ob.validate("RK4", "linear", dts=[0.1, 0.05], backend="matlab")
    with pytest.raises(ValueError, match="problem"):
        ob.validate("RK4", "no_such_problem", backend="scipy")
    if "julia" not in ob.reference.available_backends():
        start = time.perf_counter()
        with pytest.raises(ob.JuliaUnavailableError, match="install"):
            ob.validate("RK4", "linear", dts=[0.1, 0.05], backend="julia")
        assert time.perf_counter() - start < 1.0  # "within a second"
        from odernn_bridge.reference.backend import _reset_for_tests

        _reset_for_tests()  # the fallback is announced once per process
        with pytest.warns(Warning, match="SciPy"):  # "auto" falls back and says so
            ds = ob.validate("RK4", "linear", dts=[0.1, 0.05], backend="auto")
        assert ds.attrs["backend"] == "scipy"


# -- ob.classify(module) -> Classification, a NamedTuple (n, t, explanation) ------------------------------

@pytest.mark.parametrize("module,n,t", [(torch.nn.RNN(3, 4), 1, 1), (torch.nn.GRU(3, 4), 1, 1),
                                         (torch.nn.LSTM(3, 4), 1, 2)])
def test_classify(module, n, t):
    c = ob.classify(module)
    assert isinstance(c, ob.Classification) and isinstance(c, tuple)
    assert ob.Classification._fields == ("n", "t", "explanation")
    assert (c.n, c.t) == (n, t) and isinstance(c.explanation, str) and c.explanation


def test_classify_rejects_other_modules():
    with pytest.raises(TypeError, match="module"):
        ob.classify(torch.nn.Linear(2, 2))


# -- ob.as_odernn(torch_rnn_module) -> ODERNN: same weights, same outputs --------------------------------

@pytest.mark.parametrize("cls", [torch.nn.RNN, torch.nn.GRU, torch.nn.LSTM])
def test_as_odernn_same_outputs(cls):
    rnn = cls(3, 4, num_layers=2, dtype=torch.float64)
    od = ob.as_odernn(rnn)
    assert isinstance(od, ob.ODERNN)
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    with torch.no_grad():
        ref, got = rnn(x)[0], od(x)[0]
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)  # float64, same arithmetic up to reordering
    # same weights: a change to the torch module shows in the ODERNN's output
    with torch.no_grad():
        for p in rnn.parameters():
            p.mul_(0.5)
        torch.testing.assert_close(ob.as_odernn(rnn)(x)[0], rnn(x)[0], rtol=0, atol=1e-12)
    with pytest.raises(TypeError, match="module"):
        ob.as_odernn(torch.nn.Linear(2, 2))


# -- "methods/ and stability/ must import without torch" ---------------------------------------------------

def test_methods_and_stability_run_without_torch():
    code = ("import sys, odernn_bridge as ob\n"
            "ob.get_method('Tsit5').order; ob.stability_region('RK4', resolution=11)\n"
            "ob.real_stability_interval('RK4'); ob.verify_order('RK4')\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stderr[-2000:]


# -- every public name resolves --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ob.__all__)
def test_every_public_name_resolves(name):
    value = getattr(ob, name)
    assert value is not None
    assert name in dir(ob)


# -- docstring examples of every module --------------------------------------------------------------------

def _modules() -> list[str]:
    # all of them, none skipped (odernn_bridge.__main__ only runs the CLI under `python -m`)
    return ["odernn_bridge", *(info.name for info in pkgutil.walk_packages(ob.__path__, "odernn_bridge."))]


@pytest.mark.parametrize("module", _modules())
def test_docstring_examples(module):
    # every module is imported (an import error fails here); examples must all pass.  The whole
    # sweep takes ~5 s on one core.
    mod = importlib.import_module(module)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=False)
    assert res.failed == 0, f"{res.failed} of {res.attempted} docstring examples of {module} failed (run doctest -v)"
