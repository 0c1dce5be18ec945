"""Benchmark: the catalogue validation sweep, serially and on a local dask cluster, in one run.

    python benchmarks/bench_sweep.py [--workers 2] [--problems P ...] [--precision float64] [--repeats 1]

The sweep is ``validate_sweep`` over every explicit catalogue method × every built-in problem
(default), with automatic step sizes: what ``odernn validate --all -p <all problems>
--precision float64 --workers 2`` runs (426 cells).  Timed,
in this order within each repeat (medians over repeats are printed):

1. serial: ``workers=0`` (this process);
2. distributed, cluster startup included: ``workers=N`` — starts a ``LocalCluster`` of N
   processes, runs the sweep (worker imports and per-worker reference solutions included),
   closes the cluster;
3. distributed, cluster already running: the same on a cluster started before the clock (a
   fresh one, so worker imports are still included).

Each run starts in a fresh state (reference caches of this process cleared).  The results of
the serial and the distributed runs are checked to be identical.  The ratio distributed/serial
is the figure of merit (ideal 1/N plus startup).

CPU seconds are reported too (this process for the serial run; each worker process for the
run on the pre-started cluster).  On a machine shared with other work the wall-clock ratio
says little: Linux's autogroup scheduler shares the CPUs between *sessions*, so the N worker
processes (started in this session) together get no more CPU than the serial run when other
sessions are busy.  ``max(worker CPU) / serial CPU`` is then the ratio the sweep reaches once
each worker has a core to itself (startup excluded).
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--problems", nargs="+", default=None, help="default: every built-in problem")
    ap.add_argument("--precision", default="float64", choices=("float64", "auto", "mp"))
    ap.add_argument("--methods", nargs="+", default=None, help="default: every explicit catalogue method")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()

    import os

    import xarray as xr

    import odernn_bridge as ob
    from odernn_bridge.distributed import available_cores, open_client
    from odernn_bridge.reference import list_problems
    from odernn_bridge.validate import core, validate_sweep

    methods = args.methods or ob.list_methods("explicit")
    args.problems = args.problems or list_problems()
    load_before = os.getloadavg()
    kw = dict(backend="scipy", precision=args.precision, progress=False)

    def fresh() -> None:
        core._SHARED_REFERENCES.clear()

    times: dict[str, list[float]] = {"serial": [], "with_startup": [], "without_startup": []}
    cpu: dict[str, list[float]] = {"serial": [], "worker_max": [], "worker_sum": []}
    results = {}
    for _ in range(args.repeats):
        fresh()
        t, c = time.perf_counter(), time.process_time()
        results["serial"] = validate_sweep(methods, args.problems, workers=0, **kw)
        times["serial"].append(time.perf_counter() - t)
        cpu["serial"].append(time.process_time() - c)

        fresh()
        t = time.perf_counter()
        results["with_startup"] = validate_sweep(methods, args.problems, workers=args.workers, **kw)
        times["with_startup"].append(time.perf_counter() - t)

        with open_client(args.workers) as client:
            fresh()
            c0 = client.run(time.process_time)
            t = time.perf_counter()
            results["without_startup"] = validate_sweep(methods, args.problems, scheduler=client, **kw)
            times["without_startup"].append(time.perf_counter() - t)
            c1 = client.run(time.process_time)
            used = [c1[w] - c0[w] for w in c0]
            cpu["worker_max"].append(max(used))
            cpu["worker_sum"].append(sum(used))
            execution = results["without_startup"].attrs["execution"]

    for name in ("with_startup", "without_startup"):
        xr.testing.assert_identical(results["serial"].drop_attrs(), results[name].drop_attrs())
    med = {k: statistics.median(v) for k, v in times.items()}
    ds = results["serial"]
    print(f"sweep: {len(methods)} explicit methods x {len(args.problems)} problems ({', '.join(args.problems)}), "
          f"precision {args.precision}, automatic dts; {ds.status.size} cells, "
          f"{int((ds.status.values == 'failed').sum())} failed (recorded), {ds.attrs['passed']} pass")
    print(f"machine: {available_cores()} cores; distributed: {execution}")
    print(f"serial                                  {med['serial']:8.2f} s   {times['serial']}")
    print(f"{args.workers} workers, cluster startup included     {med['with_startup']:8.2f} s   "
          f"ratio {med['with_startup'] / med['serial']:.3f}")
    print(f"{args.workers} workers, cluster already running      {med['without_startup']:8.2f} s   "
          f"ratio {med['without_startup'] / med['serial']:.3f}")
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"CPU seconds: serial {cmed['serial']:.2f}; workers (pre-started cluster) busiest {cmed['worker_max']:.2f}, "
          f"all {cmed['worker_sum']:.2f}; busiest worker / serial = {cmed['worker_max'] / cmed['serial']:.3f}")
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} "
          f"(on a shared machine the wall-clock ratio is bounded by this session's CPU share)")
    print("serial and distributed results identical: yes")


if __name__ == "__main__":
    main()
