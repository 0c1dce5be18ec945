"""Benchmark: the catalogue validation sweep, serially and on a local dask cluster, in one run.

    python benchmarks/bench_sweep.py [--workers 2] [--problems P ...] [--precision auto] [--repeats 1]

The sweep is ``validate_sweep`` over every explicit catalogue method × every built-in problem
(default), float64, automatic step sizes: what ``odernn validate --all -p kepler linear lorenz
lotka_volterra vanderpol vanderpol_mild --precision float64 --workers 2`` runs (426 cells).
``--precision auto`` (the CLI's default: mpmath where float64 is inconclusive) makes it
several times longer (minutes of CPU per problem).  Timed,
in this order within each repeat (medians over repeats are printed):

1. serial: ``workers=0`` (this process);
2. distributed on a ``LocalCluster`` of N processes (what ``workers=N`` does), timed twice:
   from starting the cluster to having closed it ("startup included"), and the sweep alone
   on the started cluster ("cluster already running"; worker imports and per-worker
   reference solutions are still included).

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
        core._SHARED_FINALS.clear()

    times: dict[str, list[float]] = {"serial": [], "with_startup": [], "without_startup": []}
    cpu: dict[str, list[float]] = {"serial": [], "worker_max": [], "worker_sum": []}
    results = {}
    for _ in range(args.repeats):
        fresh()
        t, c = time.perf_counter(), time.process_time()
        results["serial"] = validate_sweep(methods, args.problems, workers=0, **kw)
        times["serial"].append(time.perf_counter() - t)
        cpu["serial"].append(time.process_time() - c)

        # what validate_sweep(workers=N) does, with the clock read around each phase
        fresh()
        t0 = time.perf_counter()
        with open_client(args.workers) as client:
            c0 = client.run(time.process_time)
            t1 = time.perf_counter()
            results["distributed"] = validate_sweep(methods, args.problems, scheduler=client, **kw)
            t2 = time.perf_counter()
            c1 = client.run(time.process_time)
            execution = results["distributed"].attrs["execution"]
        t3 = time.perf_counter()
        times["with_startup"].append(t3 - t0)
        times["without_startup"].append(t2 - t1)
        used = [c1[w] - c0[w] for w in c0]
        cpu["worker_max"].append(max(used))
        cpu["worker_sum"].append(sum(used))

    xr.testing.assert_identical(results["serial"].drop_attrs(), results["distributed"].drop_attrs())
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
    print(f"CPU seconds: serial {cmed['serial']:.2f}; workers busiest {cmed['worker_max']:.2f}, "
          f"all {cmed['worker_sum']:.2f}; busiest worker / serial = {cmed['worker_max'] / cmed['serial']:.3f}")
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} "
          f"(on a shared machine the wall-clock ratio is bounded by this session's CPU share)")
    print("serial and distributed results identical: yes")


if __name__ == "__main__":
    main()
