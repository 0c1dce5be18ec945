"""The analyses give the serial results when run from several threads at once.

mpmath keeps one process-wide precision; before the package took one lock around every
section that sets or relies on it (``odernn_bridge._mp``), three threads made
``imag_stability_interval("Feagin10")`` return 0.0 (true 1.154) and ``verify_order("GL6")``
return 1 (true 6), and left ``mpmath.mp.dps`` changed.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import mpmath
import numpy as np
import pytest

import odernn_bridge as ob
from odernn_bridge import _mp
from odernn_bridge.methods.order import verify_stage_order
from odernn_bridge.reference.scipy_backend import ScipyBackend
from odernn_bridge.stability import function as _function
from odernn_bridge.stability import intervals as _intervals

THREADS = 4
TRIALS = 3


def _analyses() -> list[tuple[str, Callable[[], Any]]]:
    be = ScipyBackend()
    return [
        ("imag Feagin10", lambda: ob.imag_stability_interval("Feagin10")),   # published decimals
        ("real SSPRK83", lambda: ob.real_stability_interval("SSPRK83")),
        ("real DP8", lambda: ob.real_stability_interval("DP8")),             # exact rationals
        ("order GL6", lambda: ob.verify_order("GL6")),                        # algebraic (sqrt)
        ("order Feagin10", lambda: ob.verify_order("Feagin10")),
        ("stage order RadauIIA5", lambda: verify_stage_order(ob.get_method("RadauIIA5"))),
        ("R RadauIIA5", lambda: ob.stability_function("RadauIIA5").numerator.tolist()),
        ("A-stable LobattoIIIC4", lambda: ob.is_A_stable("LobattoIIIC4")),
        ("imag AB3", lambda: ob.imag_stability_interval("AB3")),              # multistep, 40 digits
        ("dt RK4", lambda: ob.max_stable_dt("RK4", [-1.0 + 2j, -3.0])),
        # exact binary values (str() would depend on the caller's precision)
        ("mp RK4 solve", lambda: [x._mpf_ for x in be.solve_mp("linear", "RK4", 0.25, dps=30)[-1]]),
    ]


def _clear_caches() -> None:
    _function._all_functions_named.cache_clear()
    _intervals._RAY_EXITS.clear()


def test_analyses_in_threads_match_serial() -> None:
    analyses = _analyses()
    dps_before = mpmath.mp.dps
    serial = {}
    for name, fn in analyses:
        _clear_caches()
        serial[name] = fn()
    assert serial["order GL6"] == 6 and serial["imag Feagin10"] == pytest.approx(1.154, abs=1e-3)

    mismatches, runs = [], 0
    for trial in range(TRIALS):
        _clear_caches()
        results: dict[tuple[int, str], Any] = {}
        errors: list[BaseException] = []
        barrier = threading.Barrier(THREADS)

        def work(k: int) -> None:
            try:
                barrier.wait()
                # each thread runs every analysis, in a rotated order, so different precisions overlap
                for name, fn in analyses[k:] + analyses[:k]:
                    results[(k, name)] = fn()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not errors, errors
        for (k, name), value in results.items():
            runs += 1
            if value != serial[name]:
                mismatches.append((trial, k, name, value, serial[name]))
    assert runs == TRIALS * THREADS * len(analyses)
    assert not mismatches, mismatches
    assert mpmath.mp.dps == dps_before


def test_workdps_restores_precision_and_serialises_threads() -> None:
    before = mpmath.mp.dps
    seen: list[int] = []

    def work(dps: int) -> None:
        for _ in range(50):
            with _mp.workdps(dps):
                # while the lock is held nobody else changes the precision
                seen.append(int(mpmath.mp.dps == dps))

    threads = [threading.Thread(target=work, args=(d,)) for d in (20, 40, 60, 80)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 200 and all(seen)
    assert mpmath.mp.dps == before


def test_evalf_of_a_root_object_is_stable_under_threads() -> None:
    import sympy

    x = sympy.Symbol("x")
    root = sympy.CRootOf(x**5 - x - 1, 0)  # SymPy evaluates CRootOf at mpmath's global precision
    expected = str(_mp.evalf(root, 40))
    out: list[str] = []

    def work() -> None:
        for _ in range(5):
            out.append(str(_mp.evalf(root, 40)))

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [expected] * (5 * THREADS)
    assert np.isclose(float(expected), 1.1673039782614187)
