"""The README's two commands are the ones CI and users run: keep them in sync with .ci/run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = dict(re.findall(r"<!-- (main-job|tests) -->\s*```(?:bash|sh)?\n(.+?)\n```", text, flags=re.S))
    return {k: v.strip() for k, v in found.items()}


def test_readme_has_both_commands():
    cmds = _commands()
    assert set(cmds) == {"main-job", "tests"}
    assert "odernn demo" in cmds["main-job"]
    assert "pytest" in cmds["tests"]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert _commands()["tests"] in [line.strip() for line in ci]


def test_readme_quick_start_runs(tmp_path, monkeypatch):
    """The README's Python example is executed as written (in a scratch folder)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Quick start\s*```python\n(.+?)\n```", text, flags=re.S)
    assert block is not None
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "regions.png").is_file()
