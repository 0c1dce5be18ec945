"""The fused kernel's native loop (cells/_native.py, native/rk_kernel.cpp) and its workspace.

The native loop must give the Python loop's numbers (same arithmetic, other summation order:
1e-12 in float64, 1e-5 in float32), forward and through the backward pass, for every tableau
shape, field, activation, substep count and input interpolation, whether the batch is split
between threads or not; a missing compiler must fall back with one warning (or raise when
required); the workspace pool must never hand out memory that an autograd graph still reads.
"""

from __future__ import annotations

import copy
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import odernn_bridge as ob
from odernn_bridge.cells import _native, fused
from odernn_bridge.cells.fields import make_field

HAS_CXX = shutil.which(os.environ.get("CXX", "c++")) is not None and sys.platform.startswith("linux")
needs_native = pytest.mark.skipif(not HAS_CXX, reason="no C++ compiler: the native kernel cannot be built here")
ROOT = Path(__file__).resolve().parents[2]


def _run(cell: ob.RKCell, x: torch.Tensor, h0: torch.Tensor, native: bool, monkeypatch: pytest.MonkeyPatch,
         grad: bool = True) -> tuple[torch.Tensor, list[torch.Tensor]]:
    with monkeypatch.context() as m:
        if not native:
            m.setattr(fused, "_native_op", lambda like: None)
        f = cell.field
        if not grad:
            with torch.no_grad():
                return cell.run_sequence(f.project_input(x), h0), []
        h = h0.clone().requires_grad_(True)
        out = cell.run_sequence(f.project_input(x), h)
        assert cell.last_stats.get("fused")
        loss = (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).pow(2).sum()
        params = [h] + [p for p in f.parameters()]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return out.detach(), [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, params)]


@needs_native
def test_native_kernel_builds_and_is_used() -> None:
    status = ob.native_status()
    assert status["available"], status["reason"]
    assert status["mode"] == "auto" and Path(status["path"]).is_file()
    assert fused._native_op(torch.zeros(1)) is not None
    assert fused._native_op(torch.zeros(1, dtype=torch.float16)) is None  # only float32/float64


CASES = [
    # method, field, activation, substeps, interpolation
    ("RK4", "elman", "tanh", 1, "constant"),
    ("DP5", "elman", "tanh", 1, "constant"),  # rows with several terms (addmm combinations)
    ("Euler", "elman", "tanh", 1, "constant"),
    ("SSPRK33", "leaky", "tanh", 1, "constant"),  # a leak: K = act − leak·y, stored Y
    ("RK4", "leaky", "sigmoid", 2, "linear"),
    ("Tsit5", "elman", "relu", 2, "linear"),
    ("Heun", "elman", "identity", 3, "constant"),
    ("RK4", "elman", "sigmoid", 1, "linear"),
]


@needs_native
@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)) for c in CASES])
@pytest.mark.parametrize("threads", [1, 2])
def test_native_equals_python_loop_float64(case: tuple, threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    method, field, act, substeps, interp = case
    torch.manual_seed(3)
    f = make_field(field, 5, 7, activation=act).double()
    cell = ob.RKCell(f, method, dt=0.3, substeps=substeps, input_interpolation=interp)
    x = torch.randn(6, 9, 5, dtype=torch.float64)  # 9 rows: an uneven split between 2 threads
    h0 = torch.randn(9, 7, dtype=torch.float64)
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        o_n, g_n = _run(cell, x, h0, True, monkeypatch)
        o_p, g_p = _run(cell, x, h0, False, monkeypatch)
        i_n, _ = _run(cell, x, h0, True, monkeypatch, grad=False)
        i_p, _ = _run(cell, x, h0, False, monkeypatch, grad=False)
    finally:
        torch.set_num_threads(prev)
    scale = max(1.0, float(o_p.abs().max()))
    assert float((o_n - o_p).abs().max()) <= 1e-12 * scale
    assert float((i_n - i_p).abs().max()) <= 1e-12 * scale
    assert float((i_n - o_n).abs().max()) <= 1e-12 * scale  # inference = training forward
    for a, b in zip(g_n, g_p):
        assert float((a - b).abs().max()) <= 1e-11 * max(1.0, float(b.abs().max()))


@needs_native
def test_native_float32_and_thread_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """float32: native vs Python loop within 1e-5 relative (rounding of the other summation
    order through 50 steps), and the batch split between 2 threads changes nothing beyond
    rounding."""
    torch.manual_seed(0)
    rnn = ob.ODERNN(16, 64, method="RK4", dt=0.5)
    cell = rnn.cells[0]
    x = torch.randn(50, 64, 16)
    h0 = torch.zeros(64, 64)
    prev = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, g1 = _run(cell, x, h0, True, monkeypatch)
        torch.set_num_threads(2)
        two, g2 = _run(cell, x, h0, True, monkeypatch)
        py, gp = _run(cell, x, h0, False, monkeypatch)
    finally:
        torch.set_num_threads(prev)
    scale = max(1.0, float(py.abs().max()))  # the untrained states grow to |h| ≈ 20
    assert float((one - py).abs().max()) < 1e-5 * scale
    assert float((two - one).abs().max()) < 1e-5 * scale
    for a, b in zip(g2, gp):
        assert float((a - b).abs().max()) <= 1e-4 * max(1.0, float(b.abs().max()))


def _subprocess(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full, timeout=300, cwd=str(ROOT))


_PROBE = """
    import warnings, torch, odernn_bridge as ob
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rnn = ob.ODERNN(3, 8, method="RK4", dt=0.5, dtype=torch.float64)
        with torch.no_grad():
            out, _ = rnn(torch.randn(4, 2, 3, dtype=torch.float64))
        out2, _ = rnn(torch.randn(4, 2, 3, dtype=torch.float64))
    st = ob.native_status()
    print("WARN", sum(issubclass(x.category, ob.NativeKernelWarning) for x in w))
    print("AVAILABLE", st["available"], "BUILT", st["build_seconds"] is not None)
    print("REASON", st["reason"])
    print("FINITE", bool(torch.isfinite(out).all()))
"""


def test_missing_compiler_falls_back_with_one_warning(tmp_path: Path) -> None:
    r = _subprocess(_PROBE, {"CXX": str(tmp_path / "no-such-compiler"), "ODERNN_NATIVE_CACHE": str(tmp_path),
                             "ODERNN_NATIVE": "auto"})
    assert r.returncode == 0, r.stderr
    assert "WARN 1" in r.stdout and "AVAILABLE False" in r.stdout and "FINITE True" in r.stdout
    assert "no C++ compiler" in r.stdout


def test_missing_compiler_raises_when_required(tmp_path: Path) -> None:
    r = _subprocess(_PROBE, {"CXX": str(tmp_path / "no-such-compiler"), "ODERNN_NATIVE_CACHE": str(tmp_path),
                             "ODERNN_NATIVE": "require"})
    assert r.returncode != 0 and "NativeKernelError" in r.stderr and "no C++ compiler" in r.stderr


def test_failing_compiler_leaves_nothing_half_written(tmp_path: Path) -> None:
    fake = tmp_path / "cxx"
    fake.write_text("#!/bin/sh\necho 'rk_kernel.cpp:1: error: simulated failure' >&2\nexit 1\n")
    fake.chmod(0o755)
    cache = tmp_path / "cache"
    r = _subprocess(_PROBE, {"CXX": str(fake), "ODERNN_NATIVE_CACHE": str(cache), "ODERNN_NATIVE": "auto"})
    assert r.returncode == 0, r.stderr
    assert "WARN 1" in r.stdout and "simulated failure" in r.stdout
    assert not list(cache.rglob("*.so"))  # neither a library nor a temporary build file


def test_disabled_and_bad_mode(tmp_path: Path) -> None:
    r = _subprocess(_PROBE, {"ODERNN_NATIVE": "0", "ODERNN_NATIVE_CACHE": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "WARN 0" in r.stdout and "AVAILABLE False" in r.stdout and "disabled by ODERNN_NATIVE=0" in r.stdout
    r = _subprocess(_PROBE, {"ODERNN_NATIVE": "sometimes", "ODERNN_NATIVE_CACHE": str(tmp_path)})
    assert r.returncode != 0 and "ODERNN_NATIVE: expected auto, off (0) or require (1)" in r.stderr


@needs_native
def test_cached_library_is_reused(tmp_path: Path) -> None:
    env = {"ODERNN_NATIVE_CACHE": str(tmp_path), "ODERNN_NATIVE": "require"}
    first = _subprocess(_PROBE, env)
    assert first.returncode == 0, first.stderr
    assert "AVAILABLE True BUILT True" in first.stdout
    second = _subprocess(_PROBE, env)
    assert second.returncode == 0, second.stderr
    assert "AVAILABLE True BUILT False" in second.stdout  # loaded from the cache, not rebuilt
    assert len(list(tmp_path.rglob("*.so"))) == 1


# -- the workspace pool ------------------------------------------------------------------------
def _cell_and_input(seed: int = 0) -> tuple[ob.ODERNN, torch.Tensor]:
    torch.manual_seed(seed)
    rnn = ob.ODERNN(3, 8, method="RK4", dt=0.5, dtype=torch.float64)
    return rnn, torch.randn(5, 4, 3, dtype=torch.float64)


def _grads(rnn: ob.ODERNN) -> list[torch.Tensor]:
    return [p.grad.clone() for p in rnn.parameters()]


def test_workspace_two_forwards_before_one_backward() -> None:
    """The second forward pass must not reuse buffers the first graph still holds."""
    rnn, x = _cell_and_input()
    x2 = torch.randn_like(x)
    (rnn(x)[0].sum() + (rnn(x2)[0] ** 2).sum()).backward()
    ref = _grads(rnn)
    rnn.zero_grad()
    for c in rnn.cells:
        c.fused = False
    (rnn(x)[0].sum() + (rnn(x2)[0] ** 2).sum()).backward()
    for a, b in zip(ref, _grads(rnn)):
        assert float((a - b).abs().max()) < 1e-12


def test_workspace_retain_graph_and_reuse() -> None:
    rnn, x = _cell_and_input()
    out, _ = rnn(x)
    loss = (out ** 2).sum()
    loss.backward(retain_graph=True)
    first = _grads(rnn)
    rnn(torch.randn_like(x))[0].sum().backward()  # a forward/backward in between
    rnn.zero_grad()
    loss.backward()  # the retained graph still reads its own buffers
    for a, b in zip(first, _grads(rnn)):
        assert float((a - b).abs().max()) < 1e-12
    ws = rnn.cells[0]._workspace
    del out, loss
    assert ws.nbytes() > 0  # released graphs gave their buffers back
    before = ws.nbytes()
    rnn(x)[0].sum().backward()  # ... and the next call takes them instead of allocating
    assert ws.nbytes() == before


def test_workspace_copies_and_pickles_empty() -> None:
    rnn, x = _cell_and_input()
    rnn(x)[0].sum().backward()
    assert rnn.cells[0]._workspace.nbytes() > 0
    clone = copy.deepcopy(rnn)
    assert clone.cells[0]._workspace.nbytes() == 0
    restored = pickle.loads(pickle.dumps(rnn))
    assert restored.cells[0]._workspace.nbytes() == 0
    out_a, _ = rnn(x)
    out_b, _ = restored(x)
    assert torch.equal(out_a, out_b)


def test_workspace_bounded() -> None:
    from odernn_bridge.cells._workspace import Workspace

    ws = Workspace(max_buffers=3)
    like = torch.zeros(1)
    for n in range(1, 10):
        ws.give(ws.take((n * 100,), like))
    assert len(ws._free[(like.dtype, like.device)]) == 3
    t = ws.take((850,), like)  # reuses the 900-value buffer (fits, not more than twice the size)
    assert t.shape == (850,) and t._base is not None and t._base.numel() == 900


@needs_native
def test_cli_native_reports_ready(capsys: pytest.CaptureFixture[str]) -> None:
    from odernn_bridge.cli import main

    assert main(["native"]) == 0
    assert "native loop: ready" in capsys.readouterr().out


def test_cli_native_reports_disabled(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "odernn_bridge", "native"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "ODERNN_NATIVE": "0"}, timeout=120)
    assert r.returncode == 1 and "disabled by ODERNN_NATIVE=0" in r.stdout
