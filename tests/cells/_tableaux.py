"""Test tableaux built independently of the catalogue (which other work fills concurrently),
and an independent float64 NumPy implementation of RK steps on an Elman field."""

from __future__ import annotations

import numpy as np
from scipy.integrate._ivp import dop853_coefficients as dop
from scipy.integrate._ivp.rk import RK45

import odernn_bridge as ob

S3 = "sqrt(3)"
S6 = "sqrt(6)"


def dp5() -> ob.ButcherTableau:
    """Dormand–Prince 5(4) from SciPy's RK45 (E = b̂ − b, FSAL 7th stage)."""
    s = 7
    A = np.zeros((s, s))
    A[:6, :5] = RK45.A
    A[6, :6] = RK45.B
    b = np.r_[RK45.B, 0.0]
    return ob.ButcherTableau(A, b, np.r_[RK45.C, 1.0], b_embedded=b + RK45.E, order=5, name="DP5test",
                             embedded_order=4, verify=False)


def dop853() -> tuple[ob.ButcherTableau, np.ndarray]:
    """DOP853 from SciPy: 12 stages + FSAL stage; b_embedded = b + E5 and E3 for the estimator."""
    s = 13
    A = np.zeros((s, s))
    A[:12, :12] = dop.A[:12, :12]
    A[12, :12] = dop.B
    b = np.r_[dop.B, 0.0]
    tab = ob.ButcherTableau(A, b, np.r_[dop.C[:12], 1.0], b_embedded=b + dop.E5, order=8, name="DOP853test",
                            embedded_order=5, verify=False, check_row_sums=False)
    return tab, np.asarray(dop.E3, dtype=float)


def rk38() -> ob.ButcherTableau:
    return ob.ButcherTableau([[0, 0, 0, 0], ["1/3", 0, 0, 0], ["-1/3", 1, 0, 0], [1, -1, 1, 0]],
                             ["1/8", "3/8", "3/8", "1/8"], order=4, name="RK38test")


def gauss2() -> ob.ButcherTableau:
    return ob.ButcherTableau([["1/4", f"1/4 - {S3}/6"], [f"1/4 + {S3}/6", "1/4"]], ["1/2", "1/2"],
                             order=4, name="GL4test")


def radau_iia3() -> ob.ButcherTableau:
    return ob.ButcherTableau(
        [[f"(88 - 7*{S6})/360", f"(296 - 169*{S6})/1800", f"(-2 + 3*{S6})/225"],
         [f"(296 + 169*{S6})/1800", f"(88 + 7*{S6})/360", f"(-2 - 3*{S6})/225"],
         [f"(16 - {S6})/36", f"(16 + {S6})/36", "1/9"]],
        [f"(16 - {S6})/36", f"(16 + {S6})/36", "1/9"], order=5, name="RadauIIA5test")


def lobatto_iiic2() -> ob.ButcherTableau:
    return ob.ButcherTableau([["1/2", "-1/2"], ["1/2", "1/2"]], ["1/2", "1/2"], order=2, name="LobattoIIIC2test")


def sdirk2() -> ob.ButcherTableau:
    """Alexander's L-stable 2-stage SDIRK, γ = 1 − 1/√2."""
    g = "1 - sqrt(2)/2"
    return ob.ButcherTableau([[g, 0], [f"1 - ({g})", g]], [f"1 - ({g})", g], order=2, name="SDIRK2test")


def esdirk_trbdf2_like() -> ob.ButcherTableau:
    """Trapezoid as an ESDIRK (explicit first stage, a_11 = 0)."""
    return ob.ButcherTableau([[0, 0], ["1/2", "1/2"]], ["1/2", "1/2"], order=2, name="TrapezoidTest")


def implicit_tableaux() -> list[ob.ButcherTableau]:
    out = [gauss2(), radau_iia3(), lobatto_iiic2(), sdirk2(), esdirk_trbdf2_like(),
           ob.ButcherTableau([[1]], [1], order=1, name="ImplicitEulerTest")]
    for kind in ("diagonally_implicit", "implicit"):
        out += [ob.get_method(n) for n in ob.list_methods(kind)]
    return out


def numpy_rk_step(tab: ob.ButcherTableau, W: np.ndarray, U: np.ndarray, bias: np.ndarray, x: np.ndarray,
                  h: np.ndarray, dt: float, leak: float = 0.0) -> np.ndarray:
    """One explicit RK step of dh/dt = tanh(h Wᵀ + x Uᵀ + b) − leak h, every coefficient used."""
    A, b = np.asarray(tab.A, float), np.asarray(tab.b, float)
    s = len(b)
    u = x @ U.T + bias
    K = []
    for i in range(s):
        y = h.copy()
        for j in range(i):
            y = y + dt * A[i, j] * K[j]
        K.append(np.tanh(y @ W.T + u) - leak * y)
    out = h.copy()
    for i in range(s):
        out = out + dt * b[i] * K[i]
    return out
