"""Conventions for results on disk: atomic writes, NetCDF, provenance attrs.

Every file the library writes goes through a temporary file in the destination
folder and an atomic :func:`os.replace`, so an interrupted write never leaves a
half-written file behind (the previous version, if any, stays readable).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

__all__ = [
    "atomic_path",
    "atomic_write_text",
    "atomic_write_bytes",
    "to_netcdf",
    "save_figure",
    "open_dataset",
    "provenance",
    "NETCDF_ENGINE",
]

NETCDF_ENGINE = "h5netcdf"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix or ".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save(path: str | os.PathLike[str], writer: Callable[[Path], Any], suffix: str | None = None) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result to ``path``."""
    with atomic_path(path, suffix=suffix) as tmp:
        writer(tmp)
    return Path(path)


def save_figure(fig: Any, path: str | os.PathLike[str], *, close: bool = True, **savefig_kwargs: Any) -> Path:
    """Write a matplotlib figure atomically; the format comes from the suffix (default PNG).

    ``savefig_kwargs`` go to ``fig.savefig`` (``dpi``, ``bbox_inches``…); ``close`` closes
    a pyplot figure afterwards (a bare ``matplotlib.figure.Figure`` needs no closing).
    Returns the path; a failed save leaves ``path`` as it was.

    >>> import tempfile
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(figsize=(2, 2))
    >>> _ = fig.subplots().plot([0, 1], [1, 0])
    >>> p = save_figure(fig, Path(tempfile.mkdtemp()) / "f.png", dpi=50)
    >>> p.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    suffix = Path(path).suffix
    fmt = suffix.lstrip(".").lower() or "png"
    try:
        return atomic_save(path, lambda tmp: fig.savefig(tmp, format=fmt, **savefig_kwargs), suffix=suffix or ".png")
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")  # only pyplot keeps figures open
        if close and pyplot is not None:
            pyplot.close(fig)


def _clean_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """NetCDF attributes must be str / numbers / 1-D arrays: convert the rest."""
    import numpy as np

    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, bool):
            out[k] = int(v)
        elif isinstance(v, (str, int, float, np.number)):
            out[k] = v
        elif isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            out[k] = np.asarray(v)
        else:
            out[k] = str(v)
    return out


def to_netcdf(ds: "xr.Dataset | xr.DataArray", path: str | os.PathLike[str]) -> Path:
    """Write a Dataset/DataArray to NetCDF4 (h5netcdf) atomically; returns the path."""
    import xarray as xr

    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or "data")
    ds = ds.copy()
    ds.attrs = _clean_attrs(dict(ds.attrs))
    for name in list(ds.variables):
        ds[name].attrs = _clean_attrs(dict(ds[name].attrs))
    return atomic_save(path, lambda tmp: ds.to_netcdf(tmp, engine=NETCDF_ENGINE), suffix=".nc")


def open_dataset(path: str | os.PathLike[str]) -> "xr.Dataset":
    """Load a NetCDF file fully into memory (the file is closed on return)."""
    import xarray as xr

    with xr.open_dataset(path, engine=NETCDF_ENGINE) as ds:
        return ds.load()


def provenance(**extra: Any) -> dict[str, Any]:
    """Standard attrs: package version, creation time, plus ``extra``."""
    from . import __version__

    attrs: dict[str, Any] = {
        "odernn_bridge_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    attrs.update({k: v for k, v in extra.items() if v is not None})
    return attrs
