"""Conventions for results on disk: atomic writes, NetCDF, provenance attrs.

Every file the library writes goes through a temporary file in the destination
folder and an atomic :func:`os.replace`, so an interrupted write never leaves a
half-written file behind (the previous version, if any, stays readable).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import re
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
    "read_json_object",
    "remove_stale_temporaries",
    "MAX_DATASET_BYTES",
    "MAX_JSON_BYTES",
    "provenance",
    "NETCDF_ENGINE",
]

NETCDF_ENGINE = "h5netcdf"

#: largest in-memory size :func:`open_dataset` loads by default (checked from the
#: header's dimension sizes, before any data is read)
MAX_DATASET_BYTES = 2 * 2**30
#: largest JSON file :func:`read_json_object` reads
MAX_JSON_BYTES = 16 * 2**20


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


def open_dataset(path: str | os.PathLike[str], *, max_bytes: int = MAX_DATASET_BYTES) -> "xr.Dataset":
    """Load a NetCDF file fully into memory (the file is closed on return).

    The sizes declared in the file's header are checked before anything is read: a
    dataset that would take more than ``max_bytes`` in memory (a 6 KB file can declare a
    2e9-long dimension) raises :class:`~odernn_bridge.errors.FileFormatError`, as does a
    file that is truncated, corrupt or not NetCDF4/HDF5.

    >>> import tempfile, xarray as xr
    >>> p = to_netcdf(xr.Dataset({"x": ("step", [1.0, 2.0])}), Path(tempfile.mkdtemp()) / "h.nc")
    >>> open_dataset(p).x.values.tolist()
    [1.0, 2.0]
    """
    import xarray as xr

    from .errors import FileFormatError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"path: no such file: {str(p)!r}")
    try:
        # sizes from the HDF5 header alone: xarray would read dimension coordinates (and
        # build their indexes) while opening, before any size could be checked
        import h5py

        shapes: list[tuple[str, tuple[int, ...], int]] = []
        with h5py.File(p, "r") as f:
            f.visititems(lambda name, obj: shapes.append((name, obj.shape or (), obj.dtype.itemsize))
                         if isinstance(obj, h5py.Dataset) else None)
        nbytes = sum(math.prod(shape) * itemsize for _, shape, itemsize in shapes)
        if nbytes > max_bytes:
            big = ", ".join(f"{name}{list(shape)}" for name, shape, _ in
                            sorted(shapes, key=lambda t: -math.prod(t[1]))[:3])
            raise FileFormatError(f"{p.name}: declares {nbytes / 2**30:.1f} GiB of data ({big}), more than "
                                  f"the {max_bytes / 2**30:.1f} GiB limit (max_bytes=)")
        with xr.open_dataset(p, engine=NETCDF_ENGINE) as ds:
            return ds.load()
    except FileFormatError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
        # h5py/h5netcdf/xarray report truncated or foreign files with these
        raise FileFormatError(f"{p.name}: not a readable NetCDF4 file ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None


def read_json_object(path: str | os.PathLike[str], what: str = "file") -> dict[str, Any]:
    """The JSON object (dict) in ``path``; anything else (not UTF-8, malformed, a list, larger
    than ``MAX_JSON_BYTES``) raises :class:`~odernn_bridge.errors.FileFormatError` naming
    ``what``.

    >>> import tempfile
    >>> p = atomic_write_text(Path(tempfile.mkdtemp()) / "c.json", '{"a": 1}')
    >>> read_json_object(p, "config.json")
    {'a': 1}
    """
    from .errors import FileFormatError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what}: no such file: {str(p)!r}")
    with open(p, "rb") as fh:
        data = fh.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise FileFormatError(f"{what}: {p} is larger than {MAX_JSON_BYTES} bytes")
    try:
        obj = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{what}: {p} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise FileFormatError(f"{what}: {p} is not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(obj, dict):
        raise FileFormatError(f"{what}: {p} holds a JSON {type(obj).__name__}, expected an object "
                              "(a mapping of keys to values)")
    return obj


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that killed atomic writes of ``path`` left behind.

    They are the ``.{name}.XXXXXXXX{suffix}`` files of :func:`atomic_path` (8 random
    characters from :func:`tempfile.mkstemp`); nothing else is touched.
    """
    path = Path(path)
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    pattern = re.compile(r"\." + re.escape(path.name) + r"\.[A-Za-z0-9_]{8}(\.[A-Za-z0-9]+)?")
    for tmp in path.parent.iterdir():
        if pattern.fullmatch(tmp.name) and tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def provenance(**extra: Any) -> dict[str, Any]:
    """Standard attrs: package version, creation time, plus ``extra``."""
    from . import __version__

    attrs: dict[str, Any] = {
        "odernn_bridge_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    attrs.update({k: v for k, v in extra.items() if v is not None})
    return attrs
