"""Checkpoints, config.json and history.nc from elsewhere: nothing in them runs, every
problem is a one-line FileFormatError (CLI: exit 2, no traceback), sizes are checked
before data is read, and temporaries of killed writes are cleaned on resume
(issues 10.2 and 14.3/14.6)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
import tracemalloc
from pathlib import Path

import h5netcdf
import numpy as np
import pytest
import torch

from odernn_bridge.cli import main
from odernn_bridge.errors import FileFormatError
from odernn_bridge.io import open_dataset, read_json_object
from odernn_bridge.train import Trainer
from odernn_bridge.train.checkpoint import load_checkpoint
from odernn_bridge.train.trainer import CHECKPOINT_FORMAT, TrainConfig

TINY = ["--task", "adding", "--task-option", "seq_len=8", "--task-option", "n_train=64", "--task-option", "n_val=16",
        "--task-option", "n_test=16", "--hidden", "8", "--batch-size", "16", "--epochs", "2", "--no-progress",
        "--monitor-every", "0", "--model", "lstm"]


@pytest.fixture(scope="module")
def run_template(tmp_path_factory) -> Path:
    """A real (tiny, unfinished) training run to damage."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", *TINY, "--max-steps", "3", "--out", str(out)]) == 0
    return out


@pytest.fixture()
def run(run_template, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(run_template, dest)
    return dest


class _Evil:
    """Pickles to a call of os.system: what a hostile checkpoint would contain."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _cli_error(capsys, argv: list[str], match: str) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert match in err, err
    return err


def test_malicious_checkpoint_runs_nothing(run, tmp_path, capsys):
    marker = tmp_path / "owned"
    ck = run / "checkpoint.pt"
    # zip format (torch.save) and legacy raw pickle, both carrying a call of os.system
    for writer in (lambda p: torch.save({"format": CHECKPOINT_FORMAT, "x": _Evil(marker)}, p),
                   lambda p: p.write_bytes(pickle.dumps({"format": CHECKPOINT_FORMAT, "x": _Evil(marker)}))):
        writer(ck)
        with pytest.raises(FileFormatError, match="load safely"):
            load_checkpoint(ck)
        with pytest.raises(FileFormatError):
            Trainer(TrainConfig.from_dict(read_json_object(run / "config.json")), run).fit(resume=True)
        _cli_error(capsys, ["train", "--resume", "--no-progress", "--out", str(run)], "checkpoint:")
        assert not marker.exists()


def test_checkpoint_allow_list_is_torch_default():
    # the library adds nothing to torch's weights_only allow-list: checkpoints hold only
    # tensors, numbers, strings and containers (save/resume tests prove that suffices)
    import odernn_bridge.train  # noqa: F401  (importing must not register anything)

    extra = [g for g in torch.serialization.get_safe_globals()
             if not str(getattr(g, "__module__", "")).startswith("torch.")]
    assert extra == []


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "foreign", "not_a_dict", "missing_keys",
                                    "wrong_config"])
def test_damaged_checkpoint_is_a_clear_error(run, capsys, damage):
    ck = run / "checkpoint.pt"
    good = ck.read_bytes()
    state = torch.load(ck, weights_only=True)
    if damage == "truncated":
        ck.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        ck.write_bytes(np.random.default_rng(0).bytes(4096))
    elif damage == "empty":
        ck.write_bytes(b"")
    elif damage == "foreign":
        torch.save({"state_dict": {"w": torch.ones(2)}}, ck)  # someone else's checkpoint
    elif damage == "not_a_dict":
        torch.save([1, 2, 3], ck)
    elif damage == "missing_keys":
        torch.save({k: v for k, v in state.items() if k != "loop"}, ck)
    else:
        torch.save({**state, "config": [1, 2]}, ck)
    err = _cli_error(capsys, ["train", "--resume", "--no-progress", "--out", str(run)], "checkpoint:")
    assert str(ck) in err


def test_config_json_that_is_not_a_mapping(run, capsys):
    for text in ("[1, 2, 3]", "{not json", "\"run\""):
        (run / "config.json").write_text(text)
        _cli_error(capsys, ["train", "--resume", "--no-progress", "--out", str(run)], "config.json")
        _cli_error(capsys, ["report", str(run)], "config.json")
    (run / "config.json").write_bytes(b'{"task": "caf\xe9"}')
    _cli_error(capsys, ["train", "--resume", "--no-progress", "--out", str(run)], "not UTF-8")
    (run / "config.json").write_text(json.dumps({"task": ["adding"]}))
    _cli_error(capsys, ["train", "--resume", "--no-progress", "--out", str(run)], "task: expected a string")
    with pytest.raises(ValueError, match="mapping"):
        TrainConfig.from_dict([("task", "adding")])


def test_malicious_config_values_run_nothing(run, tmp_path, capsys):
    # config.json values are names and numbers, never evaluated; on resume the checkpoint's
    # configuration wins (a warning names what was ignored)
    marker = tmp_path / "owned"
    good = read_json_object(run / "config.json")
    payload = f"__import__('os').system('touch {marker}')"
    for change, rc in (({"method": payload, "model": "odernn"}, 0), ({"task": payload}, 2),
                       ({"task_options": {"__class__": payload}}, 2)):
        (run / "config.json").write_text(json.dumps({**good, **change}))
        assert main(["train", "--resume", "--no-progress", "--out", str(run)]) == rc
        out = capsys.readouterr()
        assert "Traceback" not in out.err and payload not in out.out
        assert ("ignoring changed ['model', 'method']" in out.err) == (rc == 0)
        assert not marker.exists()


def test_history_with_huge_dimension_is_refused_before_reading(run, capsys):
    # 8 KB on disk, 2e9-long dimension: ~22 GiB if read
    hist = run / "history.nc"
    hist.unlink()
    with h5netcdf.File(hist, "w") as f:
        f.dimensions = {"step": 2_000_000_000, "epoch": 1}
        f.create_variable("loss", ("step",), "f8", chunks=(1024,))
        f.create_variable("epoch_end_step", ("epoch",), "f8")[:] = [1.0]
    assert hist.stat().st_size < 64 * 1024
    from odernn_bridge.train.report import load_run

    err = _cli_error(capsys, ["report", str(run)], "GiB")
    assert "history.nc" in err
    # timed after the imports above (matplotlib, xarray, h5py: not work done for the file)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(FileFormatError, match="limit"):
            load_run(run)
    finally:
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < 1.0 and peak < 200 * 2**20, (elapsed, peak)


def test_truncated_or_foreign_history_is_a_clear_error(run, capsys):
    hist = run / "history.nc"
    good = hist.read_bytes()
    hist.write_bytes(good[: len(good) // 3])
    _cli_error(capsys, ["report", str(run)], "not a readable NetCDF4 file")
    hist.write_bytes(b"CDF\x01" + b"\x00" * 100)  # NetCDF3 magic, nothing behind it
    _cli_error(capsys, ["report", str(run)], "history.nc")
    import xarray as xr

    hist.unlink()
    xr.Dataset({"t": ("time", np.arange(3.0))}).to_netcdf(hist, engine="h5netcdf")
    _cli_error(capsys, ["report", str(run)], "not a training history")


def test_resume_cleans_temporaries_of_killed_writes(run, capsys):
    # what a writer killed mid-way leaves: mkstemp names (8 random characters) + suffix
    stale = [".history.nc.k2j4_9xq.nc", ".config.json.abcd1234.tmp", ".checkpoint.pt.zz0012ab.tmp",
             ".summary.json.q1w2e3r4.tmp"]
    for name in stale:
        (run / name).write_bytes(b"partial")
    keep = [".history.nc.keep", "notes.txt", ".config.json.backup-2024.tmp"]
    for name in keep:
        (run / name).write_text("mine")
    assert main(["train", "--resume", "--no-progress", "--out", str(run)]) == 0
    capsys.readouterr()
    assert not [n for n in stale if (run / n).exists()]
    assert all((run / n).read_text() == "mine" for n in keep)
    assert open_dataset(run / "history.nc").sizes["step"] > 3  # the resumed run went on
