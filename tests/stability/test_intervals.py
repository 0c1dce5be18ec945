"""Stability intervals, A-/L-/A(α)-stability and the largest stable step size."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import odernn_bridge as ob

from .conftest import catalogue_method


def _explicit_R_coefficients(m):
    """p_k = bᵀA^{k−1}𝟙 at 40 digits: the Taylor form of R for an explicit method, computed
    here independently of the library's Faddeev–LeVerrier expansion."""
    from odernn_bridge.methods.exact import to_mpf

    with mpmath.workdps(40):
        co = m.coefficients
        A = [[to_mpf(x) for x in r] for r in co.A]
        b = [to_mpf(x) for x in co.b]
        s = len(b)
        u = [mpmath.mpf(1)] * s
        p = [mpmath.mpf(1)]
        for _ in range(s):
            p.append(mpmath.fsum(b[i] * u[i] for i in range(s)))
            u = [mpmath.fsum(A[i][j] * u[j] for j in range(s)) for i in range(s)]
        while abs(p[-1]) < mpmath.mpf(10) ** -30:
            p.pop()
        return p


def _mp_real_interval(p):
    """Smallest x > 0 with P(−x) = ±1 at a sign change of P(−x)² − 1 (mpmath polyroots)."""
    with mpmath.workdps(40):
        roots = []
        for shift in (-1, 1):
            q = list(p)
            q[0] += shift
            for r in mpmath.polyroots(q[::-1], maxsteps=500, extraprec=300):
                if abs(mpmath.im(r)) < 1e-20 and mpmath.re(r) < -1e-20:
                    roots.append(-mpmath.re(r))
        return float(min(roots))


# -- known values --------------------------------------------------------------------------

def test_rk4_real_interval():
    r = ob.real_stability_interval("RK4")
    # P(x) − 1 = x(1 + x/2 + x²/6 + x³/24): the exit is the real root of the cubic
    mpmath.mp.dps = 30
    try:
        roots = mpmath.polyroots([mpmath.mpf(1) / 24, mpmath.mpf(1) / 6, mpmath.mpf(1) / 2, 1])
        ref = float(-min(mpmath.re(x) for x in roots if abs(mpmath.im(x)) < 1e-20))
    finally:
        mpmath.mp.dps = 15
    assert abs(r - ref) < 1e-12
    assert abs(r - 2.785293563405) < 1e-11  # the literature value, 12 digits


def test_rk4_imag_interval_is_2sqrt2():
    # |R(iy)|² = 1 − y⁶/72 + y⁸/576 ≤ 1 ⇔ y² ≤ 8
    assert abs(ob.imag_stability_interval("RK4") - 2 * math.sqrt(2)) < 1e-13


def test_euler_intervals():
    assert ob.real_stability_interval("Euler") == 2.0
    assert ob.imag_stability_interval("Euler") == 0.0


def test_dp5_real_interval_independent_mpmath():
    m = catalogue_method("DP5")
    ref = _mp_real_interval(_explicit_R_coefficients(m))
    r = ob.real_stability_interval(m)
    assert abs(r - ref) < 1e-10
    assert abs(r - 3.3066) < 1e-4


@pytest.mark.parametrize("name", ["Midpoint", "RK4", "DP5", "Tsit5", "Vern6", "Vern7", "Vern8", "Vern9"])
def test_explicit_real_interval_independent_mpmath(name):
    m = catalogue_method(name)
    ref = _mp_real_interval(_explicit_R_coefficients(m))
    assert abs(ob.real_stability_interval(m) - ref) < 1e-10


def test_implicit_midpoint_and_radau2(implicit_midpoint, radau2):
    for m in (implicit_midpoint, radau2):
        assert ob.real_stability_interval(m) == math.inf
        assert ob.imag_stability_interval(m) == math.inf
        assert ob.is_A_stable(m)
        assert ob.A_alpha_angle(m) == 90.0
    assert not ob.is_L_stable(implicit_midpoint)  # R(∞) = −1
    assert ob.is_L_stable(radau2)


@pytest.mark.parametrize("name", ["RadauIIA1", "RadauIIA3", "RadauIIA5", "RadauIIA7", "RadauIIA9"])
def test_radau_iia_is_L_stable(name):
    m = catalogue_method(name)
    assert ob.is_A_stable(m) and ob.is_L_stable(m)


@pytest.mark.parametrize("name", ["GL2", "GL4", "GL6", "GL8", "GL10"])
def test_gauss_is_A_stable_but_not_L_stable(name):
    m = catalogue_method(name)
    assert ob.is_A_stable(m) and not ob.is_L_stable(m)
    # |R(∞)| = 1 (diagonal Padé approximant)
    assert abs(abs(ob.stability_function(m).at_infinity) - 1) == 0


def test_explicit_methods_are_not_A_stable():
    for name in ("Euler", "Midpoint", "RK4"):
        assert not ob.is_A_stable(name) and not ob.is_L_stable(name)
        assert ob.A_alpha_angle(name) == 0.0


def test_sdirk_crouzeix_is_A_stable_not_L_stable(sdirk_crouzeix):
    # γ = 1/2 + √3/6 makes the method A-stable (Hairer–Wanner IV, Table 7.2); R(∞) = 1 − √3
    assert ob.is_A_stable(sdirk_crouzeix)
    assert not ob.is_L_stable(sdirk_crouzeix)


# -- multistep ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["BDF1", "BDF2"])
def test_bdf12_A_stable(name):
    m = catalogue_method(name)
    assert ob.is_A_stable(m) and ob.is_L_stable(m)
    assert ob.A_alpha_angle(m) == 90.0


@pytest.mark.parametrize("name, alpha", [("BDF3", 86.03), ("BDF4", 73.35), ("BDF5", 51.84), ("BDF6", 17.84)])
def test_bdf_A_alpha(name, alpha):
    m = catalogue_method(name)
    assert not ob.is_A_stable(m)
    # literature values (Hairer–Wanner II, Table V.2.3) are given to 0.01°
    assert abs(ob.A_alpha_angle(m) - alpha) < 0.01
    assert ob.real_stability_interval(m) == math.inf


def test_own_bdf2_and_ab2(bdf2, ab2):
    assert ob.is_A_stable(bdf2) and ob.is_L_stable(bdf2)
    assert ob.real_stability_interval(ab2) == pytest.approx(1.0, abs=1e-12)
    assert ob.imag_stability_interval(ab2) == 0.0


@pytest.mark.parametrize("name, r", [("AB1", 2.0), ("AB2", 1.0), ("AB3", 6 / 11), ("AB4", 3 / 10),
                                     ("AM2", 6.0), ("AM3", 3.0), ("AM4", 90 / 49), ("AM5", 45 / 38)])
def test_adams_real_intervals(name, r):
    """Values as tabulated by Lambert (1991, ch. 3); the Adams intervals end at z(π) = ρ(−1)/σ(−1)."""
    m = catalogue_method(name)
    got = ob.real_stability_interval(m)
    assert abs(got - r) < 1e-12 * max(1, r)
    locus = ob.boundary_locus(m, theta=[math.pi])
    assert abs(-float(locus.real[0]) - got) < 1e-12 * max(1, r)


@pytest.mark.parametrize("name", ["AB3", "AB4", "AM4", "AM5", "BDF5", "BDF6"])
def test_lmm_imag_interval_against_locus_crossing(name):
    """Independent: the first θ > 0 where Re z(θ) changes sign (brentq on a fine θ grid)."""
    from scipy.optimize import brentq

    m = catalogue_method(name)

    def z(th):
        e = np.exp(1j * th)
        return np.polyval(m.alpha[::-1], e) / np.polyval(m.beta[::-1], e)

    th = np.linspace(0.02, math.pi, 20001)  # below ~0.01, Re z(θ) ~ θ^(p+1) drowns in rounding
    re = np.array([z(t).real for t in th])
    i = int(np.nonzero(np.sign(re[1:]) != np.sign(re[:-1]))[0][0])
    t0 = brentq(lambda t: z(t).real, th[i], th[i + 1], xtol=1e-15)
    assert abs(ob.imag_stability_interval(m) - abs(z(t0).imag)) < 1e-10


@pytest.mark.parametrize("name", ["AB2", "AB5", "AB6", "AM2", "AM3", "AM6", "BDF3", "BDF4"])
def test_lmm_zero_imag_interval(name):
    # near z = 0 the principal root leaves the unit circle along the imaginary axis for these
    # (Ghrist & Fornberg, BIT 2015: Adams "stability ordinates" vanish for these orders)
    assert ob.imag_stability_interval(catalogue_method(name)) == 0.0


def test_trapezoid_lmm_is_A_stable_not_L():
    m = ob.LinearMultistep([-1, 1], ["1/2", "1/2"], name="my_trap", order=2)
    assert ob.is_A_stable(m) and not ob.is_L_stable(m)
    assert ob.imag_stability_interval(m) == math.inf  # its locus is the imaginary axis


def test_weakly_stable_methods_have_no_real_interval():
    m = ob.LinearMultistep([-1, 0, 1], [0, 2, 0], name="my_leapfrog", order=2)
    assert ob.real_stability_interval(m) == 0.0
    # leapfrog: ζ² − 2zζ − 1 = 0 has ζ = iy ± √(1 − y²), |ζ| = 1 exactly for z = iy, |y| ≤ 1
    assert abs(ob.imag_stability_interval(m) - 1.0) < 1e-12


# -- the largest stable step -----------------------------------------------------------------

def test_max_stable_dt_real_and_imaginary():
    r4 = ob.real_stability_interval("RK4")
    assert abs(ob.max_stable_dt("RK4", [-2.0]) - r4 / 2) < 1e-14
    dt = ob.max_stable_dt("RK4", [-1.0, 3j, -3j])
    assert abs(dt - 2 * math.sqrt(2) / 3) < 1e-14


def test_max_stable_dt_special_values(radau2):
    assert ob.max_stable_dt("Euler", [1j]) == 0.0       # leaves immediately
    assert ob.max_stable_dt("RK4", [0.0, 0.0]) == math.inf  # λ = 0 imposes nothing
    assert ob.max_stable_dt(radau2, [-1.0, -100 + 1e4j, 5j]) == math.inf  # A-stable, Re λ ≤ 0
    assert ob.max_stable_dt(radau2, [0.1]) == 0.0  # R(x) ≈ e^x > 1 for small x > 0


def _sampled_first_exit(f, lam, t_max, n):
    t = np.linspace(0, t_max, n + 1)[1:]
    out = np.nonzero(f(t * lam) > 1 + 1e-12)[0]
    return t[out[0]] if out.size else math.inf


@pytest.mark.parametrize("name", ["RK4", "Midpoint", "AB3", "BDF4"])
def test_max_stable_dt_agrees_with_dense_ray_sampling(name):
    """First exit along 12 rays vs a 20000-point sampling: agree to the sample spacing."""
    m = ob.get_method(name) if name in ob.list_methods() else catalogue_method(name)
    f = ob.stability_function(m)
    for ang in np.linspace(95, 180, 12):
        lam = np.exp(1j * np.radians(ang))
        dt = ob.max_stable_dt(m, [lam])
        t_max = 8.0
        sampled = _sampled_first_exit(lambda z: np.abs(f(z)), lam, t_max, 20000)
        if math.isinf(dt):
            assert math.isinf(sampled)
        else:
            assert abs(dt - sampled) <= t_max / 20000 + 1e-12


def test_max_stable_dt_first_exit_in_disconnected_region(two_islands):
    """R(z) = 1 + z + z²/10: the region is two islands around the roots of R on the negative
    axis, so the ray λ = −1 exits, then re-enters: the answer is the first exit."""
    dt = ob.max_stable_dt(two_islands, [-1.0])
    # first exit: R(−x) = −1 ⇔ x² − 10x + 20 = 0 ⇔ x = 5 − √5 (|R| ≤ 1 on [0, 5 − √5])
    assert abs(dt - (5 - math.sqrt(5))) < 1e-14
    assert abs(ob.real_stability_interval(two_islands) - (5 - math.sqrt(5))) < 1e-14
    # the second island [5 + √5 − ..., ...] is not reached through the gap
    R = ob.stability_function(two_islands)
    assert abs(R(-8.873)) < 1 and abs(R(-5.0)) > 1


def test_max_stable_dt_is_exact_relative_1e8():
    # scaling λ by 1000 scales dt by 1/1000 exactly (same ray)
    lam = np.array([-1 + 2j, -3 + 0.5j])
    d1 = ob.max_stable_dt("RK4", lam)
    d2 = ob.max_stable_dt("RK4", 1000 * lam)
    assert abs(d1 / 1000 - d2) <= 1e-12 * d1
    # on the boundary: |R(dt·λ)| = 1 for the binding eigenvalue to 1e-10
    R = ob.stability_function("RK4")
    assert abs(max(abs(R(d1 * lam))) - 1) < 1e-10


def test_max_stable_dt_bad_input():
    with pytest.raises(ValueError, match="eigenvalues"):
        ob.max_stable_dt("RK4", [])
    with pytest.raises(ValueError, match="eigenvalues"):
        ob.max_stable_dt("RK4", [np.nan])
    with pytest.raises(ValueError, match="eigenvalues"):
        ob.max_stable_dt("RK4", [1.0, np.inf])
    with pytest.raises(TypeError, match="method"):
        ob.max_stable_dt([-1.0], "RK4")


def test_ray_exit_bad_direction():
    from odernn_bridge.stability import ray_exit

    with pytest.raises(ValueError, match="direction"):
        ray_exit("RK4", 0)
    with pytest.raises(ValueError, match="direction"):
        ray_exit("RK4", complex("nan"))


@pytest.mark.parametrize("name", ["RK4", "Tsit5", "AB3", "BDF4"])
def test_max_stable_dt_prepass_does_not_change_the_answer(name):
    """The float64 ranking pre-pass vs the exact exit of every eigenvalue's ray."""
    from odernn_bridge.stability import ray_exit

    m = catalogue_method(name)
    rng = np.random.default_rng(7)
    lam = -np.abs(rng.normal(size=60)) - 0.01 + 1j * rng.normal(scale=2.0, size=60)
    brute = min(ray_exit(m, x) / abs(x) for x in lam)
    # the same exact computation for the binding λ (up to an ulp from normalising λ)
    assert abs(ob.max_stable_dt(m, lam) - brute) <= 1e-14 * brute


def test_max_stable_dt_right_half_plane_is_zero():
    # consistency: |R(z)| = |e^z| + O(z²) > 1 for small z with Re z > 0
    assert ob.max_stable_dt("RK4", [-1.0, 1e-6 + 1j]) == 0.0
    assert ob.max_stable_dt("BDF2", [0.5]) == 0.0
