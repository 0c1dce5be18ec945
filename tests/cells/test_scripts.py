"""The benchmark and GPU-check scripts run end to end (on the CPU, tiny sizes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture()
def scripts(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_cells
    import gpu_check

    return bench_cells, gpu_check


def test_bench_cells_tiny(scripts, tmp_path: Path) -> None:
    bench_cells, _ = scripts
    out = tmp_path / "b.json"
    rc = bench_cells.main(["--seq", "3", "--batch", "2", "--hidden", "8", "--input", "4", "--repeats", "1",
                           "--threads", "1", "2", "--no-compile", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert {"lstm@1", "lstm@2", "lstm_inf@1", "rk4_fused@1", "rk4_inf@2", "rk4_generic", "euler_fused",
            "rnn_tanh", "implicit_midpoint", "gl4", "radau_iia5"} <= set(data["median_s"])
    for label in ("RK4 fused / nn.LSTM  (training, 1 thread)", "RK4 fused / nn.LSTM  (inference, 2 threads)",
                  "ImplicitMidpoint / RK4 fused", "GL4 / RK4 fused", "RadauIIA5 / RK4 fused"):
        assert data["ratios"][label]["value"] > 0
    assert data["info"]["gl4_newton"]["fallbacks"] == 0
    if "torchdiffeq_rk4" in data["median_s"]:  # the 3/8-rule cell reproduces torchdiffeq's rk4
        assert data["info"]["max_abs_diff_vs_torchdiffeq_rk38"] < 1e-5
    if "torchode_rk4" in data["median_s"]:  # torchode with the classic tableau is the RK4 cell
        assert data["info"]["max_abs_diff_vs_torchode_rk4"] < 1e-5
        assert "torchode rk4 / RK4 fused" in data["ratios"]


def test_gpu_check_on_cpu(scripts, tmp_path: Path) -> None:
    _, gpu_check = scripts
    rc = gpu_check.main(["--out", str(tmp_path), "--device", "cpu", "--quick", "--skip-bench"])
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rc == 0 and data["all_correctness_ok"] is True
    assert data["explicit_vs_numpy"]["ok"] and data["fused_vs_generic"]["ok"]
    assert (tmp_path / "gpu_check.txt").read_text().count("PASS") >= 4


def test_gpu_check_reports_missing_cuda(scripts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, gpu_check = scripts
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path), "--device", "cuda"]) == 2
    assert "CUDA" in json.loads((tmp_path / "gpu_check.json").read_text())["error"]
