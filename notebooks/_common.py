"""Settings and the figure helper shared by the notebooks in this folder.

``ODERNN_FAST=1`` shrinks every notebook to seconds; figures go to ``$ODERNN_NOTEBOOK_OUT``
(default ``figures/``), each written atomically through :func:`odernn_bridge.io.save_figure`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from odernn_bridge.io import save_figure

FAST = os.environ.get("ODERNN_FAST", "0") == "1"
OUT = Path(os.environ.get("ODERNN_NOTEBOOK_OUT", "figures"))
OUT.mkdir(parents=True, exist_ok=True)


def show(fig, name: str) -> Path:
    """Save the figure as ``OUT/name`` and display it when running inside Jupyter."""
    if "ipykernel" in sys.modules:
        from IPython.display import display

        display(fig)
    return save_figure(fig, OUT / name, dpi=110, bbox_inches="tight")
