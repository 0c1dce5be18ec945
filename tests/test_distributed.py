"""Sweeps on dask.distributed: same numbers as serial, lost workers, failed cells, resume.

One LocalCluster (2 worker processes, 1 thread each) is shared by the whole module; starting
one costs ~2-4 s.  The cell functions are module-level so that workers import them by name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from odernn_bridge import io
from odernn_bridge.cli import main
from odernn_bridge.distributed import ENV_SCHEDULER, open_client, partial_path, run_grid
from odernn_bridge.errors import SweepResumeError
from odernn_bridge.stability import stability_table
from odernn_bridge.validate import validate_sweep

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with open_client(workers=2) as client:
        yield client


@pytest.fixture
def address(cluster):
    return cluster.scheduler.address


# -- cell functions (module level: pickled by reference) ----------------------------------------------

def _square(x: int, *, log_dir: str | None = None, interrupt_at: int | None = None) -> dict:
    if log_dir is not None:  # one file per call: which cells were computed, by which process
        Path(log_dir, f"{x}-{os.getpid()}-{len(os.listdir(log_dir))}").touch()
    if interrupt_at is not None and x == interrupt_at:
        raise KeyboardInterrupt  # as Ctrl-C in the middle of a serial sweep
    if x == 3:
        raise ValueError("three is not allowed")
    return {"y": x * x, "root": float(np.sqrt(x)), "digits": ("digit", np.array([float(c) for c in str(x * 11)]))}


def _die_once(x: int, *, marker_dir: str) -> dict:
    """Kills its worker process (os._exit, as a segfault or the OOM killer would) the first time
    it runs cell 2; dask reschedules the task on a live worker."""
    marker = Path(marker_dir) / "died"
    if x == 2 and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(1)
    return {"y": 10 * x, "pid": os.getpid()}


# -- (b) identical numbers -------------------------------------------------------------------------

def test_validate_sweep_serial_and_distributed_identical(address):
    kw = dict(methods=["Euler", "Heun", "RK4", "Tsit5"], problem=["linear", "kepler"],
              precision="float64", backend="scipy", progress=False, n_dts=4)
    serial = validate_sweep(**kw)
    dist = validate_sweep(**kw, scheduler=address)
    assert "dask.distributed" in dist.attrs["execution"] and "serial" in serial.attrs["execution"]
    # bit for bit: the same float64 code runs in another process
    xr.testing.assert_identical(serial.drop_attrs(), dist.drop_attrs())
    assert dict(serial.final_error.sizes) == {"method": 4, "problem": 2, "level": 4}
    assert (serial.status.values == "ok").all()
    # the numbers are the real validation: nominal orders recovered within the verdict tolerance
    assert np.abs(serial.observed_order.sel({"method": "RK4"}).values - 4).max() < 0.3


def test_stability_table_serial_and_distributed_identical(address):
    names = ["Euler", "RK4", "DP5", "ImplicitEuler", "SDIRK2", "AB3"]
    serial = stability_table(names, region=((-3, 1), (-2, 2), 21))
    dist = stability_table(names, region=((-3, 1), (-2, 2), 21), scheduler=address)
    xr.testing.assert_identical(serial.drop_attrs(), dist.drop_attrs())
    assert serial.real_interval.sel({"method": "Euler"}).item() == 2.0  # exact: [-2, 0]
    assert serial.L_stable.sel({"method": "ImplicitEuler"}).item() == 1
    assert serial.amplification.sel({"method": "Euler", "real": -1.0, "imag": 0.0}).item() == 0.0  # R(-1) = 0


# -- (c) a worker killed mid-sweep, failed cells ---------------------------------------------------

def test_killed_worker_mid_sweep_gives_complete_dataset(address, tmp_path):
    ds = run_grid(_die_once, {"x": list(range(6))}, fixed={"marker_dir": str(tmp_path)}, scheduler=address,
                  progress=False)
    dead_pid = int((tmp_path / "died").read_text())
    assert (ds.status.values == "ok").all(), ds.error.values
    assert ds.y.values.tolist() == [0, 10, 20, 30, 40, 50]
    assert ds.pid.sel(x=2).item() != dead_pid  # cell 2 was rerun on another (restarted) worker
    assert ds.attrs["cells_failed"] == 0


def _square_2d(x: int, y: int) -> dict:
    return {"v": _square(x)["y"] + y}


def _die_once_2d(x: int, y: int, *, marker_dir: str) -> dict:
    return {"v": _die_once(x, marker_dir=marker_dir)["y"] + y, "pid": os.getpid()}


def test_batched_tasks_survive_a_killed_worker_and_keep_cell_errors(address, tmp_path):
    """batch_dims=("x",): one task per x runs its 3 cells; the task whose worker dies is rerun
    elsewhere, and a cell that raises inside a batch fails alone."""
    ds = run_grid(_die_once_2d, {"x": list(range(5)), "y": [0, 1, 2]}, fixed={"marker_dir": str(tmp_path)},
                  scheduler=address, progress=False, batch_dims=("x",), cost=lambda cell: cell["x"])
    dead_pid = int((tmp_path / "died").read_text())
    assert (ds.status.values == "ok").all(), ds.error.values
    assert ds.v.values.tolist() == [[10 * x + y for y in range(3)] for x in range(5)]
    assert dead_pid not in ds.pid.sel(x=2).values.tolist()
    # every cell of one batch ran in one process
    assert all(len(set(ds.pid.sel(x=x).values.tolist())) == 1 for x in range(5))
    # one batch per y holds x = 1..4, among them the failing x = 3
    squares = run_grid(_square_2d, {"x": [1, 2, 3, 4], "y": [0, 1]}, scheduler=address, progress=False,
                       batch_dims=("y",))
    assert squares.status.values.tolist() == [["ok", "ok"], ["ok", "ok"], ["failed", "failed"], ["ok", "ok"]]
    assert squares.error.sel(x=3, y=1).item() == "ValueError: three is not allowed"
    assert squares.v.sel(x=4, y=1).item() == 17.0
    with pytest.raises(ValueError, match="batch_dims"):
        run_grid(_square, {"x": [1]}, batch_dims=("z",), progress=False)


def test_failed_cells_are_recorded_and_others_kept(address):
    ds = run_grid(_square, {"x": [1, 2, 3, 4]}, scheduler=address, progress=False)
    assert ds.status.values.tolist() == ["ok", "ok", "failed", "ok"]
    assert ds.error.sel(x=3).item() == "ValueError: three is not allowed"
    assert np.isnan(ds.y.sel(x=3).item()) and ds.y.sel(x=4).item() == 16.0  # int -> float with NaN holes
    # array results padded along their own dim: 11 -> "11", 44 -> "44"; failed cell all NaN
    assert ds.digits.sel(x=4).values.tolist() == [4.0, 4.0]
    assert np.isnan(ds.digits.sel(x=3).values).all()
    assert ds.attrs["cells_failed"] == 1 and ds.attrs["cells_ok"] == 3


def test_validate_sweep_records_a_failing_method(tmp_path):
    # Feagin14 on the linear problem in float64 finds no step size in the asymptotic range
    # (round-off at once): validate raises; the sweep keeps the other method
    out = tmp_path / "v.nc"
    ds = validate_sweep(["RK4", "Feagin14"], "linear", backend="scipy", precision="float64", progress=False,
                        out=out)
    assert ds.status.values.tolist() == ["ok", "failed"]
    assert ds.verdict.values.tolist() == ["pass", "error"]
    assert "no step size in the asymptotic range" in ds.error.sel({"method": "Feagin14"}).item()
    back = io.open_dataset(out)
    assert back.status.values.tolist() == ["ok", "failed"] and back.attrs["passed"] == 1
    assert not partial_path(out).exists()
    only = validate_sweep(["Feagin14"], "linear", backend="scipy", precision="float64", progress=False)
    assert only.verdict.values.tolist() == ["error"] and np.isnan(only.observed_order.values).all()


# -- (d) resume -------------------------------------------------------------------------------------

def test_interrupted_sweep_resumes_without_recomputing(address, tmp_path):
    out = tmp_path / "sq.nc"
    log = tmp_path / "log"
    log.mkdir()
    dims = {"x": [0, 1, 2, 3, 4, 5, 6]}
    with pytest.raises(KeyboardInterrupt):
        run_grid(_square, dims, fixed={"log_dir": str(log), "interrupt_at": 4}, signature="v1", out=out,
                 progress=False)
    first = sorted(int(f.name.split("-")[0]) for f in log.iterdir())
    assert first == [0, 1, 2, 3, 4]  # serial, in order, stopped at 4
    assert not out.exists() and len(list((partial_path(out) / "cells").glob("*.npz"))) == 3  # 0, 1, 2 (3 failed)
    # the rerun (on the cluster this time) computes the failed cell and the unfinished ones only
    for f in log.iterdir():
        f.unlink()
    ds = run_grid(_square, dims, fixed={"log_dir": str(log)}, signature="v1", out=out, scheduler=address,
                  progress=False)
    second = sorted(int(f.name.split("-")[0]) for f in log.iterdir())
    assert second == [3, 4, 5, 6]
    assert ds.attrs["cells_resumed"] == 3
    assert ds.y.values[[0, 1, 2, 4, 5, 6]].tolist() == [0, 1, 4, 16, 25, 36]
    assert not partial_path(out).exists()
    xr.testing.assert_identical(io.open_dataset(out).drop_attrs(), ds.drop_attrs())


def test_resume_refuses_other_settings(tmp_path):
    out = tmp_path / "sq.nc"
    with pytest.raises(KeyboardInterrupt):
        run_grid(_square, {"x": [1, 2]}, fixed={"interrupt_at": 2}, signature="v1", out=out, progress=False)
    with pytest.raises(SweepResumeError, match="other settings"):
        run_grid(_square, {"x": [1, 2]}, signature="v2", out=out, progress=False)
    ds = run_grid(_square, {"x": [1, 2]}, signature="v2", out=out, progress=False, resume=False)
    assert ds.attrs["cells_resumed"] == 0 and ds.y.values.tolist() == [1, 4]


# -- where cells run ---------------------------------------------------------------------------------

def test_scheduler_from_environment(address, monkeypatch):
    monkeypatch.setenv(ENV_SCHEDULER, address)
    ds = run_grid(_square, {"x": [1, 2]}, progress=False)
    assert address in ds.attrs["execution"]
    assert "serial" in run_grid(_square, {"x": [1]}, workers=0, progress=False).attrs["execution"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="workers"):
        run_grid(_square, {"x": [1]}, workers=-1)
    with pytest.raises(ValueError, match="twice"):
        run_grid(_square, {"x": [1, 1]})
    with pytest.raises(TypeError, match="scheduler"):
        with open_client(scheduler=3.5):
            pass


# -- training sweep and the CLI ----------------------------------------------------------------------

_TINY = dict(task="adding", task_options={"seq_len": 8, "n_train": 64, "n_val": 32, "n_test": 32}, hidden=8,
             epochs=2, batch_size=32, monitor_every=0)


def test_train_sweep_distributed_matches_trainer(address, tmp_path):
    from odernn_bridge.train import TrainConfig, Trainer, train_sweep

    # one cell: a worker importing torch costs seconds; the grid logic is the same as above
    ds = train_sweep(["RK4"], dts=[0.5], seeds=[1], config=_TINY, scheduler=address,
                     runs_dir=tmp_path / "runs", out=tmp_path / "t.nc", progress=False)
    assert dict(ds.final_test_loss.sizes) == {"method": 1, "dt": 1, "hidden": 1, "seed": 1}
    assert (ds.status.values == "ok").all() and ds.sizes["epoch"] == 2
    assert (tmp_path / "runs" / "RK4_dt0.5_h8_s1" / "history.nc").is_file()
    ref = Trainer(TrainConfig(**_TINY, method="RK4", dt=0.5, seed=1, progress=False)).fit()
    # a worker runs torch with one thread, this process may use more: summation order can differ
    # in the last bits, hence a relative tolerance far below any training effect (1e-4)
    got = ds.final_test_loss.sel({"method": "RK4", "dt": 0.5, "hidden": 8, "seed": 1}).item()
    assert got == pytest.approx(ref.summary["final_test_loss"], rel=1e-4)
    assert ds.val_loss.sel({"method": "RK4", "dt": 0.5, "hidden": 8, "seed": 1}).values.tolist() == pytest.approx(
        ref.history.val_loss.values.tolist(), rel=1e-4)


def test_cli_validate_sweep_on_cluster(address, tmp_path, capsys):
    out = tmp_path / "v.nc"
    rc = main(["validate", "-m", "Euler", "-m", "RK4", "-p", "linear", "kepler", "--precision", "float64",
               "--backend", "scipy", "--scheduler", address, "--out", str(out), "-q"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "4/4 passed on linear, kepler" in text and "dask.distributed" in text
    assert io.open_dataset(out).verdict.dims == ("method", "problem")


def test_cli_stability_and_sweep_train(tmp_path, capsys):
    out = tmp_path / "st.nc"
    assert main(["stability", "Euler", "RK4", "--workers", "0", "--out", str(out), "--resolution", "11"]) == 0
    ds = io.open_dataset(out)
    assert ds.real_interval.sel({"method": "Euler"}).item() == 2.0 and ds.amplification.shape == (2, 11, 11)
    assert main(["stability"]) == 2  # neither names nor --all
    capsys.readouterr()
    opts = [f"--task-option={k}={json.dumps(v)}" for k, v in _TINY["task_options"].items()]
    rc = main(["sweep", "train", "--methods", "Euler", "--dts", "0.5", "1", "--seeds", "0", "--hidden", "8",
               "--task", "adding", *opts, "--epochs", "1", "--monitor-every", "0", "--workers", "0",
               "--out", str(tmp_path / "t.nc"), "-q"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "2/2 runs completed" in text
    assert io.open_dataset(tmp_path / "t.nc").final_test_loss.dims == ("method", "dt", "hidden", "seed")


def test_analysis_layers_import_without_dask_or_torch():
    import subprocess
    import sys

    code = ("import sys, odernn_bridge.stability, odernn_bridge.distributed, odernn_bridge.validate; "
            "bad = [m for m in ('dask', 'distributed', 'torch') if m in sys.modules]; "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


# -- shared per-group work (reference solutions) ---------------------------------------------------

def _offset(group: str, *, log_dir: str, scale: int) -> int:
    """Shared work of a group: logged (one file per call) so the test can count the calls."""
    Path(log_dir, f"shared-{group}-{os.getpid()}-{len(os.listdir(log_dir))}").touch()
    if group == "bad":
        raise RuntimeError("no reference for bad")
    return {"a": 100, "b": 200}[group] * scale


def _plus_shared(x: int, group: str, *, log_dir: str, scale: int, shared: int) -> dict:
    return {"y": x + shared, "pid": os.getpid()}


@pytest.mark.parametrize("where", ["serial", "distributed"])
def test_shared_work_runs_once_per_group_and_failures_are_recorded(where, address, tmp_path):
    kw = dict(fixed={"log_dir": str(tmp_path), "scale": 2}, shared=_offset, shared_dims=["group"],
              progress=False, scheduler=address if where == "distributed" else None)
    ds = run_grid(_plus_shared, {"x": [1, 2, 3, 4, 5], "group": ["a", "b", "bad"]}, **kw)
    calls = sorted(f.split("-")[1] for f in os.listdir(tmp_path))
    assert calls == ["a", "b", "bad"]  # once per group, not once per cell or per worker
    assert ds.y.sel(group="a").values.tolist() == [201.0, 202.0, 203.0, 204.0, 205.0]
    assert ds.y.sel(group="b", x=5).item() == 405.0
    # the group whose shared work raised: every cell failed with that error, the others kept
    assert (ds.status.sel(group="bad").values == "failed").all()
    assert set(ds.error.sel(group="bad").values.tolist()) == {"RuntimeError: no reference for bad"}
    assert ds.attrs["cells_failed"] == 5 and ds.attrs["cells_ok"] == 10


def test_shared_arguments_are_checked():
    with pytest.raises(ValueError, match="shared_dims"):
        run_grid(_plus_shared, {"x": [1]}, shared=_offset, shared_dims=["group"], progress=False)
    with pytest.raises(ValueError, match="shared_dims"):
        run_grid(_plus_shared, {"x": [1]}, shared_dims=["x"], progress=False)


def test_validate_sweep_reference_matches_a_fresh_validate():
    # the sweep's shared reference (finest grid, sliced) gives exactly the numbers of a fresh,
    # standalone validate() of the same cell: the precomputed grid changes who computes, not what
    from odernn_bridge.validate import core, validate

    kw = dict(backend="scipy", precision="float64", n_dts=4)
    sweep = validate_sweep(["Heun", "RK4"], ["vanderpol", "lorenz"], progress=False, **kw)
    for method, problem in [("Heun", "vanderpol"), ("RK4", "lorenz")]:
        core._SHARED_REFERENCES.clear()
        core._SHARED_FINALS.clear()
        one = validate(method, problem, **kw)
        cell = sweep.sel({"method": method, "problem": problem})
        n = one.sizes["dt"]
        np.testing.assert_array_equal(cell.final_error.values[:n], one.final_error.values)
        assert float(cell.observed_order) == float(one.observed_order)
