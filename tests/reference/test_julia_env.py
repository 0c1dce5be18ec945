"""Julia detection (issues 10.5 / 14.5): offline, bounded in time, never installing anything;
and the explicit setup command.  Fake ``julia`` / ``juliaup`` executables on PATH play
broken installations (real processes: they run, hang and get killed)."""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import shutil

import pytest

import odernn_bridge as ob
from odernn_bridge.cli import main as cli_main
from odernn_bridge.reference import backend as backend_mod
from odernn_bridge.reference import diffeqpy_backend as dqmod
from odernn_bridge.reference import julia as jlglue
from odernn_bridge.reference import julia_env

from odernn_bridge.reference import pytest_juliacall


#: absolute paths: some tests empty PATH
SLEEP = shutil.which("sleep") or "/bin/sleep"
TOUCH = shutil.which("touch") or "/usr/bin/touch"


def _gone(pid: int, within: float = 2.0) -> bool:
    """Whether process ``pid`` has ended (a zombie waiting for its reaper counts as ended)
    within ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            os.kill(pid, 0)
            stat_line = Path(f"/proc/{pid}/stat").read_text()
            if stat_line.rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def cold(monkeypatch: pytest.MonkeyPatch):
    """Cold detection caches for both Julia routes, restored afterwards."""
    monkeypatch.setattr(jlglue, "_STATE", {"checked": False, "reason": None, "session": None, "probe": None})
    monkeypatch.setattr(dqmod, "_STATE", {"checked": False, "reason": None, "session": None, "probe": None})
    monkeypatch.setattr(backend_mod, "_INSTANCES", {})
    monkeypatch.delenv("PYTHON_JULIAPKG_EXE", raising=False)
    monkeypatch.delenv("ODERNN_JULIA_PROBE_TIMEOUT", raising=False)


def _real_julia_here() -> bool:
    return julia_env.julia_executable() is not None


#: juliacall/diffeqpy already imported by the time these tests run (the pytest_juliacall plugin
#: does so where a real Julia can load): then "never imported" cannot be asserted
PRELOADED = {m for m in ("juliacall", "diffeqpy") if m in sys.modules}


def _not_imported(*modules: str) -> bool:
    return all(m in PRELOADED or m not in sys.modules for m in modules)


pytestmark = pytest.mark.skipif(os.name != "posix", reason="fake executables are POSIX shell scripts")


def test_torch_is_imported_after_the_juliacall_plugin() -> None:
    # the -p plugin (pyproject addopts) ran before any other plugin or conftest imported torch,
    # and imported juliacall exactly where Julia can load
    assert pytest_juliacall.TORCH_ALREADY_IMPORTED is False
    assert pytest_juliacall.JULIACALL_IMPORTED is jlglue.probe().ok


def test_no_julia_both_backends_fail_fast(cold, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))            # nothing on PATH at all
    for name in ("julia", "diffeqpy"):
        start = time.perf_counter()
        with pytest.raises(ob.JuliaUnavailableError, match="no Julia found"):
            ob.reference.get_backend(name)
        assert time.perf_counter() - start < 1.0, name
    assert _not_imported("juliacall", "diffeqpy")


def test_hanging_julia_on_path_is_unavailable_within_a_second(cold, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    _script(tmp_path, "julia", f"echo $$ > {pidfile}\nexec {SLEEP} 60\n")   # never answers
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    start = time.perf_counter()
    with pytest.raises(ob.JuliaUnavailableError, match="did not answer"):
        ob.reference.get_backend("julia")
    assert time.perf_counter() - start < 1.0
    start = time.perf_counter()
    with pytest.raises(ob.JuliaUnavailableError, match="did not answer"):
        ob.reference.get_backend("diffeqpy")
    assert time.perf_counter() - start < 1.0
    # the hung probe was killed, not left behind
    pid = int(pidfile.read_text())
    assert _gone(pid), f"the hanging fake julia (pid {pid}) survived the probe"
    assert _not_imported("juliacall")


def test_juliaup_alone_is_not_julia_and_installs_nothing(cold, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    marker = tmp_path / "juliaup-was-run"
    _script(tmp_path, "juliaup", f"{TOUCH} {marker}\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    start = time.perf_counter()
    ok, reason = jlglue.detect()
    assert not ok and "juliaup alone does not count" in reason
    assert time.perf_counter() - start < 1.0
    assert not marker.exists() and _not_imported("juliacall")
    # the explicit setup does not fall back to juliaup (or a download) either
    assert cli_main(["julia", "setup"]) == 2
    assert not marker.exists()


@pytest.mark.parametrize("answer,match", [("echo 'julia version 1.9.4'", "too old"),
                                          ("echo garbage; exit 3", "no Julia version")])
def test_broken_or_old_julia_is_reported(cold, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, answer: str,
                                         match: str) -> None:
    _script(tmp_path, "julia", answer + "\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    found = julia_env.probe()
    assert not found.ok and match in found.reason and found.seconds < 1.0


def test_python_juliapkg_exe_is_probed_too(cold, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PYTHON_JULIAPKG_EXE", str(tmp_path / "missing-julia"))
    found = julia_env.probe()
    assert not found.ok and "not an executable file" in found.reason
    _script(tmp_path, "slow-julia", f"exec {SLEEP} 60\n")
    monkeypatch.setenv("PYTHON_JULIAPKG_EXE", str(tmp_path / "slow-julia"))
    monkeypatch.setenv("ODERNN_JULIA_PROBE_TIMEOUT", "0.2")
    start = time.perf_counter()
    found = julia_env.probe()
    assert not found.ok and "within 0.2 s" in found.reason
    assert time.perf_counter() - start < 0.6


@pytest.mark.skipif(importlib.util.find_spec("juliacall") is None,
                    reason="needs juliacall/juliapkg installed (the [julia] extra)")
def test_a_working_julia_without_setup_asks_for_the_setup(cold, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """A Julia that answers, juliacall installed, juliapkg never resolved (a private project):
    detection asks juliapkg (dry run, in a child process) and says to run the setup; nothing
    is downloaded or installed and juliacall is not imported."""
    if _real_julia_here():
        pytest.skip("a real Julia is installed here")
    _script(tmp_path, "julia", "echo 'julia version 1.11.2'\n")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHON_JULIAPKG_PROJECT", str(tmp_path / "julia_env"))   # juliapkg's own setting
    start = time.perf_counter()
    ok, reason = jlglue.detect()
    elapsed = time.perf_counter() - start
    assert not ok and "odernn julia setup" in reason and "not installed yet" in reason
    assert elapsed < 5.0   # Python child + juliapkg import; measured ~0.4 s
    assert not (tmp_path / "julia_env" / "Manifest.toml").exists()
    assert _not_imported("juliacall")
    ok, reason = dqmod.detect_diffeqpy()
    assert not ok and ("not installed" in reason)
    assert _not_imported("diffeqpy")


def test_status_and_setup_commands_without_julia(cold, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    start = time.perf_counter()
    assert cli_main(["julia", "status"]) == 1
    out = capsys.readouterr().out
    assert "julia backend:    unavailable" in out and "diffeqpy backend: unavailable" in out
    assert cli_main(["julia", "setup"]) == 2
    err = capsys.readouterr().err
    assert "odernn julia: error: no Julia found" in err
    assert time.perf_counter() - start < 2.0


def test_setup_refuses_offline_mode(cold, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`odernn julia setup` is the one online step; with PYTHON_JULIAPKG_OFFLINE=yes (as in this
    test suite) it stops with a clear message before anything is resolved."""
    if importlib.util.find_spec("juliacall") is None:
        pytest.skip("needs juliacall installed")
    _script(tmp_path, "julia", "echo 'julia version 1.11.2'\n")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHON_JULIAPKG_OFFLINE", "yes")
    monkeypatch.setenv("PYTHON_JULIAPKG_PROJECT", str(tmp_path / "julia_env"))
    with pytest.raises(ob.JuliaUnavailableError, match="PYTHON_JULIAPKG_OFFLINE"):
        julia_env.setup()
    assert not (tmp_path / "julia_env").exists()     # nothing resolved, nothing written


def test_run_bounded_kills_the_process_group(tmp_path: Path) -> None:
    child = tmp_path / "child"
    script = _script(tmp_path, "parent", f"{SLEEP} 60 & echo $! > {child}\nwait\n")
    start = time.perf_counter()
    with pytest.raises(subprocess.TimeoutExpired):
        julia_env.run_bounded([str(script)], 0.3)
    assert time.perf_counter() - start < 1.0
    assert _gone(int(child.read_text())), "the grandchild survived"


def test_absence_in_a_fresh_interpreter_never_hangs(tmp_path: Path) -> None:
    """The whole path a user takes, in a new process with a hanging `julia` first on PATH."""
    _script(tmp_path, "julia", f"exec {SLEEP} 60\n")
    script = textwrap.dedent("""
        import time, odernn_bridge as ob
        for backend in ("julia", "diffeqpy"):
            t = time.perf_counter()
            try:
                ob.validate("RK4", "linear", dts=[0.1, 0.05, 0.025], backend=backend)
            except ob.JuliaUnavailableError:
                print(backend, time.perf_counter() - t)
    """)
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    env.pop("PYTHON_JULIAPKG_EXE", None)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL, env=env)
    assert out.returncode == 0, out.stderr
    lines = [line.split() for line in out.stdout.splitlines()]
    assert [name for name, _ in lines] == ["julia", "diffeqpy"]
    assert all(float(seconds) < 1.0 for _, seconds in lines), lines
