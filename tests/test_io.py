"""odernn_bridge.io.save_figure: atomic figure writes (every file on disk goes through io)."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from odernn_bridge.io import save_figure


def _figure() -> Figure:
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    return fig


def test_format_follows_the_suffix(tmp_path):
    png = save_figure(_figure(), tmp_path / "a.png", dpi=40)
    svg = save_figure(_figure(), tmp_path / "b.svg")
    bare = save_figure(_figure(), tmp_path / "c")  # no suffix: PNG
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and bare.read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in svg.read_bytes()[:400]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.svg", "c"]  # no temporaries left


def test_failed_save_keeps_the_previous_file(tmp_path):
    dest = tmp_path / "fig.png"
    dest.write_bytes(b"previous")
    with pytest.raises(TypeError):
        save_figure(_figure(), dest, format_does_not_exist=1)  # the PNG writer rejects the keyword
    assert dest.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]


def test_pyplot_figures_are_closed_unless_asked(tmp_path):
    fig = plt.figure()
    save_figure(fig, tmp_path / "x.png")
    assert not plt.fignum_exists(fig.number)
    fig = plt.figure()
    save_figure(fig, tmp_path / "y.png", close=False)
    assert plt.fignum_exists(fig.number)
    plt.close(fig)
