"""Clear errors instead of overflow or garbage for hostile sizes: step sizes far outside any sane
range (dt = 1e300, subnormal dt) at every entry point that takes one, and subnormal or huge
eigenvalues in ``max_stable_dt``."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import odernn_bridge as ob
from odernn_bridge._checks import MAX_STEP_SIZE, MIN_STEP_SIZE, check_step_size
from odernn_bridge.cells import AdaptiveRKCell, ElmanField, RKCell
from odernn_bridge.reference.scipy_backend import ScipyBackend
from odernn_bridge.stability import ray_exit
from odernn_bridge.theory import StabilityMonitor
from odernn_bridge.validate import field_problem


@pytest.mark.parametrize("bad", [1e300, 1e16, 5e-324, 1e-310, math.inf, math.nan, -1.0, 0.0])
def test_step_size_range_everywhere(bad: float) -> None:
    field = ElmanField(2, 3)
    makers = [
        ("dt", lambda: RKCell(field, "RK4", dt=bad)),
        ("dt", lambda: ob.ODERNN(2, 3, dt=bad)),
        ("dt", lambda: ob.ODERNN(2, 3, dt=bad, adaptive=True, method="DP5")),
        ("first_step", lambda: AdaptiveRKCell(field, "DP5", first_step=bad)),
        ("max_step", lambda: AdaptiveRKCell(field, "DP5", max_step=bad) if not math.isinf(bad) else None),
        ("dts[1]", lambda: ob.validate("RK4", "linear", dts=[0.1, bad], backend="scipy")),
        ("dt", lambda: ScipyBackend().solve("linear", "RK4", dt=bad)),
        ("dt", lambda: StabilityMonitor("RK4", dt=bad)),
        ("input_dt", lambda: field_problem(field, input_dt=bad, steps=2)),
    ]
    for name, make in makers:
        try:
            out = make()
        except (ValueError, TypeError) as exc:
            assert name.split("[")[0] in str(exc), (name, str(exc))
        else:
            assert out is None, f"{name}={bad!r} was accepted"


def test_step_size_bounds_are_documented_values() -> None:
    assert MIN_STEP_SIZE == np.finfo(np.float64).tiny and MAX_STEP_SIZE == 1e15
    assert check_step_size(MAX_STEP_SIZE) == 1e15 and check_step_size(np.float32(0.5)) == 0.5
    with pytest.raises(TypeError, match="dt"):
        check_step_size(True)


@pytest.mark.parametrize("lam", [[-5e-324], [-1e-310 + 1e-310j], [1e-320j], [-3e-323 + 5e-324j]])
def test_subnormal_eigenvalues_give_a_clear_error(lam: list) -> None:
    # the stable step r*/|λ| exceeds the float64 range: an error naming the argument, no overflow warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="eigenvalues: .*exceeds the float64 range"):
            ob.max_stable_dt("RK4", lam)


def test_subnormal_eigenvalues_next_to_normal_ones_and_huge_ones() -> None:
    rk4 = ob.real_stability_interval("RK4")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a subnormal λ binds nothing next to λ = -1; a positive subnormal one leaves at once
        assert ob.max_stable_dt("RK4", [-1.0, -5e-324]) == rk4
        assert ob.max_stable_dt("RK4", [-1.0, 5e-324]) == 0.0
        # |λ| = 1e308·√2 would overflow np.abs: exact power-of-two scaling
        assert ob.max_stable_dt("RK4", [-1e308 + 1e308j]) == pytest.approx(
            ray_exit("RK4", -1 + 1j) / (math.sqrt(2) * 1e308), rel=1e-12)
        assert ob.max_stable_dt("RK4", [-1e-300]) == pytest.approx(rk4 * 1e300, rel=1e-15)
