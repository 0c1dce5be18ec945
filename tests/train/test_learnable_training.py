"""Training learnable tableaux: order kept after training, tableau history, exact resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import odernn_bridge as ob
from odernn_bridge.cells.learnable import learnable_cells
from odernn_bridge.cli import main
from odernn_bridge.io import open_dataset
from odernn_bridge.train import TrainConfig, Trainer, get_task

SMALL_ADDING = {"seq_len": 10, "n_train": 48, "n_val": 16, "n_test": 16}


@pytest.fixture(autouse=True)
def _one_thread():
    """Small recurrent steps: one intra-op thread is ~10x faster than two on a loaded 2-core
    machine (OpenMP waits), and the results do not depend on it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def learnable_config(**kw) -> TrainConfig:
    base = dict(task="adding", task_options=SMALL_ADDING, model="odernn", method="learnable", dt=0.5,
                field="antisymmetric", hidden=8, epochs=2, batch_size=16, lr=1e-2, scheduler="none",
                progress=False, monitor_every=0, learnable_stages=4, learnable_order=3)
    base.update(kw)
    return TrainConfig(**base)


def digits_subset(n_train: int = 256, n_eval: int = 128):
    """Sequential digits (64 steps) with the first ``n_train``/``n_eval`` samples of each split:
    the same task, small enough for a test."""
    from torch.utils.data import TensorDataset

    task = get_task("digits")
    cut = lambda ds, n: TensorDataset(*(t[:n] for t in ds.tensors))  # noqa: E731
    task.train, task.val, task.test = cut(task.train, n_train), cut(task.val, n_eval), cut(task.test, n_eval)
    return task


def test_digits_training_keeps_the_order_and_records_the_tableau() -> None:
    """Two epochs on sequential digits (s = 4, p = 3 from RK4): the tableau moves, the order
    conditions hold after every step, and the final tableau verifies at order 3."""
    cfg = TrainConfig(task="digits", method="learnable", learnable_stages=4, learnable_order=3, dt=0.5,
                      hidden=16, epochs=2, batch_size=32, lr=1e-2, progress=False, monitor_every=0)
    res = Trainer(cfg, task=digits_subset()).fit()
    cell = learnable_cells(res.model)[0]
    tab = cell.tableau()
    assert ob.verify_order(tab, tol=1e-12) >= 3 and res.summary["tableau_verified_order"] >= 3
    h = res.history
    assert float(h.tableau_residual.max()) < 1e-12  # after every projection
    assert float(h.tableau_residual_before.max()) > 1e-8  # the optimiser did leave the manifold
    assert h.tableau_A.dims == ("epoch", "stage_i", "stage_j") and h.tableau_b.dims == ("epoch", "stage")
    np.testing.assert_array_equal(h.tableau_A.sel(epoch=2).values, tab.A)
    initial = json.loads(h.attrs["tableau_initial"])
    assert initial["tableau_A"] == ob.get_method("RK4").A.tolist()
    assert np.abs(tab.A - ob.get_method("RK4").A).max() > 1e-4  # it learned something
    assert res.summary["tableau_projection_failures"] == 0


def test_dynamics_training_keeps_order_4() -> None:
    cfg = TrainConfig(task="dynamics", task_options={"system": "vanderpol", "n_points": 20, "n_train": 32,
                                                     "n_val": 8, "n_test": 8},
                      method="learnable", learnable_stages=4, learnable_order=4, dt=0.5, hidden=8, epochs=2,
                      batch_size=8, lr=1e-2, progress=False, monitor_every=0)
    res = Trainer(cfg).fit()
    tab = learnable_cells(res.model)[0].tableau()
    assert ob.verify_order(tab, tol=1e-12) == 4
    assert np.abs(tab.b - ob.get_method("RK4").b).max() > 1e-5
    # s = p = 4: every order-4 tableau has RK4's stability polynomial, so its intervals
    assert res.history.tableau_real_stability_interval.values == pytest.approx(2.785293563, abs=1e-8)


def test_resume_with_a_learnable_tableau_is_exact(tmp_path: Path) -> None:
    kw = dict(learnable_stability=3.0, learnable_options={"stability_weight": 5.0})
    full = Trainer(learnable_config(**kw), tmp_path / "full").fit()
    part = Trainer(learnable_config(**kw, max_steps=4), tmp_path / "part").fit()  # mid epoch 2
    assert part.stopped == "max_steps"
    resumed = Trainer(learnable_config(**kw), tmp_path / "part").fit(resume=True)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and any("theta" in k for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.history.tableau_A.values.tolist() == full.history.tableau_A.values.tolist()
    assert resumed.history.attrs["tableau_initial"] == full.history.attrs["tableau_initial"]
    # checkpoints hold plain tensors/containers only
    torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)
    assert np.isfinite(full.history.tableau_penalty.values).all()


def test_cli_trains_a_learnable_tableau(tmp_path: Path, capsys) -> None:
    args = ["train", "--task", "adding", "--task-option", "seq_len=8", "--task-option", "n_train=32",
            "--task-option", "n_val=16", "--task-option", "n_test=16", "--hidden", "8", "--batch-size", "16",
            "--epochs", "2", "--no-progress", "--monitor-every", "0", "--method", "learnable",
            "--learnable-stages", "5", "--learnable-order", "4", "--learnable-init", "RK4",
            "--learnable-stability", "3.0", "--learnable-option", "stability_weight=2", "--out", str(tmp_path)]
    assert main(args) == 0
    assert "learned tableau: verified order 4" in capsys.readouterr().out
    ds = open_dataset(tmp_path / "history.nc")
    assert ds.tableau_A.shape == (2, 5, 5) and ds.tableau_c.dims == ("epoch", "stage")
    assert float(ds.tableau_order_residual.max()) < 1e-12
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["learnable_options"] == {"stability_weight": 2} and cfg["learnable_stages"] == 5


@pytest.mark.parametrize("kw,match", [
    ({"learnable_order": 5}, "learnable_stages, learnable_order: order: an explicit method with 4 stage"),
    ({"learnable_stages": 0}, "learnable_stages: expected a positive integer"),
    ({"learnable_options": {"speed": 1}}, "learnable_options: unknown keys"),
])
def test_bad_learnable_config_is_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        learnable_config(**kw)
