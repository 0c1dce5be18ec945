"""A verdict never says "fail" where the evidence is only "not yet asymptotic".

RKF5 on Van der Pol in float64 shows pairwise orders 4.62 -> 4.70 down to the round-off floor
(its asymptotic range starts lower); the verdict used to be "fail: order too low" (observed 4.66).
"""

from __future__ import annotations

import pytest

import odernn_bridge as ob
from odernn_bridge.validate import verdict, verdict_reason


def test_rkf5_validates_as_pass() -> None:
    ds = ob.validate("RKF5", backend="scipy")
    assert ds.attrs["verdict"] == "pass", (ds.attrs["verdict_reason"], ds.pairwise_order.values)
    assert abs(float(ds.observed_order) - 5) <= 0.3
    # float64 was inconclusive (not a failure), and says why; the mpmath repetition settled the order
    assert "rise towards the nominal order 5" in ds.attrs["precision_fallback"]


@pytest.mark.parametrize("pairwise, expected", [
    ([4.62, 4.70], "inconclusive"),          # RKF5: rising towards 5
    ([6.48, 6.86], "inconclusive"),          # RadauIA7 (nominal 7) in float64
    ([6.01, 6.16], "inconclusive"),          # BS5 (nominal 5): last pairs 0.15 apart, not settled
    ([6.43, 6.44, 6.50], "inconclusive"),    # PapakostasPapaGeorgiou52: 6.46 is no integer order
    ([3.01, 2.99, 3.00], "fail: order too low"),   # a settled integer order 3 for a claimed 4
    ([5.02, 4.99], "fail: order too high"),  # settled at 5 for a claimed 4
])
def test_failing_needs_asymptotic_evidence(pairwise: list[float], expected: str) -> None:
    nominal = {4.62: 5, 6.48: 7, 6.01: 5, 6.43: 5, 3.01: 4, 5.02: 4}[pairwise[0]]
    observed = sum(pairwise) / len(pairwise)
    spread = max(pairwise) - min(pairwise)
    v, reason = verdict_reason(observed, nominal, pairwise=pairwise, spread=spread)
    assert v == expected, reason
    assert verdict(observed, nominal, pairwise=pairwise, spread=spread) == v


def test_wrong_order_claim_still_fails_with_asymptotic_evidence() -> None:
    heun = ob.get_method("Heun")
    liar = ob.ButcherTableau(heun.A, heun.b, heun.c, name="Heun-claims-3", order=2, verify=False)
    liar._claimed_order = 3  # a claim the order conditions would reject
    ds = ob.validate(liar, "vanderpol", dts=[0.1, 0.05, 0.025, 0.0125], backend="scipy")
    assert ds.attrs["verdict"] == "fail: order too low", ds.attrs["verdict_reason"]


@pytest.mark.parametrize("name", ["AB6", "BDF6"])
def test_automatic_window_fits_many_step_methods(name: str) -> None:
    # the coarsest automatic grid used to hold 4 steps, fewer than a 6-step method needs (ValueError)
    ds = ob.validate(name, backend="scipy")
    assert ds.attrs["verdict"] == "pass", ds.attrs["verdict_reason"]
