"""Public catalogue API: names, aliases, errors, user registration, import hygiene."""

from __future__ import annotations

import subprocess
import sys

import pytest

import odernn_bridge as ob


def test_lookup_is_case_insensitive_and_accepts_aliases():
    assert ob.get_method("rk4") is ob.get_method("RK4")
    assert ob.get_method("ClassicRK4").name == "RK4"
    m = ob.get_method("RK4")
    assert ob.get_method(m) is m


def test_unknown_method_lists_closest_names():
    with pytest.raises(ob.UnknownMethodError) as info:
        ob.get_method("RK44")
    assert isinstance(info.value, LookupError)
    assert "RK4" in str(info.value)
    assert "RK4" in info.value.suggestions


def test_bad_arguments():
    with pytest.raises(TypeError, match="name"):
        ob.get_method(4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        ob.list_methods("stiff")


def test_list_methods_filters_by_kind():
    allm = ob.list_methods()
    assert set(ob.list_methods("explicit")) <= set(allm)
    for kind in ("explicit", "diagonally_implicit", "implicit", "multistep"):
        for name in ob.list_methods(kind):
            info = ob.method_info(name)
            assert info["kind"] == kind


def test_register_user_method():
    m = ob.ButcherTableau([[], ["2/3"]], ["1/4", "3/4"], name="MyRalstonTest", order=2)
    ob.register_method(m, aliases=["my-ralston-test"])
    assert ob.get_method("my-ralston-test") is m
    assert "MyRalstonTest" in ob.list_methods("explicit")
    with pytest.raises(ob.MethodFormatError, match="already"):
        ob.register_method(m)


def test_catalogue_kind_hints_match_structure():
    for name in ob.list_methods():
        m = ob.get_method(name)
        kind = "multistep" if isinstance(m, ob.LinearMultistep) else m.kind
        assert ob.method_info(name)["kind"] == kind, name


def test_import_does_not_load_torch_or_juliacall():
    code = ("import sys, odernn_bridge as ob; ob.list_methods(); ob.get_method('RK4'); "
            "print('torch' in sys.modules, 'juliacall' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
