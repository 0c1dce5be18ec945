"""Method files are untrusted input: nothing in them runs, every error is MethodFormatError,
and the work spent on any of them is bounded (issues 10.1-10.3 and 14.3).

The fuzz tests print a one-line summary (cases, outcomes by type, slowest case, peak
memory); ``ODERNN_FUZZ_EXAMPLES=N`` runs a longer campaign than CI's default.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import time
import tracemalloc
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import odernn_bridge as ob  # noqa: E402
from odernn_bridge.errors import MethodFileOrderError, MethodFileValidationError  # noqa: E402
from odernn_bridge.methods import expression  # noqa: E402
from odernn_bridge.methods.exact import parse_coefficient  # noqa: E402
from odernn_bridge.methods.serialization import MAX_METHOD_FILE_BYTES, method_from_dict  # noqa: E402

# generous for a loaded 2-core CI machine: the cases below take milliseconds when alone
TIME_LIMIT_S = 1.0
MEMORY_LIMIT_B = 200 * 2**20


@pytest.fixture(scope="module", autouse=True)
def _sympy_imported():
    # SymPy's first import (~0.5 s) is not work done for the input: keep it out of timings
    import sympy

    sympy.sqrt(2) + sympy.CRootOf(sympy.Symbol("x") ** 3 - 2, 0)
    ob.loads_method(ob.dumps_method(ob.get_method("GL4")))  # and the order-condition modules


def _payloads(marker: Path) -> list[str]:
    m = str(marker)
    return [
        f"__import__('pathlib').Path('{m}').write_text('owned') and 0",
        f"exec(\"open('{m}','w').write('owned')\")",
        f"(lambda: open('{m}', 'w').write('owned'))()",
        f"eval(\"__import__('os').system('touch {m}')\")",
        "().__class__.__bases__[0].__subclasses__()",
        f"Symbol('x').__class__.__init__.__globals__['os'].system('touch {m}')",
        f"sqrt(2) + Function('open')('{m}', 'w')",
        f"[open('{m}', 'w') for _ in (1,)][0] and 1",
        f"getattr(__builtins__, 'open')('{m}', 'w')",
    ]


def _as_toml(d: dict) -> str:
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v) if not (isinstance(v, float) and not math.isfinite(v)) else ("nan" if v != v else
                                                                                        ("inf" if v > 0 else "-inf"))
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {val(x)}" for k, x in v.items()) + "}"
        raise TypeError(type(v))

    return "".join(f"{json.dumps(k)} = {val(v)}\n" for k, v in d.items() if v is not None)


# -- 1. malicious files run nothing ----------------------------------------------------------

@pytest.mark.parametrize("key", ["A", "b", "c", "b_embedded", "alpha", "beta"])
@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_malicious_method_files_run_nothing(tmp_path, key, fmt):
    marker = tmp_path / "owned.txt"
    for i, payload in enumerate(_payloads(marker)):
        if key in ("alpha", "beta"):
            d = {"type": "linear_multistep", "alpha": [0, -1, 1], "beta": ["-1/2", "3/2", 0]}
            d[key][1] = payload
            where = rf"{key}\[1\]"
        else:
            d = {"A": [[], ["1/2"]], "b": [0, 1], "c": [0, "1/2"], "b_embedded": [1, 0]}
            if key == "A":
                d["A"][1][0] = payload
                where = r"A\[1\]\[0\]"
            else:
                d[key][1] = payload
                where = rf"{key}\[1\]"
        path = tmp_path / f"m{i}.{fmt}"
        path.write_text(json.dumps(d) if fmt == "json" else _as_toml(d))
        with pytest.raises(ob.MethodFormatError, match=where) as info:
            ob.load_method(path)
        assert "cannot parse" in str(info.value)
        assert not marker.exists(), f"payload {payload!r} ran"


def test_coefficient_grammar_accepts_what_the_catalogue_writes():
    # every syntactic form the catalogue data and to_dict() use, with their exact values
    import sympy as sp

    x = sp.Symbol("x")
    r = sp.CRootOf(6 * x**3 - 18 * x**2 + 9 * x - 1, 1)
    cases = {
        "1/6": Fraction(1, 6), " -3 / 4 ": Fraction(-3, 4), "-0.25": Fraction(-1, 4), "1.5e-3": Fraction(3, 2000),
        "2^-3": Fraction(1, 8), "(3/2)**2": Fraction(9, 4), "Rational(1, 3)": Fraction(1, 3),
        "1/2 - sqrt(15)/10": sp.Rational(1, 2) - sp.sqrt(15) / 10,
        "sqrt(5/9 - 2*sqrt(70)/63)/2 + 1/2": sp.sqrt(sp.Rational(5, 9) - 2 * sp.sqrt(70) / 63) / 2 + sp.Rational(1, 2),
        "(3*sqrt(2)/4 + 1)/3": (3 * sp.sqrt(2) / 4 + 1) / 3,
        "CRootOf(6*x**3 - 18*x**2 + 9*x - 1, 1)": r,
        "-1/4 + (3/2)*CRootOf(6*x**3 - 18*x**2 + 9*x - 1, 1) + (-1/2)*CRootOf(6*x**3 - 18*x**2 + 9*x - 1, 1)**2":
            sp.Rational(-1, 4) + sp.Rational(3, 2) * r - sp.Rational(1, 2) * r**2,
    }
    for text, want in cases.items():
        got = parse_coefficient(text)
        assert got == want and type(got) is type(want), text
    # a long published decimal keeps its digits (not exact)
    assert parse_coefficient("0.123456789012345678") == Decimal("0.123456789012345678")


def test_algebraic_catalogue_methods_round_trip_identically():
    # every catalogue method written with radicals or CRootOf, through JSON and back:
    # the same exact coefficients (structural SymPy equality, not just the same floats)
    names = ["GL6", "SDIRK3", "Kvaerno3", "RadauIIA7", "Lawson6", "LobattoIIIC8", "TRBDF2", "Vern9"]
    for name in names:
        m = ob.get_method(name)
        back = ob.loads_method(ob.dumps_method(m), verify=False)
        assert back == m and back.coefficient_kind == m.coefficient_kind, name
        np.testing.assert_array_equal(back.A, m.A)


def test_every_catalogue_data_file_loads_with_the_grammar():
    # the bundled data files go through the same parser as user files
    from importlib import resources

    n = 0
    for f in (resources.files("odernn_bridge.methods") / "data").iterdir():
        if f.name.endswith(".json"):
            for d in json.loads(f.read_text(encoding="utf-8"))["methods"]:
                m = method_from_dict(d, verify=False)
                assert m == ob.get_method(d["name"])
                n += 1
    assert n >= 90


# -- 2. hostile values: bounded work, clear errors -------------------------------------------

def _timed(fn):
    t0 = time.perf_counter()
    try:
        fn()
        raise AssertionError("expected MethodFormatError")
    except ob.MethodFormatError as exc:
        elapsed = time.perf_counter() - t0
        assert elapsed < TIME_LIMIT_S, f"took {elapsed:.2f} s"
        return str(exc)


def _method_with(value: str) -> str:
    return json.dumps({"A": [[], [value]], "b": [0, 1]})


HOSTILE = {
    # issue 14.3
    "1e999999999": "decimal exponent",
    "10**10**10": "exponent",
    "factorial(10**8)": "not an allowed function",
    "CRootOf(x**200 - 2, 0)": "degree",
    "CRootOf(" + " + ".join(f"{k + 1}*x**{k}" for k in range(201)) + ", 0)": "syntax nodes",
    # issue 10.3
    "1/0": "division by zero",
    "1e400": "float64 range",
    "NaN": "finite",
    "-inf": "finite",
    "9" * 2000: "digits",
    "(2**60)**60": "digits",
    "((1+sqrt(2))**64)**64": "combined exponent",
    "sqrt(" * 40 + "2" + ")" * 40: "nested deeper",
    "-" * 5000 + "1": "not a valid expression",
    "(" * 500 + "1" + ")" * 500: "not a valid expression",
    "+".join(["sqrt(2)"] * 900): "syntax nodes",
    "1" * 20000: "characters",
    "CRootOf(x**2 + 1, 0)": "complex root",
    "CRootOf(" + "*".join(f"(x-{k})" for k in range(9)) + ", 0)": "degree",
    "+".join(f"CRootOf(x**3 - {k}*x + 1, 0)" for k in range(3, 9)): "distinct CRootOf",
    "(-8)**(1/3)": "real",
    "sqrt(-2)": "real",
    "1j": "real number",
    "0x1F": "decimal number",
    "x + 1": "unknown name",
    "Rational(1, 0)": "division by zero",
    "sqrt(2, 3)": "argument",
    "sqrt(x=2)": "not allowed",
}


@pytest.mark.parametrize("value", list(HOSTILE), ids=lambda v: v[:30])
def test_hostile_coefficient_is_bounded_and_named(value):
    msg = _timed(lambda: ob.loads_method(_method_with(value)))
    assert r"A[1][0]" in msg and HOSTILE[value] in msg, msg


def test_huge_tableau_rejected_before_parsing():
    # 2000 rows used to cost ~20 s (O(N^2) parsing); now refused from the shape alone
    rows = [["1/7"] * i for i in range(2000)]
    text = json.dumps({"A": rows, "b": ["1/2000"] * 2000})  # 12 MB: over the file-size limit
    assert "MAX_METHOD_FILE_BYTES" in _timed(lambda: ob.loads_method(text))
    assert "MAX_STAGES" in _timed(lambda: ob.loads_method(json.dumps({"A": [[]] * 2000, "b": [0] * 2000})))
    t0 = time.perf_counter()
    with pytest.raises(ob.MethodValidationError, match="MAX_STAGES"):
        ob.ButcherTableau(rows, ["1/2000"] * 2000)  # the same from Python: refused from its shape
    assert time.perf_counter() - t0 < TIME_LIMIT_S
    for bad, match in (({"A": [[], list(range(10**5))], "b": [0, 1]}, r"A\[1\]"),
                       ({"A": [[], [1]], "b": [0.5] * 10**5}, "b: expected 2"),
                       ({"type": "linear_multistep", "alpha": [0] * 10**5, "beta": [0] * 10**5}, "MAX_STEPS")):
        assert re.search(match, _timed(lambda: ob.loads_method(json.dumps(bad))))
    with pytest.raises(ob.MethodValidationError, match="MAX_STAGES"):
        ob.ButcherTableau(np.zeros((2000, 2000)), np.full(2000, 1 / 2000))


def test_file_level_errors_are_method_format_errors(tmp_path):
    cases = {
        "latin1.json": ("{\"name\": \"caf\xe9\"}".encode("latin-1"), "not UTF-8"),
        "deep.json": (b"[" * 100000 + b"]" * 100000, "malformed JSON"),
        "bigint.json": (b'{"A": [[0]], "b": [' + b"7" * 5000 + b"]}", "malformed JSON"),
        "deep.toml": (b"A = " + b"[" * 100000 + b"]" * 100000, "malformed TOML"),
        "nan.json": (b'{"A": [[0]], "b": [NaN]}', "finite"),
        "inf.toml": (b"A = [[0]]\nb = [inf]\n", "finite"),
        "overflow.json": (b'{"A": [[0]], "b": [1e400]}', "finite"),
        "list.json": (b"[1, 2]", "mapping"),
        "bool_order.json": (b'{"A": [[0]], "b": [1], "order": true}', "order"),
        "bool_flag.json": (b'{"A": [[0]], "b": [1], "fsal": "yes"}', "fsal"),
        "str_citation.toml": (b"A = [[0]]\nb = [1]\ncitation = 3\n", "citation"),
        "date.toml": (b"A = [[0]]\nb = [1979-05-27]\n", r"b\[0\]"),
        "stage_order.json": (b'{"A": [[0]], "b": [1], "stage_order": 99}', "stage_order"),
        "ragged.json": (b'{"A": [[0]], "b": [[1, 2], [3]]}', "b"),
    }
    for name, (data, match) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        assert re.search(match, _timed(lambda: ob.load_method(p))), name
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(MAX_METHOD_FILE_BYTES + 1)
    with pytest.raises(ob.MethodFormatError, match="MAX_METHOD_FILE_BYTES"):
        ob.load_method(big)


def test_utf8_bom_is_accepted(tmp_path):
    # documented choice: a UTF-8 byte-order mark (Windows editors) is dropped
    text = ob.dumps_method(ob.get_method("RK4"))
    for fmt, body in (("json", text), ("toml", ob.dumps_method(ob.get_method("RK4"), "toml"))):
        p = tmp_path / f"rk4.{fmt}"
        p.write_bytes(b"\xef\xbb\xbf" + body.encode())
        assert ob.load_method(p) == ob.get_method("RK4")
    assert ob.loads_method("\ufeff" + text) == ob.get_method("RK4")


def test_validation_failures_in_files_are_also_format_errors():
    # a method that parses but is invalid: MethodFormatError *and* the constructor's class
    with pytest.raises(MethodFileValidationError, match="sum to 1") as info:
        ob.loads_method('{"A": [[0, 0], [1, 0]], "b": [0.5, 0.6]}')
    assert isinstance(info.value, ob.MethodFormatError) and isinstance(info.value, ob.MethodValidationError)
    with pytest.raises(MethodFileOrderError) as info:
        ob.loads_method('{"A": [[], [1]], "b": ["1/2", "1/2"], "order": 2, "stage_order": 2}')
    assert isinstance(info.value, ob.OrderConditionError) and isinstance(info.value, ob.MethodFormatError)


def test_constructor_argument_errors_name_the_argument():
    heun = dict(A=[[0, 0], [1, 0]], b=[0.5, 0.5])
    cases = [
        (dict(heun, order=True), ob.MethodValidationError, "order: expected an integer, got True"),
        (dict(heun, order=2.0), ob.MethodValidationError, "order: expected an integer"),
        (dict(heun, embedded_order=True, b_embedded=[1, 0]), ob.MethodValidationError, "embedded_order"),
        (dict(heun, stage_order=99), ob.OrderConditionError, "stage_order: claimed 99"),
        (dict(heun, stage_order=2), ob.OrderConditionError, "stage_order"),  # Heun's is 1: refuted
        (dict(heun, A=[[], [1]], order=3), ob.OrderConditionError, "order at most 2"),
        (dict(A=np.array([[0, 0], [1 + 0j, 0]]), b=[0.5, 0.5]), ob.MethodValidationError, "A: .*complex"),
        (dict(heun, b=np.array([0.5, 0.5 + 1e-3j])), ob.MethodValidationError, "b: .*complex"),
        (dict(heun, b=[0.5, 1j]), ob.MethodFormatError, r"b\[1\].*complex"),
        (dict(heun, b=[[0.5], [0.5, 1]]), ob.MethodValidationError, "b: expected a 1-D vector"),
        (dict(heun, fsal="yes"), ob.MethodValidationError, "fsal"),
        (dict(heun, citation=3), ob.MethodValidationError, "citation"),
    ]
    for kwargs, exc, match in cases:
        with pytest.raises(exc, match=match):
            ob.ButcherTableau(**kwargs)
    ab2 = dict(alpha=[0, -1, 1], beta=["-1/2", "3/2", 0])
    for kwargs, exc, match in [(dict(ab2, order=True), ob.MethodValidationError, "order: expected an integer"),
                               (dict(ab2, order=5), ob.OrderConditionError, "order at most 4"),
                               (dict(ab2, alpha=[0, -1, 1j]), ob.MethodFormatError, r"alpha\[2\]"),
                               (dict(ab2, family=1), ob.MethodValidationError, "family")]:
        with pytest.raises(exc, match=match):
            ob.LinearMultistep(**kwargs)
    # a decimal-coefficient LMM with a non-unit leading coefficient is normalised (was a TypeError)
    m = ob.LinearMultistep(["-2.00000000000000", 2], [0, 2], order=1)  # implicit Euler, times 2
    assert m.alpha[-1] == 1.0 and isinstance(m.alpha_exact[0], Decimal)


# -- 3. fuzz: arbitrary bytes and mutated valid files -----------------------------------------

FUZZ_EXAMPLES = int(os.environ.get("ODERNN_FUZZ_EXAMPLES", "150"))
_SEEDS = ["RK4", "BS3", "SDIRK3", "GL4", "SSPRK53", "AB3", "BDF2"]
_GRAMMAR_TEXT = st.text(alphabet="0123456789.+-*/^() ,eEx" + "sqrtRationalCRootOf_'[]", max_size=60)
# well-formed expressions of the grammar (and slightly beyond: big powers, x, complex roots)
_EXPR = st.recursive(
    st.one_of(st.integers(0, 10**6).map(str), st.sampled_from(["0.5", "1e-3", "2.25e2", "x", "0", "10**999"]),
              st.integers(2, 50).map(lambda k: f"sqrt({k})"),
              st.integers(-5, 5).map(lambda k: f"CRootOf(x**3 - 3*x + {k}, 0)")),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, st.sampled_from(["2", "3", "-1", "1/2", "1/3", "64", "65", "(1/13)"])).map(
            lambda t: f"({t[0]})**{t[1]}"),
        inner.map(lambda e: f"sqrt({e})"), inner.map(lambda e: f"-{e}"),
        st.tuples(inner, inner).map(lambda t: f"Rational({t[0]}, {t[1]})")),
    max_leaves=12)
_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-10**400, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), _GRAMMAR_TEXT, st.text(max_size=20),
    st.sampled_from(["1e400", "1/0", "nan", "10**10**10", "sqrt(2)", "CRootOf(x**2-2, 1)", "0.1234567890123456"]),
)
_VALUE = st.recursive(_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=6),
                                                     st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=20)


def _seed_dicts() -> list[dict]:
    return [json.loads(ob.dumps_method(ob.get_method(n))) for n in _SEEDS]


def _mutate(d, path: list[int], op: int, value):
    """Replace / delete / duplicate the node reached by ``path`` (indices modulo sizes)."""
    node = d
    for step in path:
        children = list(node.keys()) if isinstance(node, dict) else list(range(len(node))) \
            if isinstance(node, list) else []
        if not children:
            break
        key = children[step % len(children)]
        child = node[key]
        if not isinstance(child, (dict, list)) or step % 3 == 0:
            if op == 0:
                node[key] = value
            elif op == 1:
                del node[key]
            elif isinstance(node, list):
                node.append(child)
            return d
        node = child
    if isinstance(node, dict):
        node[str(value)[:8] if op == 2 else "order"] = value
    elif isinstance(node, list):
        node.append(value)
    return d


class _Stats:
    def __init__(self) -> None:
        self.cases = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.max_time = 0.0
        self.max_peak = 0
        self.slow: list[tuple[float, str]] = []

    def run(self, fn, label: str = "") -> None:
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            fn()
            outcome = "accepted"
        except ob.MethodFormatError as exc:
            outcome = type(exc).__name__
        finally:
            elapsed = time.perf_counter() - t0
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        if elapsed > TIME_LIMIT_S / 4:
            # tracemalloc slows SymPy-heavy cases several times: time those again without it
            t0 = time.perf_counter()
            try:
                fn()
            except ob.MethodFormatError:
                pass
            elapsed = time.perf_counter() - t0
        self.cases += 1
        self.outcomes[outcome] += 1
        self.max_time = max(self.max_time, elapsed)
        self.max_peak = max(self.max_peak, peak)
        if elapsed > 0.2:
            self.slow.append((round(elapsed, 3), label))

    def check_bounds(self) -> None:
        assert self.max_time < TIME_LIMIT_S, f"slowest case took {self.max_time:.2f} s: {max(self.slow)}"
        assert self.max_peak < MEMORY_LIMIT_B, f"a case allocated {self.max_peak / 2**20:.0f} MB"

    def report(self, capsys, label: str) -> None:
        with capsys.disabled():
            print(f"\n[fuzz {label}] cases={self.cases} outcomes={dict(self.outcomes)} "
                  f"max_time={self.max_time * 1e3:.1f} ms max_peak={self.max_peak / 2**20:.1f} MB")
            for t, label in sorted(self.slow, reverse=True)[:3]:
                print(f"  slow case {t} s: {label!r}")
        self.check_bounds()


_FUZZ_SETTINGS = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck))


def test_fuzz_arbitrary_bytes(capsys):
    stats = _Stats()

    @_FUZZ_SETTINGS
    @given(data=st.one_of(st.binary(max_size=600), st.text(max_size=300).map(str.encode)),
           fmt=st.sampled_from(["json", "toml"]))
    def check(data, fmt):
        stats.run(lambda: ob.loads_method(data, fmt), label=repr(data[:200]))

    check()
    stats.report(capsys, "bytes")
    assert stats.cases >= FUZZ_EXAMPLES


def test_fuzz_mutated_method_files(capsys):
    stats = _Stats()
    seeds = _seed_dicts()
    texts = {(i, fmt): (json.dumps(d) if fmt == "json" else _as_toml(d)).encode()
             for i, d in enumerate(seeds) for fmt in ("json", "toml")}

    @_FUZZ_SETTINGS
    @given(seed=st.integers(0, len(seeds) - 1), fmt=st.sampled_from(["json", "toml"]),
           how=st.sampled_from(["structure", "bytes"]),
           path=st.lists(st.integers(0, 50), min_size=1, max_size=4), op=st.integers(0, 2), value=_VALUE,
           edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 2), st.binary(min_size=1, max_size=4)),
                          min_size=1, max_size=4))
    def check(seed, fmt, how, path, op, value, edits):
        if how == "structure":
            d = _mutate(json.loads(json.dumps(seeds[seed])), path, op, value)
            try:
                data = (json.dumps(d) if fmt == "json" else _as_toml(d)).encode()
            except (TypeError, ValueError):  # not representable in TOML (e.g. a null in a list)
                data = json.dumps(d).encode()
                fmt = "json"
        else:
            data = bytearray(texts[(seed, fmt)])
            for pos, kind, chunk in edits:
                pos %= len(data) + 1
                if kind == 0:
                    data[pos:pos + len(chunk)] = chunk
                elif kind == 1:
                    data[pos:pos] = chunk
                else:
                    del data[pos:pos + len(chunk)]
            data = bytes(data)
        stats.run(lambda: ob.loads_method(data, fmt), label=data[:300].decode(errors="replace"))

    check()
    stats.report(capsys, "mutated files")
    assert stats.cases >= FUZZ_EXAMPLES
    assert stats.outcomes["accepted"] > 0  # the mutations are not all fatal: real methods get built


def test_fuzz_coefficient_expressions(capsys):
    stats = _Stats()

    @_FUZZ_SETTINGS
    @given(text=st.one_of(_EXPR, _EXPR, _GRAMMAR_TEXT, st.text(max_size=40)))
    def check(text):
        stats.run(lambda: parse_coefficient(text, where="A[1][0]"), label=text[:200])

    check()
    stats.report(capsys, "expressions")
    assert stats.cases >= FUZZ_EXAMPLES


def test_limits_are_documented():
    doc = (Path(__file__).parents[2] / "docs" / "methods.md").read_text()
    for name in ("MAX_EXPRESSION_LENGTH", "MAX_DIGITS", "MAX_DECIMAL_EXPONENT", "MAX_POWER", "MAX_ROOT",
                 "MAX_POLY_DEGREE", "MAX_POLY_DIGITS", "MAX_DEPTH", "MAX_NODES", "MAX_ROOTS", "MAX_STAGES",
                 "MAX_STEPS", "MAX_METHOD_FILE_BYTES"):
        assert name in doc, name
    assert str(expression.MAX_POWER) in doc


def test_cli_show_of_a_malicious_method_file(tmp_path, capsys):
    from odernn_bridge.cli import main

    marker = tmp_path / "owned.txt"
    path = tmp_path / "evil.json"
    path.write_text(json.dumps({"A": [[], [_payloads(marker)[0]]], "b": [0, 1]}))
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert "A[1][0]: cannot parse" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()
