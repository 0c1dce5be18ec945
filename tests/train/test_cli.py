"""``odernn train`` / ``odernn report`` end to end (tiny settings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from odernn_bridge.cli import main
from odernn_bridge.io import open_dataset

TINY = ["--task", "adding", "--task-option", "seq_len=8", "--task-option", "n_train=64", "--task-option", "n_val=16",
        "--task-option", "n_test=16", "--hidden", "8", "--batch-size", "16", "--epochs", "2", "--no-progress",
        "--monitor-every", "0"]


def test_train_max_steps_then_resume_matches_uninterrupted(tmp_path: Path, capsys) -> None:
    common = [*TINY, "--model", "odernn", "--method", "RK4", "--dt", "0.5", "--field", "antisymmetric",
              "--field-option", "gamma=0.1", "--seed", "3"]
    assert main(["train", *common, "--out", str(tmp_path / "full")]) == 0
    assert main(["train", *common, "--max-steps", "5", "--out", str(tmp_path / "part")]) == 0
    assert "max_steps: 5 steps" in capsys.readouterr().out
    assert main(["train", "--resume", "--no-progress", "--out", str(tmp_path / "part")]) == 0
    full = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["final"]
    part = torch.load(tmp_path / "part" / "model.pt", weights_only=True)["final"]
    assert full.keys() == part.keys() and all(torch.equal(full[k], part[k]) for k in full)
    cfg = json.loads((tmp_path / "part" / "config.json").read_text())
    assert cfg["field_options"] == {"gamma": 0.1} and cfg["method"] == "RK4" and cfg["seed"] == 3


def test_report_writes_pngs_and_table(tmp_path: Path, capsys) -> None:
    assert main(["train", *TINY, "--model", "lstm", "--out", str(tmp_path / "lstm")]) == 0
    assert main(["train", *TINY, "--model", "gru", "--out", str(tmp_path / "gru")]) == 0
    out = tmp_path / "cmp"
    assert main(["report", str(tmp_path / "lstm"), str(tmp_path / "gru"), "--out", str(out)]) == 0
    for name in ("lstm_curves.png", "gru_curves.png", "comparison.png", "comparison.md", "comparison.nc"):
        f = out / name
        assert f.is_file() and f.stat().st_size > 1000 or name.endswith(".md"), name
    assert (out / "lstm_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "comparison.md").read_text()
    assert "| lstm |" in table and "| gru |" in table
    ds = open_dataset(out / "comparison.nc")
    assert list(ds.run.values) == ["lstm", "gru"] and ds.steps.values.tolist() == [8.0, 8.0]
    # without --out, the plots go into the run folder
    assert main(["report", str(tmp_path / "lstm")]) == 0
    assert (tmp_path / "lstm" / "curves.png").is_file()


def test_cli_errors_are_clear(tmp_path: Path, capsys) -> None:
    assert main(["train", "--task", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "task: expected one of" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "missing")]) == 2
    assert "no run to resume" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "not a training run" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--task-option", "novalue", "--out", str(tmp_path / "y")])
