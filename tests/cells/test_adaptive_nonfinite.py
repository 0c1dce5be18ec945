"""AdaptiveRKCell never hides NaN and never returns an unfinished interval silently.

Before: a NaN error norm counted as a rejected step, the step-size proposal became NaN, and after
10 000 attempts the cell returned the *input* state, finite and wrong (ODERNN(adaptive=True) too).
"""

from __future__ import annotations

import math
import time
import warnings

import pytest
import torch

import odernn_bridge as ob
from odernn_bridge.cells import AdaptiveRKCell, CallableField, ElmanField

from ._tableaux import dp5

F64 = torch.float64


def test_nan_field_raises_at_once() -> None:
    field = CallableField(lambda h, x: h * float("nan"), 1, 2)
    cell = AdaptiveRKCell(field, dp5(), check_finite=False)  # the error check does not depend on it
    t = time.perf_counter()
    with pytest.raises(ob.NonFiniteError, match="error estimate"):
        cell(torch.zeros(3, 1, dtype=F64), torch.ones(3, 2, dtype=F64), timespans=1.0)
    assert time.perf_counter() - t < 1.0 and cell.max_steps == 10_000  # not 10 000 silent attempts


def test_nan_only_at_trial_stages_raises() -> None:
    # y' = -sqrt(y) is finite on the accepted states (y >= 0) but a large trial step from y = 1
    # overshoots below 0, where sqrt gives NaN
    field = CallableField(lambda h, x: -torch.sqrt(h), 1, 1)
    cell = AdaptiveRKCell(field, dp5(), first_step=4.0)
    with pytest.raises(ob.NonFiniteError, match="trial stage"):
        cell(torch.zeros(1, 1, dtype=F64), torch.ones(1, 1, dtype=F64), timespans=4.0)


@pytest.mark.parametrize("kwargs, name", [
    ({"controller": (math.nan, 0.0)}, "controller"),
    ({"controller": (0.2, math.inf)}, "controller"),
    ({"safety": math.nan}, "safety"),
    ({"max_factor": math.inf}, "max_factor"),
    ({"min_factor": math.nan}, "min_factor"),
])
def test_non_finite_controller_parameters_raise(kwargs: dict, name: str) -> None:
    with pytest.raises(ob.NonFiniteError, match=name):
        AdaptiveRKCell(ElmanField(2, 3), dp5(), **kwargs)


def test_odernn_adaptive_with_nan_weights_raises() -> None:
    torch.manual_seed(0)
    rnn = ob.ODERNN(2, 3, method="DP5", adaptive=True, dtype=F64)
    with torch.no_grad():
        next(p for p in rnn.parameters() if p.dim() == 2).view(-1)[0] = float("nan")
    with pytest.raises(ob.NonFiniteError):
        rnn(torch.randn(4, 2, 2, dtype=F64))


def test_exhausted_max_steps_warns_with_stats_by_default() -> None:
    torch.manual_seed(0)
    rnn = ob.ODERNN(2, 3, method="DP5", adaptive=True, dtype=F64, rtol=1e-12, atol=1e-14, max_steps=4)
    with pytest.warns(ob.MaxStepsWarning, match=r"4 of 4 input intervals .*max_steps: 4 step attempts"):
        out, _ = rnn(torch.randn(4, 2, 2, dtype=F64))
    cell = rnn.cells[0]
    assert cell.last_stats["max_steps_reached"] and cell.last_stats["max_steps_intervals"] == [0, 1, 2, 3]
    assert torch.isfinite(out).all()
    # opting out is explicit
    quiet = AdaptiveRKCell(ElmanField(2, 3, dtype=F64), dp5(), rtol=1e-12, atol=1e-14, max_steps=2,
                           on_max_steps="flag")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet(torch.randn(2, 2, dtype=F64), torch.randn(2, 3, dtype=F64), timespans=5.0)
    assert quiet.last_stats["max_steps_reached"] and bool(quiet.last_stats["unfinished"].all())
    assert bool((quiet.last_stats["remaining"] > 0).all())
