"""The ODERNNBridge Julia package, checked without Julia (issue 12): every Julia file parses;
every name the module calls is defined in it, in Base/Core, or declared by its import lines
(and, for qualified names, was read in the upstream source at the commit named in
docs/validation.md); Project.toml and juliapkg.json agree; and the compat bounds agree with
the General-registry facts below — they admit the versions the facts require and exclude the
dead v6 generation.  What needs a Julia run is test/runtests.jl (``.ci/julia``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import odernn_bridge as ob
from odernn_bridge.reference import julia as jlglue
from odernn_bridge.reference.diffeqpy_backend import SOLVE_SRC

from .julia_static import analyse, error_nodes, julia_files, parse

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "ODERNNBridge.jl"
RUNTESTS = ROOT / "test" / "runtests.jl"
PROJECT = tomllib.loads((ROOT / "Project.toml").read_text())
JULIAPKG = json.loads((ROOT / "odernn_bridge" / "juliapkg.json").read_text())

# -- names outside the module ---------------------------------------------------------------------

#: Core builtins and types the Julia files use (Core is implicitly available in every module)
CORE = {"ArgumentError", "DomainError", "Float64", "Int", "String", "Symbol", "Function", "Module", "Type",
        "getfield", "isdefined", "throw", "nothing", "Any", "Bool"}
#: Base names the Julia files use, each checked against the export list of JuliaLang/julia
#: base/exports.jl at 64244b5 (``pkgversion`` is newer than that file: Base, Julia >= 1.9)
BASE = {"ComplexF64", "Dict", "DimensionMismatch", "Matrix", "Vector", "VersionNumber", "BigFloat", "abs", "all",
        "axes", "collect", "diff", "exp", "findfirst", "first", "haskey", "isempty", "isfinite", "iszero", "join",
        "keys", "length", "log", "max", "nameof", "only", "parentmodule", "permutedims", "pkgversion", "range",
        "reduce", "repr", "reshape", "rethrow", "similar", "size", "sort!", "sqrt", "string", "sum", "vcat",
        "zeros", "hcat"}
#: Test stdlib macros used by test/runtests.jl
TEST_MACROS = {"testset", "test", "test_throws"}

#: qualified names the module uses, per package, with where each was read (docs/validation.md)
UPSTREAM_API: dict[str, dict[str, str]] = {
    "DiffEqBase": {
        "ExplicitRKTableau": "lib/DiffEqBase/src/tableaus.jl@f24f124 (A, c, α, order; αEEst, adaptiveorder)",
        "ImplicitRKTableau": "lib/DiffEqBase/src/tableaus.jl@f24f124",
        "ODERKTableau": "supertype in lib/DiffEqBase/src/tableaus.jl@f24f124; imported by DiffEqDevTools@120d5a4",
    },
    "DiffEqDevTools": {
        "stability_region": "lib/DiffEqDevTools/src/tableau_info.jl@23f96b3 ((z, tab) and (tab; initial_guess))",
        "imaginary_stability_interval": "lib/DiffEqDevTools/src/tableau_info.jl@23f96b3 (tab; initial_guess)",
        "analyticless_test_convergence": "lib/DiffEqDevTools/src/convergence.jl@fd4631d (dts, prob, alg, setup)",
    },
    "OrdinaryDiffEq": {   # v7 re-exports (SciML/OrdinaryDiffEq.jl PR #3249, issue #3722)
        **{alg: "v7 default set (PR #3249)" for alg in ("Tsit5", "Vern6", "Vern7", "Vern8", "Vern9")},
        **{fn: "SciMLBase/CommonSolve re-export (PR #3249)" for fn in ("ODEProblem", "solve", "init", "step!")},
    },
    "OrdinaryDiffEqExplicitRK": {
        "ExplicitRK": "lib/OrdinaryDiffEqExplicitRK/src/algorithms.jl@00897fe (ExplicitRK(; tableau))",
    },
    "LinearAlgebra": {"SingularException": "stdlib", "LAPACKException": "stdlib"},
}

#: tableau functions, by package, read in the 2.x sources (plain names, unexported)
TABLEAU_FUNCTIONS = {
    "OrdinaryDiffEqExplicitTableaus": {  # tableaus_low_order.jl@236da04, tableaus_order5.jl@5fa5db6
        "Euler", "Heun", "Ralston", "Kutta3", "RK4", "RK438Rule", "Ralston4", "SSPRK22", "SSPRK33", "SSPRK43",
        "SSPRK104", "DormandPrince", "RKF5", "RungeFirst5", "Cassity5", "Lawson5", "Tsitouras5", "BogakiShampine5",
        "SharpSmart5", "BogakiShampine3", "CashKarp", "RKF4",
        # tableaus_order6.jl@3a4ec51 (Verner7 = Vern7's coefficients; VernerEfficient7 is in
        # tableaus_order7.jl and is a different pair, catalogue VernerEfficient7)
        "VernerEfficient6", "Verner7"},
    "OrdinaryDiffEqImplicitTableaus": {  # ode_tableaus.jl@efda019
        "GL2", "GL4", "GL6", "ImplicitEuler", "MidpointRule", "TrapezoidalRule", "LobattoIIIA4", "LobattoIIIB2",
        "LobattoIIIB4", "LobattoIIIC2", "LobattoIIIC4", "LobattoIIICStar4", "LobattoIIID2", "LobattoIIID4",
        "RadauIA3", "RadauIA5", "RadauIIA3", "RadauIIA5"},
}
#: names TABLEAU_NAMES maps to whose source files were not in the searchable index
UNVERIFIED_TABLEAU_NAMES = {"VernerEfficient9"}


# -- parsing -------------------------------------------------------------------------------------------

def test_every_julia_file_and_snippet_parses() -> None:
    files = julia_files(ROOT)
    resolved = {p.resolve() for p in files}
    assert {SRC.resolve(), RUNTESTS.resolve()} <= resolved
    for path in files:
        assert error_nodes(parse(path.read_bytes())) == [], path
    snippets = {f"problem {n}": ob.reference.get_problem(n).julia_rhs for n in ob.reference.list_problems()}
    snippets["diffeqpy SOLVE_SRC"] = SOLVE_SRC
    for what, src in snippets.items():
        assert src and error_nodes(parse(src)) == [], what


def test_layout_is_a_julia_package() -> None:
    """`julia --project` finds the module at src/<name>.jl; julia_src/ (the design card's
    location) and the wheel's package data are links to that one file."""
    assert PROJECT["name"] == "ODERNNBridge" and SRC.is_file() and not SRC.is_symlink()
    assert re.search(r"^module ODERNNBridge$", SRC.read_text(), flags=re.M)
    for link in (ROOT / "julia_src" / "ODERNNBridge.jl", ROOT / "odernn_bridge" / "julia" / "ODERNNBridge.jl"):
        assert link.resolve() == SRC.resolve(), link
    assert PROJECT["extras"]["Test"] == "8dfed614-e22c-5e08-85e1-65c5234f0b40"
    assert PROJECT["targets"]["test"] == ["Test"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", PROJECT["version"])


# -- names ---------------------------------------------------------------------------------------------

def _undeclared(source: str, extra: set[str] = frozenset()) -> dict[str, set]:
    n = analyse(source)
    allowed = n.defined | CORE | BASE | n.selected | set(extra)
    qualified_bad = {(m, x) for m, x in n.qualified
                     if m in n.imports and m in UPSTREAM_API and x not in UPSTREAM_API[m]}
    known_roots = n.imports | n.defined | {"Base", "Core"}
    unknown_modules = {m for m, _ in n.qualified if m[:1].isupper() and m not in known_roots}
    return {"calls": n.calls - allowed, "isa": n.isa_types - allowed, "qualified": qualified_bad,
            "modules": unknown_modules}


def test_module_calls_only_declared_names() -> None:
    n = analyse(SRC.read_text())
    assert n.imports == set(PROJECT["deps"]), "import lines and [deps] differ"
    assert _undeclared(SRC.read_text()) == {"calls": set(), "isa": set(), "qualified": set(), "modules": set()}
    # every qualified name of an upstream package was checked against its source
    used = {(m, x) for m, x in n.qualified if m in UPSTREAM_API}
    assert used and all(x in UPSTREAM_API[m] for m, x in used)
    # the tableau packages are used as modules only (their functions are looked up by name)
    assert {"OrdinaryDiffEqExplicitTableaus", "OrdinaryDiffEqImplicitTableaus"} <= n.imports


def test_runtests_uses_only_the_module_test_and_base() -> None:
    module = analyse(SRC.read_text())
    n = analyse(RUNTESTS.read_text())
    assert n.imports == {"Test", "ODERNNBridge"}
    assert n.macros <= TEST_MACROS
    assert n.calls - (n.defined | CORE | BASE | module.exports) == set()
    for root, member in n.qualified:
        if root == "ODERNNBridge":
            assert member in module.imports | module.defined, member
    # the tableau names it asks for were read in the 2.x sources
    asked = set(re.findall(r'(?:export_tableau|find_tableau|find_constructor)\("(\w+)"\)', RUNTESTS.read_text()))
    known = set().union(*TABLEAU_FUNCTIONS.values())
    assert asked and asked - {"NoSuchTableau"} <= known


def test_the_checker_catches_undeclared_names() -> None:
    """Negative control: the analysis above would flag a misspelt call, an undeclared module
    and an upstream name nobody checked."""
    bad = """module M
import DiffEqDevTools
f(x) = stabilty_region(x) + Foo.bar(x) + DiffEqDevTools.construct_rk4(x)
end"""
    found = _undeclared(bad)
    assert found["calls"] == {"stabilty_region"}
    assert found["modules"] == {"Foo"}
    assert found["qualified"] == {("DiffEqDevTools", "construct_rk4")}


def test_no_bare_catch_no_construct_shims_whitelisted_algorithms() -> None:
    tree = parse(SRC.read_bytes())
    catches = []

    def walk(node) -> None:
        if node.type == "catch_clause":
            catches.append(node)
        for c in node.children:
            walk(c)

    walk(tree.root_node)
    assert catches
    for c in catches:   # `catch err` filtered with rethrow(), never a bare `catch`
        assert any(x.type == "identifier" for x in c.named_children[:1]), c.text[:40]
        assert b"rethrow()" in c.text, c.text[:80]
    text = SRC.read_text()
    assert "construct" not in {m.group(0)[:9] for m in re.finditer(r"\bconstruct\w*\(", text)}
    assert "invokelatest" not in text and "Base.require" not in text
    # solve_reference resolves algorithm names through a fixed table, the same on both sides
    keys = set(re.findall(r'^\s+"(\w+)" => OrdinaryDiffEq\.\1,$', text, flags=re.M))
    assert keys == set(jlglue.REFERENCE_ALGS)
    assert "getproperty(OrdinaryDiffEq" not in text
    assert set(re.findall(r'"(\w+)"', SOLVE_SRC.splitlines()[1])) == set(jlglue.REFERENCE_ALGS)


def test_python_glue_calls_only_exported_functions() -> None:
    exports = analyse(SRC.read_text()).exports
    glue = (ROOT / "odernn_bridge" / "reference" / "julia.py").read_text()
    called = set(re.findall(r'_call\("(\w+)"', glue))
    assert called and called <= exports, called - exports
    # 𝒪est is read in Julia, never through Python attribute access (NFKC would read it as Oest)
    assert "sim.𝒪est[:final]" in SRC.read_text() and "𝒪" not in re.sub(r"``[^`]*``", "", glue)
    # catalogue -> Julia tableau names point at functions read upstream (or listed as unchecked)
    known = set().union(*TABLEAU_FUNCTIONS.values())
    assert set(jlglue.TABLEAU_NAMES.values()) - known == UNVERIFIED_TABLEAU_NAMES


# -- Project.toml / juliapkg.json / registry ----------------------------------------------------------------

_V = tuple[int, int, int]


def _vt(text: str) -> tuple[_V, int]:
    parts = [int(x) for x in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts))), len(parts)  # type: ignore[return-value]


def _upper(v: _V, given: int) -> _V:
    """Exclusive upper end of the versions a partial version ``v`` (``given`` parts) covers."""
    if given == 1:
        return (v[0] + 1, 0, 0)
    if given == 2:
        return (v[0], v[1] + 1, 0)
    return (v[0], v[1], v[2] + 1)


def compat_ranges(spec: str) -> list[tuple[_V, _V]]:
    """Pkg compat specifier -> [lo, hi) ranges: caret (default, ``^``), tilde, ``=``, ``<``,
    ``>=`` and hyphen ranges ``a - b``, comma-separated (union), as Pkg and juliapkg read them.

    >>> compat_ranges("1.10, 7")
    [((1, 10, 0), (2, 0, 0)), ((7, 0, 0), (8, 0, 0))]
    """
    out = []
    for part in (p.strip() for p in spec.split(",")):
        m = re.fullmatch(r"(\d+(?:\.\d+){0,2})\s+-\s+(\d+(?:\.\d+){0,2})", part)
        if m:
            lo, _ = _vt(m.group(1))
            hi, given = _vt(m.group(2))
            out.append((lo, _upper(hi, given)))
            continue
        m = re.fullmatch(r"(\^|~|=|<|>=)?\s*(\d+(?:\.\d+){0,2})", part)
        assert m, f"unsupported compat entry {part!r} in {spec!r}"
        op, (v, given) = m.group(1) or "^", _vt(m.group(2))
        if op == "=":
            out.append((v, _upper(v, 3)))
        elif op == "<":
            out.append(((0, 0, 0), v))
        elif op == ">=":
            out.append((v, (10**9, 0, 0)))
        elif op == "~":
            out.append((v, _upper(v, min(given, 2)) if given > 1 else _upper(v, 1)))
        else:  # caret: the first non-zero component is fixed
            if v[0] != 0 or given == 1:
                out.append((v, (v[0] + 1, 0, 0)))
            elif v[1] != 0 or given == 2:
                out.append((v, (0, v[1] + 1, 0)))
            else:
                out.append((v, (0, 0, v[2] + 1)))
    return out


def allows(spec: str, version: str) -> bool:
    v, _ = _vt(version)
    return any(lo <= v < hi for lo, hi in compat_ranges(spec))


def overlaps(a: str, b: str) -> bool:
    return any(max(l1, l2) < min(h1, h2) for l1, h1 in compat_ranges(a) for l2, h2 in compat_ranges(b))


def test_compat_parser() -> None:
    assert allows("7", "7.5.8") and not allows("7", "6.194.0") and not allows("7", "8.0.0")
    assert allows("1.10", "1.11.2") and not allows("1.10", "1.9.4")
    assert allows("<0.0.1, 1", "0.0.0") and allows("<0.0.1, 1", "1.11.0") and not allows("<0.0.1, 1", "0.1.0")
    assert allows("1.10.0 - 1", "1.12.0") and not allows("6.194.0 - 6", "7.0.0")
    assert allows("^1.10", "1.10.0") and allows("=0.9.37", "0.9.37") and not allows("=0.9.37", "0.9.38")
    assert not overlaps("6.194, 7", "8") and overlaps("6, 7", "7")


def test_project_toml_and_juliapkg_json_agree() -> None:
    deps, compat = PROJECT["deps"], PROJECT["compat"]
    uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    assert uuid.match(PROJECT["uuid"]) and all(uuid.match(u) for u in deps.values())
    assert set(JULIAPKG["packages"]) == set(deps)
    for name, entry in JULIAPKG["packages"].items():
        assert entry["uuid"] == deps[name], name
        assert compat_ranges(entry["version"]) == compat_ranges(compat[name]), name
    assert set(compat) == set(deps) | {"julia", "Test"}
    assert compat_ranges(JULIAPKG["julia"]) == compat_ranges(compat["julia"])
    # UUIDs as in each package's own Project.toml (SciML/OrdinaryDiffEq.jl lib/*, registry Package.toml)
    assert deps == {
        "DiffEqBase": "2b5f629d-d688-5b77-993f-72d75c75574e",
        "DiffEqDevTools": "f3b72e0c-5b89-59e1-b016-84e28bfd966d",
        "LinearAlgebra": "37e2e46d-f89d-539d-b4ee-838fcccc9c8e",
        "OrdinaryDiffEq": "1dea7af3-3e70-54e6-95c3-0bf5283fa5ed",
        "OrdinaryDiffEqExplicitRK": "9286f039-9fbf-40e8-bf65-aa933bdc4db0",
        "OrdinaryDiffEqExplicitTableaus": "3278f1b1-0f5c-4cde-98e0-ba5eb00db955",
        "OrdinaryDiffEqImplicitTableaus": "75f66a49-58fc-43e3-9173-2340726368f7",
    }


#: Facts from the General registry and the packages' Project.toml files (sources in
#: docs/validation.md).  REQUIRES: (package, its versions, dependency, the dependency's versions
#: they need).  EXISTS: versions that are registered and must stay admitted.  DEAD: versions the
#: bounds must exclude, with the reason.
REQUIRES = [
    ("OrdinaryDiffEqExplicitTableaus", "1, 2", "DiffEqBase", "7"),        # registry Compat.toml [1-2]
    ("OrdinaryDiffEqImplicitTableaus", "2", "DiffEqBase", "7"),           # Project.toml 2.0.3
    ("OrdinaryDiffEqExplicitRK", "2", "DiffEqBase", "7"),                 # registry Compat.toml [2]
    ("OrdinaryDiffEqExplicitRK", "1.9 - 1", "DiffEqBase", "6.194.0 - 6"),  # registry Compat.toml [1.9-1]
    ("DiffEqDevTools", "3", "DiffEqBase", "7"),                           # Project.toml 3.1.2
    ("DiffEqDevTools", "2.31 - 2", "DiffEqBase", "6.94.4 - 6"),           # registry Compat.toml [2.31-2]
    ("OrdinaryDiffEq", "6.80", "DiffEqBase", "6.147"),                    # Project.toml 6.80.1
]
EXISTS = {
    "DiffEqBase": ["7.0.0"],
    "DiffEqDevTools": ["3.1.2"],
    "OrdinaryDiffEq": ["7.0.0"],                   # "the only 7.x registered" (issue #3722, 2026-06)
    "OrdinaryDiffEqExplicitRK": ["2.0.0", "2.0.1"],
    "OrdinaryDiffEqExplicitTableaus": ["2.0.0", "2.0.1", "2.1.0", "2.2.0"],   # registry Versions.toml
    "OrdinaryDiffEqImplicitTableaus": ["2.0.0", "2.0.3"],
    "julia": ["1.10.0", "1.11.0"],
}
DEAD = {
    "DiffEqBase": [("6.194.0", "no tableau package version works with DiffEqBase 6")],
    "DiffEqDevTools": [("2.44.0", "DiffEqDevTools 2 needs DiffEqBase 6")],
    "OrdinaryDiffEq": [("6.80.0", "OrdinaryDiffEq 6 needs DiffEqBase 6"), ("6.100.0", "same")],
    "OrdinaryDiffEqExplicitRK": [("1.5.0", "ExplicitRK 1 needs DiffEqBase 6")],
    "OrdinaryDiffEqExplicitTableaus": [("1.0.0", "1.0.0 has construct* names and no DormandPrince")],
    "OrdinaryDiffEqImplicitTableaus": [("1.0.0", "1.0.0 has construct* names")],
    "julia": [("1.9.4", "the packages need Julia 1.10")],
}


def test_compat_bounds_match_registry_facts() -> None:
    compat = PROJECT["compat"]
    for name, versions in EXISTS.items():
        for v in versions:
            assert allows(compat[name], v), f"{name} {v} is required but {compat[name]!r} excludes it"
    for name, versions in DEAD.items():
        for v, why in versions:
            assert not allows(compat[name], v), f"{name} {v} must be excluded ({why}); bound {compat[name]!r}"
    # coherence: whatever the resolver picks inside our bounds satisfies every known requirement
    for pkg, pkg_versions, dep, needs in REQUIRES:
        if overlaps(compat[pkg], pkg_versions):
            ours = compat_ranges(compat[dep])
            want = compat_ranges(needs)
            assert all(any(wl <= lo and hi <= wh for wl, wh in want) for lo, hi in ours), \
                f"{pkg} {pkg_versions} needs {dep} {needs}; our bound {compat[dep]!r} is wider"
    # the v6 halves really are dead: within our bounds no requirement needs DiffEqBase 6
    live = [r for r in REQUIRES if overlaps(compat[r[0]], r[1])]
    assert live and all(not overlaps(r[3], "6") for r in live)


# -- the wheel carries a real file ----------------------------------------------------------------------

@pytest.mark.slow
def test_wheel_ships_the_julia_module_as_a_real_file(tmp_path: Path) -> None:
    """odernn_bridge/julia/ODERNNBridge.jl is a link in the repository; the built wheel must
    hold the file's content (measured: ~5 s to build)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for item in ("pyproject.toml", "README.md", "src"):
        (shutil.copytree if (ROOT / item).is_dir() else shutil.copy2)(ROOT / item, tree / item)
    shutil.copytree(ROOT / "odernn_bridge", tree / "odernn_bridge", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    assert (tree / "odernn_bridge" / "julia" / "ODERNNBridge.jl").is_symlink()
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "--no-build-isolation",
                          "-q", "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        info = z.getinfo("odernn_bridge/julia/ODERNNBridge.jl")
        assert (info.external_attr >> 16) & 0o170000 == 0o100000     # a regular file, not a link
        assert z.read(info) == SRC.read_bytes()
        assert json.loads(z.read("odernn_bridge/juliapkg.json")) == JULIAPKG
