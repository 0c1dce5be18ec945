"""Sweeps over grids of cells, serially or on ``dask.distributed``; one xarray Dataset out.

A *sweep* calls one function on every cell of a grid (the product of named coordinate lists,
e.g. ``method × problem × precision``) and gathers the per-cell results into one
``xarray.Dataset`` with those dims.  The same sweep runs

* serially in this process (``workers=None`` or ``0``, the default; no dask needed),
* on an embedded :class:`distributed.LocalCluster` sized to the machine (``workers=N``:
  ``min(N, cores)`` worker *processes*, one thread each, torch limited to one thread), or
* on an existing cluster (``scheduler="tcp://host:8786"``, a :class:`distributed.Client`,
  or the ``ODERNN_SCHEDULER`` environment variable).

A cell whose function raises (or whose worker dies more often than dask's
``distributed.scheduler.allowed-failures``) is recorded with ``status="failed"`` and its
``error`` message; its numeric results are NaN and every other cell is kept.  With ``out``,
each finished cell is written atomically to ``<out>.partial/`` as soon as it arrives; a rerun
of an interrupted sweep loads those cells instead of recomputing them, and the directory is
removed after the final Dataset has been written (atomically) to ``out``.

Work that many cells need (a reference solution per problem, say) is computed once per group
of cells with ``shared=`` / ``shared_dims=``: serially once per group, distributed as one dask
task per group whose result (a future) is handed to the cell tasks of that group, so dask tends
to run them on the worker that already holds it.

dask is imported only when a distributed sweep runs.

>>> def square(x, *, offset):
...     return {"y": x * x + offset}
>>> ds = run_grid(square, {"x": [1, 2, 3]}, fixed={"offset": 1}, progress=False)
>>> ds.y.values.tolist(), ds.status.values.tolist()
([2, 5, 10], ['ok', 'ok', 'ok'])
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from .errors import SweepResumeError

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

__all__ = ["ENV_SCHEDULER", "available_cores", "open_client", "run_grid", "partial_path"]

logger = logging.getLogger("odernn_bridge.distributed")

#: environment variable naming the scheduler of an existing cluster (``tcp://host:8786``)
ENV_SCHEDULER = "ODERNN_SCHEDULER"

_STORE_FORMAT = "odernn_bridge.sweep.partial/1"

_NO_SHARED = object()  # marker: the cell function takes no ``shared`` argument


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS/Windows
        return max(1, os.cpu_count() or 1)


def _check_workers(workers: Any) -> int | None:
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
        raise ValueError(f"workers: expected None or an integer >= 0 (0: serial), got {workers!r}")
    return int(workers)


@contextlib.contextmanager
def open_client(workers: int | None = None, scheduler: Any = None) -> Iterator[Any]:
    """The ``distributed.Client`` a sweep runs on, or ``None`` for a serial run.

    * ``scheduler``: an address (``"tcp://host:8786"``) or a ``Client`` — use that cluster
      (a given ``Client`` is left open);
    * else ``workers=0`` — serial (``None`` is yielded), whatever the environment says;
    * else the ``ODERNN_SCHEDULER`` environment variable, when set — use that cluster;
    * else ``workers=None`` — serial; ``workers=N`` — an embedded ``LocalCluster`` of
      ``min(N, available_cores())`` worker processes with one thread each (torch, OpenMP and
      BLAS limited to one thread per worker), closed on exit.

    >>> with open_client(workers=0) as client:
    ...     client is None
    True
    """
    n = _check_workers(workers)
    if scheduler is None and n != 0:
        scheduler = os.environ.get(ENV_SCHEDULER) or None
    if scheduler is None and not n:
        yield None
        return
    from distributed import Client

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if scheduler is not None:
        if not isinstance(scheduler, str):
            raise TypeError(f"scheduler: expected an address string or a distributed.Client, "
                            f"got {type(scheduler).__name__}")
        with Client(scheduler, set_as_default=False) as client:
            yield client
        return
    from distributed import LocalCluster

    assert n is not None
    # dask's nanny already sets OMP/MKL/OPENBLAS_NUM_THREADS=1 in worker processes, so torch
    # starts single-threaded there; _call_cell enforces it for clusters configured otherwise
    import dask

    # no dashboard, hence no use for the workers' statistical profiler (it samples the running
    # task's stack every 10 ms: a few per cent of every worker's CPU).  The event-loop tick
    # (20 ms), the system monitor (500 ms) and the memory monitor (100 ms) wake the worker's
    # event-loop thread, which then competes for the GIL with the task thread: a serial
    # validation job ran 13-19 % slower as a task than in the worker's main thread (5.6 s vs
    # 4.7 s), 4.9 s with these intervals relaxed.  Loop-blocking warnings and memory limits
    # (nothing a sweep of small cells comes near) react within seconds instead.
    with dask.config.set({"distributed.worker.profile.enabled": False,
                          "distributed.admin.tick.interval": "1s",
                          "distributed.admin.system-monitor.interval": "5s",
                          "distributed.worker.memory.monitor-interval": "2s"}):
        cluster = LocalCluster(n_workers=min(n, available_cores()), threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)  # any free port
    with cluster, Client(cluster, set_as_default=False) as client:
        yield client


def _describe_client(client: Any) -> str:
    if client is None:
        return "serial (this process)"
    import distributed

    info = client.scheduler_info()
    workers = info.get("workers", {})
    threads = sum(w.get("nthreads", 0) for w in workers.values())
    return (f"dask.distributed {distributed.__version__}: {len(workers)} workers, {threads} threads, "
            f"scheduler {client.scheduler.address}")


# ----------------------------------------------------------------------------- cell values
def _normalise(values: Any, where: str) -> dict[str, Any]:
    """A cell's result as ``{name: python scalar | (dims tuple, ndarray)}``."""
    if not isinstance(values, Mapping):
        raise TypeError(f"{where}: the cell function must return a mapping name -> value, "
                        f"got {type(values).__name__}")
    out: dict[str, Any] = {}
    for name, v in values.items():
        if name in ("status", "error"):
            raise ValueError(f"{where}: result name {name!r} is reserved")
        if isinstance(v, tuple):
            dims, arr = v
            dims = (dims,) if isinstance(dims, str) else tuple(dims)
            arr = np.asarray(arr)
            if arr.ndim != len(dims):
                raise ValueError(f"{where}: {name!r} has {arr.ndim} axes but dims {dims}")
            out[name] = (dims, arr)
        elif isinstance(v, (np.generic, np.ndarray)) and np.ndim(v) == 0:
            out[name] = np.asarray(v).item()
        elif isinstance(v, (bool, int, float, str)):
            out[name] = v
        else:
            raise TypeError(f"{where}: {name!r} must be a number, bool, str or a (dims, array) tuple, "
                            f"got {type(v).__name__}")
    return out


def _single_thread() -> None:
    if "torch" in sys.modules:
        import torch

        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)


def _call_cell(func: Callable[..., Any], cell: dict[str, Any], fixed: dict[str, Any],
               single_thread: bool, shared: Any = _NO_SHARED) -> tuple[str, Any]:
    """``("ok", values)`` or ``("failed", "Type: message")``: a cell's exception is a result
    (recorded in the Dataset), not a task failure for dask to log and report.  ``shared``:
    the outcome of the cell's group's :func:`_call_shared` (passed on as ``shared=``)."""
    if single_thread:
        _single_thread()
    extra: dict[str, Any] = {}
    if shared is not _NO_SHARED:
        status, value = shared
        if status != "ok":
            return "failed", value
        extra["shared"] = value
    try:
        return "ok", _normalise(func(**cell, **fixed, **extra), f"cell {cell}")
    except Exception as exc:
        logger.debug("cell %s failed", cell, exc_info=True)
        return "failed", _error_text(exc)


def _call_shared(shared: Callable[..., Any], group: dict[str, Any], fixed: dict[str, Any],
                 single_thread: bool) -> tuple[str, Any]:
    """``("ok", value)`` of ``shared(**group, **fixed)``, or ``("failed", "Type: message")``:
    a failure fails the group's cells with that message, recorded like their own errors."""
    if single_thread:
        _single_thread()
    try:
        return "ok", shared(**group, **fixed)
    except Exception as exc:
        logger.debug("shared work for %s failed", group, exc_info=True)
        return "failed", _error_text(exc)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# ----------------------------------------------------------------------------- partial store
def partial_path(out: str | os.PathLike[str]) -> Path:
    """Where a sweep writing ``out`` keeps its finished cells until it completes."""
    p = Path(out)
    return p.with_name(p.name + ".partial")


def _cell_key(cell: Mapping[str, Any]) -> str:
    return json.dumps([[k, v] for k, v in cell.items()])


class _Store:
    """``<out>.partial/``: ``sweep.json`` (format, signature) and one ``.npz`` per finished cell."""

    def __init__(self, root: Path, signature: str, resume: bool) -> None:
        self.root = root
        meta = root / "sweep.json"
        if root.exists() and not resume:
            shutil.rmtree(root)
        if meta.is_file():
            saved = json.loads(meta.read_text())
            if saved.get("format") != _STORE_FORMAT or saved.get("signature") != signature:
                raise SweepResumeError(
                    f"{root} holds partial results of a sweep with other settings "
                    f"({saved.get('signature')!r}, now {signature!r}); remove it, write to another "
                    f"--out, or pass resume=False to start afresh")
        else:
            from .io import atomic_write_text

            (root / "cells").mkdir(parents=True, exist_ok=True)
            atomic_write_text(meta, json.dumps({"format": _STORE_FORMAT, "signature": signature}))
        (root / "cells").mkdir(exist_ok=True)

    def _file(self, key: str) -> Path:
        return self.root / "cells" / (hashlib.sha1(key.encode()).hexdigest()[:20] + ".npz")

    def save(self, key: str, values: dict[str, Any]) -> None:
        from .io import atomic_path

        arrays: dict[str, np.ndarray] = {}
        dims: dict[str, list[str]] = {}
        for name, v in values.items():
            if isinstance(v, tuple):
                dims[name] = list(v[0])
                arrays["a:" + name] = v[1]
            else:
                arrays["v:" + name] = np.asarray(v)
        arrays["meta"] = np.asarray(json.dumps({"key": key, "dims": dims}))
        with atomic_path(self._file(key), suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

    def load(self, keys: set[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for f in sorted((self.root / "cells").glob("*.npz")):
            try:
                with np.load(f, allow_pickle=False) as z:
                    meta = json.loads(z["meta"].item())
                    if meta["key"] not in keys:
                        continue
                    values: dict[str, Any] = {}
                    for name in z.files:
                        if name.startswith("v:"):
                            values[name[2:]] = z[name].item()
                        elif name.startswith("a:"):
                            values[name[2:]] = (tuple(meta["dims"][name[2:]]), z[name])
            except (OSError, ValueError, KeyError) as exc:  # not one of ours: recompute that cell
                logger.warning("ignoring unreadable partial result %s (%s)", f, exc)
                continue
            found[meta["key"]] = values
        return found

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# ----------------------------------------------------------------------------- assembly
def _kind(values: Sequence[Any]) -> str:
    kinds = {"str" if isinstance(v, str) else "bool" if isinstance(v, bool) else
             "int" if isinstance(v, int) else "float" for v in values}
    if "str" in kinds and len(kinds) > 1:
        raise TypeError("a result is a string in some cells and a number in others")
    return kinds.pop() if len(kinds) == 1 else "float"


def _assemble(dims: dict[str, list[Any]], records: dict[str, dict[str, Any]], cells: list[dict[str, Any]],
              coords: Mapping[str, Any]) -> "xr.Dataset":
    import xarray as xr

    shape = tuple(len(v) for v in dims.values())
    keys = [_cell_key(c) for c in cells]
    ok = [k for k in keys if records[k]["status"] == "ok"]
    names: list[str] = []
    for k in ok:
        names.extend(n for n in records[k]["values"] if n not in names)
    data_vars: dict[str, Any] = {}
    extra_sizes: dict[str, int] = {}
    for name in names:
        present = [records[k]["values"][name] for k in ok if name in records[k]["values"]]
        complete = len(present) == len(keys)
        if isinstance(present[0], tuple):
            vdims = present[0][0]
            if any(p[0] != vdims for p in present):
                raise ValueError(f"result {name!r}: dims differ between cells")
            ext = tuple(max(p[1].shape[i] for p in present) for i in range(len(vdims)))
            for d, size in zip(vdims, ext):
                extra_sizes[d] = max(extra_sizes.get(d, 0), size)
            is_str = present[0][1].dtype.kind in "US"
            # padded to the largest extent; missing entries NaN (or "" for strings)
            full = np.full((len(keys), *ext), "" if is_str else np.nan,
                           dtype=object if is_str else np.result_type(np.float64, *[p[1].dtype for p in present]))
            for i, k in enumerate(keys):
                v = records[k]["values"].get(name) if records[k]["status"] == "ok" else None
                if v is not None:
                    full[(i, *[slice(0, s) for s in v[1].shape])] = v[1]
            data_vars[name] = ((*dims, *vdims), full.reshape(shape + ext))
            continue
        kind = _kind(present)
        if kind == "str":
            flat = np.array([records[k]["values"].get(name, "") if records[k]["status"] == "ok" else ""
                             for k in keys], dtype=object)
        else:
            dtype = {"bool": bool, "int": np.int64, "float": np.float64}[kind] if complete else np.float64
            flat = np.array([records[k]["values"].get(name, np.nan) if records[k]["status"] == "ok" else np.nan
                             for k in keys], dtype=dtype)
        data_vars[name] = (tuple(dims), flat.reshape(shape))
    data_vars["status"] = (tuple(dims), np.array([records[k]["status"] for k in keys], dtype=object).reshape(shape),
                           {"long_name": "ok: computed; failed: the cell's task raised (see error)"})
    data_vars["error"] = (tuple(dims), np.array([records[k].get("error", "") for k in keys],
                                                dtype=object).reshape(shape),
                          {"long_name": "exception of a failed cell ('' when ok)"})
    all_coords: dict[str, Any] = {d: list(v) for d, v in dims.items()}
    for d, size in extra_sizes.items():
        c = coords.get(d)
        if c is not None:
            if len(c) != size:
                raise ValueError(f"coords: {d!r} has {len(c)} values for {size} entries")
            all_coords[d] = c
        else:
            all_coords[d] = np.arange(size)
    return xr.Dataset(data_vars, coords=all_coords)


# ----------------------------------------------------------------------------- the runner
def run_grid(func: Callable[..., Mapping[str, Any]], dims: Mapping[str, Sequence[Any]], *,
             fixed: Mapping[str, Any] | None = None, out: str | os.PathLike[str] | None = None,
             workers: int | None = None, scheduler: Any = None, progress: bool = True, resume: bool = True,
             signature: Any = None, cost: Callable[[dict[str, Any]], float] | None = None,
             coords: Mapping[str, Any] | None = None, retries: int = 0, desc: str = "sweep",
             attrs: Mapping[str, Any] | None = None,
             postprocess: Callable[["xr.Dataset"], "xr.Dataset"] | None = None,
             shared: Callable[..., Any] | None = None, shared_dims: Sequence[str] = (),
             batch_dims: Sequence[str] = ()) -> "xr.Dataset":
    """Call ``func(**cell, **fixed)`` on every cell of the grid ``dims``; one Dataset out.

    Args:
        func: a module-level function (workers import it by name) returning a mapping
            ``name -> value``; a value is a number, bool or str (one per cell) or a
            ``(dims, array)`` tuple (extra dims, padded with NaN to the largest extent).
        dims: ``{dim: labels}`` (str/int/float labels); cells are their product, in order.
        fixed: keyword arguments passed to every call (sent to the workers).
        out: NetCDF file the Dataset is written to (atomically); enables the partial-results
            store ``<out>.partial/`` and resuming.
        workers, scheduler: where the cells run (see :func:`open_client`); serial by default.
        resume: load the cells an interrupted run finished (``out`` needed); ``False``
            discards them first.
        signature: JSON-able description of everything besides the grid that determines the
            results (default: ``fixed``); a partial store made with another signature is refused
            (:class:`~odernn_bridge.errors.SweepResumeError`) rather than mixed in.
        cost: estimated cost of a cell; costlier cells are submitted first (better balance).
        coords: coordinate values for the extra dims of array results.
        retries: extra attempts for a failed task (distributed only; a lost worker is retried
            by dask anyway, up to ``distributed.scheduler.allowed-failures``).
        desc: progress-bar label; attrs: extra Dataset attributes.
        postprocess: applied to the gathered Dataset before it is returned and written.
        shared: a module-level function computing what all cells with the same labels along
            ``shared_dims`` need (e.g. a problem's reference solution):
            ``shared(**{d: cell[d] for d in shared_dims}, **fixed)`` runs once per such group
            (of the cells still to compute) and its result is passed to ``func`` as the keyword
            ``shared``.  Distributed, it is one task per group whose result stays on a worker
            and is handed to the group's cell tasks (dask prefers that worker for them).  If it
            raises, the group's cells are recorded as failed with its error.
        shared_dims: the grid dims that determine ``shared``'s result (``()``: one group).
        batch_dims: distributed only: one task runs every cell with the same labels along
            these dims (e.g. ``("method",)``: a method on every problem), one after the other
            in one worker, each cell's result and error still its own.  Fewer, larger tasks
            cost less scheduling and let a worker reuse what it computed for the first cell
            (a method's coefficients) in the others; costs (``cost``) add up per task.  A lost
            worker loses (and dask retries) its batch.  ``()``: one task per cell.

    Returns:
        ``xarray.Dataset`` with the grid dims first, every result variable, ``status``
        (``"ok"``/``"failed"``) and ``error`` per cell; numeric results of failed cells are NaN
        (integer/bool results then become float).  Attrs record the execution, counts of
        ok/failed/resumed cells and the package version.

    >>> def power(base, exponent):
    ...     if exponent < 0:
    ...         raise ValueError("negative exponent")
    ...     return {"value": float(base) ** exponent}
    >>> ds = run_grid(power, {"base": [2, 3], "exponent": [-1, 2]}, progress=False)
    >>> ds.value.values.tolist(), ds.status.sel(exponent=-1).values.tolist()
    ([[nan, 4.0], [nan, 9.0]], ['failed', 'failed'])
    >>> str(ds.error.sel(base=2, exponent=-1).values)
    'ValueError: negative exponent'
    """
    from .io import provenance, to_netcdf

    if not callable(func):
        raise TypeError(f"func: expected a callable, got {type(func).__name__}")
    grid = {str(d): [_label(v, d) for v in labels] for d, labels in dims.items()}
    if not grid:
        raise ValueError("dims: expected at least one dimension")
    for d, labels in grid.items():
        if not labels:
            raise ValueError(f"dims: {d!r} has no values")
        if len(set(map(repr, labels))) != len(labels):
            raise ValueError(f"dims: {d!r} lists a value twice ({labels})")
    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries: expected an integer >= 0, got {retries!r}")
    fixed = dict(fixed or {})
    overlap = set(fixed) & set(grid)
    if overlap:
        raise ValueError(f"fixed: {sorted(overlap)} are also grid dims")
    shared_dims = [str(d) for d in shared_dims]
    batch_dims = [str(d) for d in batch_dims]
    unknown_b = [d for d in batch_dims if d not in grid]
    if unknown_b:
        raise ValueError(f"batch_dims: {unknown_b} are not grid dims ({list(grid)})")
    if shared is None and shared_dims:
        raise ValueError("shared_dims: given without a shared function")
    if shared is not None and not callable(shared):
        raise TypeError(f"shared: expected a callable, got {type(shared).__name__}")
    unknown = [d for d in shared_dims if d not in grid]
    if unknown:
        raise ValueError(f"shared_dims: {unknown} are not grid dims ({list(grid)})")
    cells = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    keys = [_cell_key(c) for c in cells]
    sig = json.dumps(fixed if signature is None else signature, sort_keys=True, default=repr)

    store = _Store(partial_path(out), sig, resume) if out is not None else None
    records: dict[str, dict[str, Any]] = {}
    if store is not None:
        for key, values in store.load(set(keys)).items():
            records[key] = {"status": "ok", "values": values}
    resumed = len(records)
    todo = [(k, c) for k, c in zip(keys, cells) if k not in records]
    if cost is not None:
        todo.sort(key=lambda kc: -float(cost(kc[1])))

    def finish(key: str, outcome: tuple[str, Any]) -> None:
        status, result = outcome
        if status == "ok":
            records[key] = {"status": "ok", "values": result}
            if store is not None:
                store.save(key, result)
        else:
            records[key] = {"status": "failed", "values": {}, "error": result}
            logger.info("%s: cell %s failed: %s", desc, key, result)

    from tqdm.auto import tqdm

    with open_client(workers, scheduler) as client:
        execution = _describe_client(client)
        bar = tqdm(total=len(keys), initial=resumed, desc=desc, unit="cell", disable=not progress,
                   dynamic_ncols=True)
        try:
            if client is None:
                outcomes: dict[str, tuple[str, Any]] = {}  # one shared computation per group
                for key, cell in todo:
                    extra: tuple[Any, ...] = ()
                    if shared is not None:
                        group = {d: cell[d] for d in shared_dims}
                        gkey = _cell_key(group)
                        if gkey not in outcomes:
                            outcomes[gkey] = _call_shared(shared, group, fixed, single_thread=False)
                        extra = (outcomes[gkey],)
                    finish(key, _call_cell(func, cell, fixed, False, *extra))
                    bar.update(1)
                outcomes.clear()
            else:
                _run_distributed(client, func, todo, fixed, retries, desc, finish, bar, shared, shared_dims,
                                 batch_dims, cost)
        finally:
            bar.close()

    ds = _assemble(grid, records, cells, coords or {})
    n_failed = sum(r["status"] == "failed" for r in records.values())
    ds.attrs = provenance(sweep=desc, execution=execution, cells=len(keys), cells_ok=len(keys) - n_failed,
                          cells_failed=n_failed, cells_resumed=resumed, **dict(attrs or {}))
    if postprocess is not None:
        ds = postprocess(ds)
    if out is not None:
        to_netcdf(ds, out)
        assert store is not None
        store.remove()
    return ds


def _call_batch(func: Callable[..., Any], cells: list[dict[str, Any]], fixed: dict[str, Any], single_thread: bool,
                which: list[int], *shared: Any) -> list[tuple[str, Any]]:
    """:func:`_call_cell` on each cell of a batch; ``which[i]`` indexes the cell's shared
    outcome in ``shared`` (``-1``: none)."""
    return [_call_cell(func, cell, fixed, single_thread, *((shared[w],) if w >= 0 else ()))
            for cell, w in zip(cells, which)]


def _run_distributed(client: Any, func: Callable[..., Any], todo: list[tuple[str, dict[str, Any]]],
                     fixed: dict[str, Any], retries: int, desc: str,
                     finish: Callable[[str, tuple[str, Any]], None], bar: Any,
                     shared: Callable[..., Any] | None = None, shared_dims: Sequence[str] = (),
                     batch_dims: Sequence[str] = (),
                     cost: Callable[[dict[str, Any]], float] | None = None) -> None:
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    groups: dict[str, Any] = {}  # group key -> future of its shared work (kept until the end)
    # tasks: one per cell, or one per batch of cells with equal labels along batch_dims,
    # costliest first (todo is already sorted by cell cost)
    batches: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for key, cell in todo:
        bkey = _cell_key({d: cell[d] for d in batch_dims}) if batch_dims else key
        batches.setdefault(bkey, []).append((key, cell))
    tasks = list(batches.values())
    if batch_dims and cost is not None:
        tasks.sort(key=lambda b: -sum(float(cost(c)) for _, c in b))
    n = len(tasks)
    if shared is not None:
        for _, cell in todo:
            group = {d: cell[d] for d in shared_dims}
            gkey = _cell_key(group)
            if gkey not in groups:  # before every cell: the cells wait for these
                label = "-".join(str(v) for v in group.values()) or "all"
                groups[gkey] = client.submit(_call_shared, shared, group, fixed, True, pure=False,
                                             key=f"{desc}-shared-{label}-{token}", retries=retries,
                                             priority=2 * n + 1)
    futures: dict[Any, list[str]] = {}
    for i, batch in enumerate(tasks):  # a task runs its batch (one cell without batch_dims)
        label = "-".join(str(v) for v in batch[0][1].values()) if len(batch) == 1 else \
            "-".join(str(batch[0][1][d]) for d in batch_dims) + f"-x{len(batch)}"
        needed: list[str] = []  # the shared groups this batch needs, in order of first use
        which: list[int] = []
        for _, cell in batch:
            if shared is None:
                which.append(-1)
                continue
            gkey = _cell_key({d: cell[d] for d in shared_dims})
            if gkey not in needed:
                needed.append(gkey)
            which.append(needed.index(gkey))
        fut = client.submit(_call_batch, func, [c for _, c in batch], fixed, True, which,
                            *[groups[g] for g in needed], key=f"{desc}-{label}-{token}-{i}",
                            pure=False, retries=retries, priority=n - i)
        futures[fut] = [k for k, _ in batch]
    try:
        for fut in as_completed(list(futures), loop=client.loop):
            keys = futures[fut]
            try:
                outcome = fut.result()
            except Exception as exc:  # the task itself failed: its worker died too often (KilledWorker),
                outcomes = [("failed", _error_text(exc))] * len(keys)  # the result could not be unpickled, ...
            else:
                outcomes = outcome
            for key, oc in zip(keys, outcomes):
                finish(key, oc)
            fut.release()
            bar.update(len(keys))
    except BaseException:
        client.cancel(list(futures) + list(groups.values()))
        raise
    finally:
        for fut in groups.values():
            fut.release()


def _label(v: Any, dim: str) -> Any:
    if isinstance(v, (np.generic,)):
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise TypeError(f"dims: labels of {dim!r} must be str, int or float, got {v!r}")
    return v
