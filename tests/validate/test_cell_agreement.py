"""The torch RKCell and the independent NumPy integrator agree step by step (float64).

Both step the same Elman field (a float64 copy) with the same piecewise-constant inputs; the
NumPy side evaluates the field through ``field_problem`` (torch under no_grad, float64) but
combines the stages itself.  Agreement to 1e-12 over a few steps of size 0.1 is round-off level:
states are O(1) and each step adds O(stages) float64 operations.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import odernn_bridge as ob
from odernn_bridge.cells import RKCell, make_field
from odernn_bridge.reference import rk_step
from odernn_bridge.validate import field_problem

EXPLICIT = ob.list_methods("explicit")


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    field = make_field("elman", 3, 4).double()
    prob = field_problem(field, input_dt=0.1, steps=5, seed=1)
    return field, prob


@pytest.mark.parametrize("name", EXPLICIT)
def test_cell_matches_numpy_step_by_step(setup, name: str) -> None:
    field, prob = setup
    cell = RKCell(field, name, dt=0.1)
    m = ob.get_method(name)
    h_t = torch.from_numpy(prob.u0.copy())[None]
    h_n = prob.u0.copy()
    worst_step = worst_traj = 0.0
    with torch.no_grad():
        for n in range(prob.n_segments):
            x = torch.from_numpy(prob.inputs[n].copy())[None]
            p = prob.params_for(n)
            f = lambda t, u, p=p: prob.f(t, u, p)  # noqa: E731
            # one step from the same state
            one_t = cell(x, h_t)[0].numpy()
            one_n = rk_step(m, f, n * 0.1, h_t[0].numpy(), 0.1)
            worst_step = max(worst_step, float(np.max(np.abs(one_t - one_n))))
            # and the two trajectories side by side
            h_n = rk_step(m, f, n * 0.1, h_n, 0.1)
            h_t = torch.from_numpy(one_t.copy())[None]
            worst_traj = max(worst_traj, float(np.max(np.abs(h_t[0].numpy() - h_n))))
    assert worst_step < 1e-12 and worst_traj < 1e-12, (worst_step, worst_traj)


def test_float32_cell_is_checked_in_float64() -> None:
    """validate() copies a float32 cell to float64 before comparing it with the reference."""
    torch.manual_seed(3)
    cell = RKCell(make_field("leaky", 2, 3), "RK4", dt=0.2)  # float32 parameters
    ds = ob.validate(cell, "field", dts=[0.2, 0.1, 0.05, 0.025], backend="scipy", field_steps=4)
    assert ds.attrs["stepper"] == "torch RKCell"
    assert abs(float(ds.observed_order) - 4) < 0.3
    local = np.nanmax(ds.local_error.values, axis=1)
    assert np.all(np.diff(local) < 0) and local[-1] < 1e-9  # measured 2.6e-5 at dt=0.2 down to ~6e-11
