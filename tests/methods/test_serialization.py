"""JSON/TOML round trips and malformed files."""

from __future__ import annotations

import json

import pytest

import odernn_bridge as ob


@pytest.mark.parametrize("ext", [".json", ".toml"])
def test_round_trip_exact(tmp_path, ext):
    m = ob.get_method("RK4")
    p = ob.save_method(m, tmp_path / f"rk4{ext}")
    back = ob.load_method(p)
    assert back == m
    assert back.exact.b == m.exact.b
    assert back.order == 4


def test_round_trip_algebraic_and_multistep(tmp_path):
    g = ob.ButcherTableau([["1/4", "1/4 - sqrt(3)/6"], ["1/4 + sqrt(3)/6", "1/4"]], ["1/2", "1/2"],
                          name="G2", order=4)
    back = ob.load_method(ob.save_method(g, tmp_path / "g.toml"))
    assert back.coefficient_kind == "algebraic"
    assert abs(back.A - g.A).max() == 0.0
    lmm = ob.LinearMultistep([0, -1, 1], ["-1/2", "3/2", 0], name="AB2x", order=2)
    assert ob.load_method(ob.save_method(lmm, tmp_path / "ab2.json")) == lmm


def test_user_method_from_json_text():
    text = json.dumps({"name": "Ralston", "A": [[], ["2/3"]], "b": ["1/4", "3/4"], "order": 2})
    m = ob.loads_method(text)
    assert m.order == 2 and m.c[1] == pytest.approx(2 / 3, abs=0)


@pytest.mark.parametrize(
    "text, fmt, match",
    [
        ("{not json", "json", "malformed JSON"),
        ("A = [[0], [", "toml", "malformed TOML"),
        ('{"b": [1]}', "json", "missing required key 'A'"),
        ('{"A": [[0]], "b": ["one"]}', "json", r"b\[0\]"),
        ('{"A": [[0]], "b": [1], "colour": 1}', "json", "unknown keys"),
        ('{"A": [[0]], "b": [1], "order": "1"}', "json", "order"),
        ('{"A": "0", "b": [1]}', "json", "A"),
        ('{"type": "rosenbrock", "A": [[0]], "b": [1]}', "json", "type"),
    ],
)
def test_malformed_method_files(text, fmt, match):
    with pytest.raises(ob.MethodFormatError, match=match):
        ob.loads_method(text, fmt)


def test_bad_extension_and_missing_file(tmp_path):
    with pytest.raises(ob.MethodFormatError, match="format"):
        ob.save_method(ob.get_method("RK4"), tmp_path / "rk4.yaml")
    with pytest.raises(FileNotFoundError):
        ob.load_method(tmp_path / "nope.json")


def test_claimed_order_refuted_in_file():
    text = json.dumps({"name": "Bad", "A": [[], [1]], "b": ["1/2", "1/2"], "order": 3})
    with pytest.raises(ob.OrderConditionError):
        ob.loads_method(text)
